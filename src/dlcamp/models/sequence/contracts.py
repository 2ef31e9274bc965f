"""What the sequence tasks may ask of a sequence model beyond its forward, as abstract classes.

A task checks a model against these with ``isinstance``, never with ``hasattr``; a model
opts in by inheriting the class. The encoder–decoder interface that decoding and the
seq2seq task need is the ``Seq2Seq`` base class itself (``dlcamp.models.sequence.seq2seq``),
and the language-model interface is ``LanguageModel`` (``dlcamp.models.sequence.language``).

Legend: B batch, S tokens read, T tokens attended over (S plus any leading extra token,
such as a class token), nh heads.
"""

from __future__ import annotations

import abc

import torch


class CountingModel(abc.ABC):
    """A model fitted by counting, not by gradients (the n-gram baseline): no optimizer runs.

    A training step calls ``observe`` with a batch; ``finalize`` merges what was observed
    (after each epoch). The model has no parameters.
    """

    @abc.abstractmethod
    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Count a batch: x (B, S) contexts, y (B, S) the tokens that follow them."""

    @abc.abstractmethod
    def finalize(self) -> None:
        """Merge the pending counts into the model (idempotent)."""


class TokenAttentionMapper(abc.ABC):
    """A token model that can show where each token looked: its self-attention, layer by layer."""

    @abc.abstractmethod
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (B, S) token ids -> per layer the attention weights (B, nh, T, T); extra tokens come first."""
