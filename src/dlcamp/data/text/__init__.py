"""Text data: a character corpus, the embedded Reber grammar and synthetic seq2seq tasks.

Everything here is characters mapped to integer ids by one ``Vocab`` (PAD 0, BOS 1,
EOS 2, UNK 3, then the characters in sorted order), and every item is a fixed-length
LongTensor right-padded with PAD, so the default collate stacks a batch with no
``collate_fn``. The data is deterministic: it depends on ``data_seed`` (default 0), never
on the run's ``seed``, which only drives shuffling.

One room per concept:

- ``vocab``: the ``Vocab`` and ``encode_padded``;
- ``base``: the splits, size checks, ``LineInputs`` (``dlcamp predict`` reads one input
  per line) and ``TextDataModule``, the base of the data modules below;
- ``corpus``: ``text``, a character language-model corpus (Karpathy's char-rnn, 2015);
- ``reber``: ``reber``, the embedded Reber grammar (Hochreiter & Schmidhuber 1997, 5.1);
- ``seq2seq``: ``dates``, ``reverse``, ``addition``: source -> target string tasks for
  encoder–decoder models, served by ``Seq2SeqData``.

A new text dataset is a new module in this package that registers its builder.
"""

from dlcamp.data.text.base import SPLITS, LineInputs, TextDataModule, check_sizes
from dlcamp.data.text.corpus import TextCorpusData, WindowDataset, text
from dlcamp.data.text.reber import ReberData, is_embedded_reber, is_reber, reber, reber_string
from dlcamp.data.text.seq2seq import DATE_FORMS, Seq2SeqData, addition, dates, render_date, reverse
from dlcamp.data.text.vocab import Vocab, encode_padded

__all__ = [
    "DATE_FORMS",
    "SPLITS",
    "LineInputs",
    "ReberData",
    "Seq2SeqData",
    "TextCorpusData",
    "TextDataModule",
    "Vocab",
    "WindowDataset",
    "addition",
    "check_sizes",
    "dates",
    "encode_padded",
    "is_embedded_reber",
    "is_reber",
    "reber",
    "reber_string",
    "render_date",
    "reverse",
    "text",
]
