"""Sequence models: language models, sequence classifiers (token ids in, predictions out).

The n-gram baseline and character language models (``ngram``, ``language``),
encoder-decoder models (``seq2seq``), recurrent and Transformer sequence classifiers
(``recurrent_classifier``, ``classifier``).
"""

from dlcamp.models.sequence import classifier, language, ngram, recurrent_classifier, seq2seq  # noqa: F401  (registers)
