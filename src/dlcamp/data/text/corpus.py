"""The ``text`` dataset: a character corpus for next-character prediction.

After Karpathy's char-rnn ("The Unreasonable Effectiveness of Recurrent Neural Networks",
2015). Any text file or folder of ``*.py``/``*.txt``/``*.md`` files; by default the Python
standard library's own source, which every installation carries, so the recipes run
offline. Split by file, so that the validation loss measures generalisation to unseen
files rather than to the other half of a function already seen. Items are
non-overlapping windows ``(x, y)`` with y = x shifted left by one character.

Shape letters: T window length.
"""

from __future__ import annotations

import os
import sysconfig
import zlib
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from dlcamp.data import register_dataset
from dlcamp.data.module import DataModule
from dlcamp.data.text.base import SPLITS, TextDataModule
from dlcamp.data.text.vocab import Vocab
from dlcamp.errors import DataNotFoundError, UsageError
from dlcamp.registry import forwards

TEXT_SUFFIXES = (".py", ".txt", ".md")
STDLIB_SKIP = frozenset({"site-packages", "test", "tests", "idlelib"})
SPLIT_SHARES = {"val": 0.05, "test": 0.05}  # the rest (90%) is train


def _find_files(root: Path, suffixes: tuple[str, ...], skip_dirs: frozenset[str]) -> list[tuple[str, Path]]:
    """(relative posix path, path) of the matching files under ``root``, sorted by relative path.

    Hidden files and folders (a leading dot: .git, .venv) and ``__pycache__`` are skipped.
    """
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip_dirs and d != "__pycache__" and not d.startswith(".")]
        for name in files:
            if name.endswith(suffixes) and not name.startswith("."):
                path = Path(folder, name)
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def _read_capped(files: list[tuple[str, Path]], max_chars: int) -> list[tuple[str, str]]:
    """(relative path, text) of the files in order until ``max_chars`` characters (the last one cut)."""
    docs, total = [], 0
    for rel, path in files:
        if total >= max_chars:
            break
        content = path.read_text(encoding="utf-8", errors="replace")[: max_chars - total]
        if content:
            docs.append((rel, content))
            total += len(content)
    return docs


def _split_by_file(docs: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Whole files to train/val/test, ~90/5/5 by characters, decided by a stable hash of the path.

    Files are visited in the order of crc32(relative path) (stable across runs and machines,
    unlike Python's salted ``hash``); a file goes to test while test is below its 5% share,
    then to val likewise, else to train. A file that would take a split past twice its share
    goes to train, so one large file cannot swallow the test set.
    """
    total = sum(len(content) for _, content in docs)
    share = {name: frac * total for name, frac in SPLIT_SHARES.items()}
    filled = dict.fromkeys(SPLIT_SHARES, 0)
    parts: dict[str, list[tuple[str, str]]] = {name: [] for name in SPLITS}
    for rel, content in sorted(docs, key=lambda doc: (zlib.crc32(doc[0].encode("utf-8")), doc[0])):
        target = "train"
        for name in ("test", "val"):
            if filled[name] < share[name] and filled[name] + len(content) <= 2 * share[name]:
                target = name
                filled[name] += len(content)
                break
        parts[target].append((rel, content))
    return {name: sorted(part) for name, part in parts.items()}


class WindowDataset(Dataset):
    """Non-overlapping windows of a long id sequence: item i = (ids[iT : iT+T], ids[iT+1 : iT+T+1])."""

    def __init__(self, ids: torch.Tensor, seq_len: int) -> None:
        self.ids, self.seq_len = ids, seq_len

    def __len__(self) -> int:
        return max(0, (len(self.ids) - 1) // self.seq_len)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.seq_len
        return self.ids[start : start + self.seq_len], self.ids[start + 1 : start + self.seq_len + 1]


class TextCorpusData(TextDataModule):
    """A character corpus as windows for next-character prediction (see the module docstring).

    Reading: the files in sorted order of their relative paths, until ``max_chars``
    characters (the last file cut there), as UTF-8 with undecodable bytes replaced; joined
    by "\n". Split: whole files, ~90/5/5 by characters (``_split_by_file``). A file's split
    depends on the set of files read, not on its path alone: the 5% shares are filled file by
    file. With fewer than 3 files, or when a split by file leaves val or test without one
    window, the joined text is cut by position 90/5/5 instead (``split_by == "position"``).
    The vocabulary is the training split's characters; others map to UNK.

    Facts for reports: ``source`` (what was read), ``split_by`` ("file" or "position"),
    ``split_files`` (relative paths per split), ``split_chars`` (characters per split).
    """

    @forwards(DataModule)
    def __init__(
        self, *, path: str | None = None, seq_len: int = 128, max_chars: int = 2_000_000, **loader_args: Any
    ) -> None:
        super().__init__(**loader_args)
        if not isinstance(seq_len, int) or seq_len < 1:
            raise UsageError(f"data.seq_len must be a positive integer, got {seq_len!r}")
        if not isinstance(max_chars, int) or max_chars < 1:
            raise UsageError(f"data.max_chars must be a positive integer, got {max_chars!r}")
        self.seq_len = self.max_len = seq_len
        docs, where = self._read(path, max_chars)
        texts: dict[str, str] | None = None
        if len(docs) >= 3:
            parts = _split_by_file(docs)
            texts = {name: "\n".join(content for _, content in parts[name]) for name in SPLITS}
            self.split_by = "file"
            self.split_files = {name: [rel for rel, _ in parts[name]] for name in SPLITS}
        if texts is None or min(len(t) for t in texts.values()) <= seq_len:
            # Too few files to split by file, or a split too small for one window: cut the
            # joined text by position instead, 90/5/5.
            whole = "\n".join(content for _, content in docs)
            a, b = int(0.90 * len(whole)), int(0.95 * len(whole))
            texts = {"train": whole[:a], "val": whole[a:b], "test": whole[b:]}
            self.split_by = "position"
            self.split_files = {name: [rel for rel, _ in docs] for name in SPLITS}
        short = {name: len(t) for name, t in texts.items() if len(t) <= seq_len}
        if short:
            total = sum(len(content) for _, content in docs)
            raise UsageError(
                f"{where} has too little text: {total:,} characters leave the {', '.join(short)} "
                f"split(s) without one window of seq_len={seq_len}+1 characters; give more text "
                f"(about {20 * (seq_len + 1):,} characters at least) or a smaller data.seq_len"
            )
        self.source = (
            f"{where}: {len(docs)} {'file' if len(docs) == 1 else 'files'}, "
            f"{sum(len(c) for _, c in docs):,} characters, split by {self.split_by}"
        )
        self.split_chars = {name: len(t) for name, t in texts.items()}
        self.vocab = Vocab(texts["train"])  # characters only seen in val/test become UNK
        self._ids = {name: self.vocab.encode_tensor(t) for name, t in texts.items()}
        self.num_classes = len(self.vocab)
        self.input_shape = (seq_len,)
        self.class_names = list(self.vocab.itos)

    @staticmethod
    def _read(path: str | None, max_chars: int) -> tuple[list[tuple[str, str]], str]:
        """(relative path, text) of the files read, and a description of where they came from."""
        if path is None:
            root = Path(sysconfig.get_paths()["stdlib"])
            files = _find_files(root, (".py",), STDLIB_SKIP)
            where = f"the Python standard library ({root})"
        else:
            root = Path(path).expanduser()
            if not root.exists():
                raise DataNotFoundError(
                    f"data.path {path!r} does not exist; give a text file or a folder of "
                    f"{'/'.join('*' + s for s in TEXT_SUFFIXES)} files"
                )
            files = [(root.name, root)] if root.is_file() else _find_files(root, TEXT_SUFFIXES, frozenset())
            where = str(root)
        docs = _read_capped(files, max_chars)
        if not docs and root.is_file():
            raise UsageError(f"{where} is empty; give a file with text in it")
        if not docs:
            kinds = "/".join("*" + s for s in TEXT_SUFFIXES)
            raise UsageError(f"{where} holds no text: no non-empty {kinds} files were found")
        return docs, where

    def build_splits(self) -> dict[str, Dataset]:
        return {name: WindowDataset(self._ids[name], self.seq_len) for name in SPLITS}

    def load_input(self, path: Path) -> torch.Tensor:
        """A text file as LongTensor[n] of ids (a prompt for sampling); unknown characters -> UNK."""
        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"no text file at {path}")
        content = path.read_text(encoding="utf-8", errors="replace")
        if not content:
            raise UsageError(f"{path} is empty; a prompt needs at least one character")
        return self.vocab.encode_tensor(content)


@register_dataset("text")
@forwards(TextCorpusData)
def text(**kwargs: Any) -> TextCorpusData:
    """A character corpus (a file or folder; default: Python's standard library source) in windows of seq_len."""
    return TextCorpusData(**kwargs)


__all__ = ["STDLIB_SKIP", "TEXT_SUFFIXES", "TextCorpusData", "WindowDataset", "text"]
