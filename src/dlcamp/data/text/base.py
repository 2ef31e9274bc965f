"""What the text data modules share: the splits, size checks, line inputs and a base class.

A text data module (``TextDataModule``) holds a ``Vocab`` and serves fixed-length
LongTensors; it offers the model builders ``vocab_size`` and ``max_len`` (the longest
sequence a model must embed). The data depend on ``data_seed`` (default 0), never on the
run's ``seed``, which only drives shuffling.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dlcamp.data.contracts import TextData
from dlcamp.data.module import DataModule
from dlcamp.data.text.vocab import Vocab, encode_padded
from dlcamp.errors import DataNotFoundError, UsageError

SPLITS = ("train", "val", "test")


def check_sizes(**sizes: int) -> dict[str, int]:
    """{"train": n_train, ...} after checking each is a positive integer."""
    for key, n in sizes.items():
        if not isinstance(n, int) or n < 1:
            raise UsageError(f"data.{key} must be a positive integer, got {n!r}")
    return {name[2:]: n for name, n in sizes.items()}


class TextDataModule(TextData, DataModule):
    """Base of the text data modules: a ``vocab`` and ``max_len``, offered to model builders.

    A subclass sets ``vocab`` and ``max_len`` (the longest sequence a model sees: window,
    padded input, or the longer of source and target) in ``__init__``.
    """

    vocab: Vocab
    max_len: int

    def model_facts(self) -> dict[str, int]:
        return {"vocab_size": len(self.vocab), "max_len": self.max_len}


class LineInputs:
    """``dlcamp predict`` for token-sequence data: each non-empty line of a file is one input.

    Needs ``self.vocab`` and ``self.source_len`` (the padded input length).
    """

    vocab: Vocab
    source_len: int

    def encode_source(self, text: str) -> torch.Tensor:
        """One source string as LongTensor[S], PAD-padded; UsageError if too long or out of vocabulary."""
        if len(text) > self.source_len:
            raise UsageError(f"source {text!r} has {len(text)} characters; this task takes at most {self.source_len}")
        unknown = sorted({c for c in text if c not in self.vocab.stoi})
        if unknown:
            raise UsageError(f"source {text!r} has characters outside the vocabulary: {''.join(unknown)!r}")
        return encode_padded(self.vocab, [text], self.source_len)[0]

    @staticmethod
    def read_lines(path: Path) -> list[str]:
        """The non-empty lines of a text file, stripped; UsageError if there are none."""
        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"no text file at {path}")
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            raise UsageError(f"{path} has no source lines; write one source string per line")
        return lines

    def load_input(self, path: Path) -> torch.Tensor:
        """The non-empty lines of a text file, each a source string, as LongTensor[N, S]."""
        return torch.stack([self.encode_source(line) for line in self.read_lines(path)])


__all__ = ["SPLITS", "LineInputs", "TextDataModule", "check_sizes"]
