"""Text data: a character corpus, the embedded Reber grammar and synthetic seq2seq tasks.

Everything here is characters mapped to integer ids by one ``Vocab`` (PAD 0, BOS 1,
EOS 2, UNK 3, then the characters in sorted order), and every item is a fixed-length
LongTensor right-padded with PAD, so the default collate stacks a batch with no
``collate_fn``. The data is deterministic: it depends on ``data_seed`` (default 0), never
on the run's ``seed``, which only drives shuffling.

- ``text``: a character language-model corpus, after Karpathy's char-rnn ("The
  Unreasonable Effectiveness of Recurrent Neural Networks", 2015). Any text file or
  folder of ``*.py``/``*.txt``/``*.md`` files; by default the Python standard library's
  own source, which every installation carries, so the recipes run offline. Split by
  file, so that the validation loss measures generalisation to unseen files rather than
  to the other half of a function already seen. Items are non-overlapping windows
  ``(x, y)`` with y = x shifted left by one character: next-character prediction.
- ``reber``: the embedded Reber grammar (A. S. Reber, "Implicit learning of artificial
  grammars", 1967; the long-time-lag benchmark of Hochreiter & Schmidhuber, "Long
  Short-Term Memory", Neural Computation 1997, section 5.1). Strings ``B T <reber> T E``
  or ``B P <reber> P E``: to predict the second-to-last symbol a network must carry the
  second symbol across the whole inner string. A plain RNN's gradient through that many
  steps vanishes; LSTM and GRU gates let it through. ``max_length`` is the distance knob.
- ``dates``, ``reverse``, ``addition``: source string -> target string tasks for
  encoder–decoder models (date normalisation as in the classic "translate human-readable
  dates to ISO" attention exercise; reversal; addition as in Zaremba & Sutskever,
  "Learning to Execute", 2014, arXiv:1410.4615). Shapes: src (S,) without BOS/EOS, tgt (T,)
  = BOS + target + EOS, both PAD-padded. No source string is in two splits.

Shape letters: N items, T window length or target length, S source length, L Reber input length.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import string
import sysconfig
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from dlcamp.data import register_dataset
from dlcamp.data.module import DataModule
from dlcamp.errors import DataNotFoundError, UsageError

SPLITS = ("train", "val", "test")


# -- vocabulary -----------------------------------------------------------------------------

class Vocab:
    """Characters <-> ids: the four specials first, then the characters in sorted order."""

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, chars: Iterable[str]) -> None:
        chars = set(chars)
        if any(len(c) != 1 for c in chars):
            raise ValueError("a Vocab is built from single characters")
        self.itos: list[str] = list(self.SPECIALS) + sorted(chars)
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; a character outside the vocabulary -> UNK."""
        return [self.stoi.get(c, self.UNK) for c in text]

    def encode_tensor(self, text: str) -> torch.Tensor:
        """``encode`` as a LongTensor[len(text)], vectorised for corpora of millions of characters."""
        codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
        distinct, inverse = np.unique(codes, return_inverse=True)
        table = np.array([self.stoi.get(chr(c), self.UNK) for c in distinct], dtype=np.int64)
        return torch.from_numpy(table[inverse.reshape(-1)])

    def decode(self, ids: Iterable[int] | torch.Tensor, strip: bool = True) -> str:
        """Ids -> text. ``strip``: stop at the first EOS and drop PAD and BOS."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        chars = []
        for i in ids:
            if strip and i == self.EOS:
                break
            if strip and i in (self.PAD, self.BOS):
                continue
            chars.append(self.itos[i])
        return "".join(chars)


def _encode_padded(vocab: Vocab, strings: Sequence[str], length: int, bos_eos: bool = False) -> torch.Tensor:
    """Strings -> LongTensor[N, length] of ids, right-padded with PAD; ``bos_eos`` wraps each in BOS ... EOS.

    Vectorised (one ``encode_tensor`` of the joined strings): tens of thousands of examples
    take milliseconds, not the second that a tensor per row would.
    """
    n, offset = len(strings), int(bos_eos)
    lengths = torch.tensor([len(s) for s in strings], dtype=torch.long)  # (N,)
    if n and int(lengths.max()) + 2 * offset > length:
        raise ValueError(f"a string of {int(lengths.max())} characters does not fit in {length} positions")
    out = torch.full((n, length), Vocab.PAD, dtype=torch.long)
    positions = torch.arange(length)  # (length,)
    # Row-major boolean indexing fills the masked positions in the order of the joined string.
    inside = (positions >= offset) & (positions < lengths[:, None] + offset)  # (N, length)
    out[inside] = vocab.encode_tensor("".join(strings))
    if bos_eos:
        out[:, 0] = Vocab.BOS
        out[torch.arange(n), lengths + 1] = Vocab.EOS
    return out


# -- the character corpus -------------------------------------------------------------------

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


class TextCorpusData(DataModule):
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

    def __init__(self, *, path: str | None = None, seq_len: int = 128, max_chars: int = 2_000_000,
                 batch_size: int | str = 64, eval_batch_size: int = 256, num_workers: int = 0,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        if not isinstance(seq_len, int) or seq_len < 1:
            raise UsageError(f"data.seq_len must be a positive integer, got {seq_len!r}")
        if not isinstance(max_chars, int) or max_chars < 1:
            raise UsageError(f"data.max_chars must be a positive integer, got {max_chars!r}")
        self.seq_len = seq_len
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
            raise UsageError(f"{where} has too little text: {total:,} characters leave the {', '.join(short)} "
                             f"split(s) without one window of seq_len={seq_len}+1 characters; give more text "
                             f"(about {20 * (seq_len + 1):,} characters at least) or a smaller data.seq_len")
        self.source = (f"{where}: {len(docs)} {'file' if len(docs) == 1 else 'files'}, "
                       f"{sum(len(c) for _, c in docs):,} characters, split by {self.split_by}")
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
                raise DataNotFoundError(f"data.path {path!r} does not exist; give a text file or a folder of "
                                        f"{'/'.join('*' + s for s in TEXT_SUFFIXES)} files")
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

    def model_facts(self) -> dict[str, int]:
        return {"vocab_size": len(self.vocab), "max_len": self.seq_len}


@register_dataset("text")
def text(*, path: str | None = None, seq_len: int = 128, max_chars: int = 2_000_000, batch_size: int | str = 64,
         eval_batch_size: int = 256, num_workers: int = 0, seed: int = 0) -> TextCorpusData:
    """A character corpus (a file or folder; default: Python's standard library source) in windows of seq_len."""
    return TextCorpusData(path=path, seq_len=seq_len, max_chars=max_chars, batch_size=batch_size,
                          eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)


# -- the embedded Reber grammar ---------------------------------------------------------------

# The Reber grammar as a finite automaton. A string starts with B (into state 0); each state
# lists its (symbol, next state) transitions; state 5 emits the closing E. The loops S (state
# 1) and T (state 2) and the cycle V, P, X (states 2 -> 4 -> 3 -> 2) make strings arbitrarily long.
REBER_TRANSITIONS: dict[int, tuple[tuple[str, int | None], ...]] = {
    0: (("T", 1), ("P", 2)),
    1: (("S", 1), ("X", 3)),
    2: (("T", 2), ("V", 4)),
    3: (("X", 2), ("S", 5)),
    4: (("P", 3), ("V", 5)),
    5: (("E", None),),
}
REBER_SYMBOLS = "BTPSXVE"
REBER_MIN_LENGTH = 5  # BTXSE, BPVVE


def is_reber(s: str) -> bool:
    """Whether ``s`` is a string of the (inner) Reber grammar: B, a walk of the automaton, E."""
    if not s.startswith("B"):
        return False
    state: int | None = 0
    for symbol in s[1:]:
        if state is None:
            return False  # symbols after the final E
        moves = dict(REBER_TRANSITIONS[state])
        if symbol not in moves:
            return False
        state = moves[symbol]
    return state is None


def is_embedded_reber(s: str) -> bool:
    """Whether ``s`` is ``B T <reber> T E`` or ``B P <reber> P E``."""
    return (len(s) >= REBER_MIN_LENGTH + 4 and s[0] == "B" and s[1] in "TP" and s[-2] == s[1] and s[-1] == "E"
            and is_reber(s[2:-2]))


def _reber_choices(max_length: int) -> list[list[tuple[tuple[str, int | None], ...]]]:
    """choices[state][r]: the transitions from ``state`` after which exactly r - 1 more symbols end the string.

    Dynamic programming backwards from the final E; a walk that only takes these choices
    ends with exactly the length it was asked for.
    """
    can_end = [[False] * (max_length + 1) for _ in REBER_TRANSITIONS]  # can_end[s][r]: r symbols finish from s
    choices: list[list[tuple]] = [[()] * (max_length + 1) for _ in REBER_TRANSITIONS]
    for r in range(1, max_length + 1):
        for state, moves in REBER_TRANSITIONS.items():
            ok = tuple((sym, nxt) for sym, nxt in moves
                       if (nxt is None and r == 1) or (nxt is not None and can_end[nxt][r - 1]))
            choices[state][r], can_end[state][r] = ok, bool(ok)
    return choices


def reber_string(length: int, rng: random.Random, choices: list | None = None) -> str:
    """A random Reber string of exactly ``length`` symbols (>= 5): a walk taking, at each step,
    a uniformly chosen transition among those that can still end at that length."""
    choices = choices or _reber_choices(length)
    symbols, state, left = ["B"], 0, length - 1
    while state is not None:
        symbol, state = rng.choice(choices[state][left])
        symbols.append(symbol)
        left -= 1
    return "".join(symbols)


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
        return _encode_padded(self.vocab, [text], self.source_len)[0]

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



class ReberData(LineInputs, DataModule):
    """Embedded Reber strings, cut before the closing symbol pair: predict T (0) or P (1).

    Input: ``B``, the second symbol (T or P), then the inner Reber string, as LongTensor[L]
    with L = max_length + 2, right-padded with PAD. Target: 0 if the symbol that must
    follow is T, 1 if P, i.e. the second symbol. Inner lengths are uniform over
    [min_length, max_length]; the classes are exactly balanced (a shuffled half-and-half).
    ``strings`` holds the full embedded strings per split. Short strings can repeat, also
    across splits (there are only two inner strings of length 5); what is tested is the
    memory, not the strings.
    """

    def __init__(self, *, min_length: int = 5, max_length: int = 20, n_train: int = 2000, n_val: int = 500,
                 n_test: int = 500, data_seed: int = 0, batch_size: int | str = 64, eval_batch_size: int = 256,
                 num_workers: int = 0, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        if not isinstance(min_length, int) or min_length < REBER_MIN_LENGTH:
            raise UsageError(f"data.min_length must be an integer >= {REBER_MIN_LENGTH} (the shortest Reber "
                             f"strings, BTXSE and BPVVE), got {min_length!r}")
        if not isinstance(max_length, int) or max_length < min_length:
            raise UsageError(f"data.max_length must be an integer >= data.min_length={min_length}, got {max_length!r}")
        sizes = _check_sizes(n_train=n_train, n_val=n_val, n_test=n_test)
        self.min_length, self.max_length, self.data_seed = min_length, max_length, data_seed
        self.vocab = Vocab(REBER_SYMBOLS)
        self.input_len = self.source_len = max_length + 2
        rng = random.Random(f"reber:{data_seed}")
        choices = _reber_choices(max_length)
        self.strings: dict[str, list[str]] = {}
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name in SPLITS:
            n = sizes[name]
            labels = [i % 2 for i in range(n)]
            rng.shuffle(labels)
            strings = []
            for label in labels:
                inner = reber_string(rng.randint(min_length, max_length), rng, choices)
                second = "TP"[label]
                strings.append(f"B{second}{inner}{second}E")
            self.strings[name] = strings
            x = _encode_padded(self.vocab, [s[:-2] for s in strings], self.input_len)  # (N, L)
            self._tensors[name] = (x, torch.tensor(labels, dtype=torch.long))
        self.num_classes = 2
        self.input_shape = (self.input_len,)
        self.class_names = ["T", "P"]

    def build_splits(self) -> dict[str, Dataset]:
        return {name: TensorDataset(*self._tensors[name]) for name in SPLITS}

    def model_facts(self) -> dict[str, int]:
        return {"vocab_size": len(self.vocab), "max_len": self.input_len}


@register_dataset("reber")
def reber(*, min_length: int = 5, max_length: int = 20, n_train: int = 2000, n_val: int = 500, n_test: int = 500,
          data_seed: int = 0, batch_size: int | str = 64, eval_batch_size: int = 256, num_workers: int = 0,
          seed: int = 0) -> ReberData:
    """The embedded Reber grammar: remember the 2nd symbol across an inner string of min..max_length."""
    return ReberData(min_length=min_length, max_length=max_length, n_train=n_train, n_val=n_val, n_test=n_test,
                     data_seed=data_seed, batch_size=batch_size, eval_batch_size=eval_batch_size,
                     num_workers=num_workers, seed=seed)


# -- seq2seq tasks --------------------------------------------------------------------------

def _check_sizes(**sizes: int) -> dict[str, int]:
    """{"train": n_train, ...} after checking each is a positive integer."""
    for key, n in sizes.items():
        if not isinstance(n, int) or n < 1:
            raise UsageError(f"data.{key} must be a positive integer, got {n!r}")
    return {name[2:]: n for name, n in sizes.items()}


class Seq2SeqData(LineInputs, DataModule):
    """(source, target) string pairs as (src LongTensor[S], tgt LongTensor[T]) for encoder–decoder models.

    src: the source characters, right-padded with PAD to S (no BOS/EOS). tgt: BOS, the
    target characters, EOS, right-padded to T = ``max_target_len``. One vocabulary for both
    sides. ``examples`` holds the raw (source, target) strings per split.
    """

    def __init__(self, *, examples: dict[str, list[tuple[str, str]]], vocab: Vocab, source_len: int,
                 target_chars: int, batch_size: int | str = 64, eval_batch_size: int = 256, num_workers: int = 0,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        self.examples, self.vocab = examples, vocab
        self.source_len, self.max_target_len = source_len, target_chars + 2
        self._tensors = {
            name: (_encode_padded(vocab, [src for src, _ in pairs], source_len),  # (N, S)
                   _encode_padded(vocab, [tgt for _, tgt in pairs], self.max_target_len, bos_eos=True))  # (N, T)
            for name, pairs in examples.items()
        }
        self.num_classes = len(vocab)
        self.input_shape = (source_len,)
        self.class_names = list(vocab.itos)

    def build_splits(self) -> dict[str, Dataset]:
        return {name: TensorDataset(*self._tensors[name]) for name in SPLITS}

    def model_facts(self) -> dict[str, int]:
        return {"vocab_size": len(self.vocab), "max_len": max(self.source_len, self.max_target_len)}


def _draw_distinct(n_total: int, draw: Callable[[], tuple[str, str]], what: str) -> list[tuple[str, str]]:
    """``n_total`` examples with distinct sources, by rejection; UsageError if they run out."""
    seen: dict[str, str] = {}
    for _ in range(20 * n_total + 1000):
        if len(seen) == n_total:
            break
        source, target = draw()
        seen.setdefault(source, target)
    if len(seen) < n_total:
        raise UsageError(f"could not draw {n_total:,} distinct {what}; lower data.n_train/n_val/n_test "
                         "or allow longer strings")
    return list(seen.items())


def _split_examples(pairs: list[tuple[str, str]], sizes: dict[str, int]) -> dict[str, list[tuple[str, str]]]:
    """Consecutive runs of ``pairs``: the first n_train to train, the next n_val to val, then test."""
    out, start = {}, 0
    for name in SPLITS:
        out[name], start = pairs[start : start + sizes[name]], start + sizes[name]
    return out


# Dates. Names are written out here (not strftime's %B) so that the data do not depend on the locale.
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FIRST_DATE, LAST_DATE = dt.date(1950, 1, 1), dt.date(2049, 12, 31)


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


# form name -> render(year, month, day, weekday 0=Monday); 21 November 2026 shown. Every form
# gives one date only: the numeric ones are told apart by separator and the year's position.
_DATE_RENDER: dict[str, Callable[[int, int, int, int], str]] = {
    "day_month_year": lambda y, m, d, w: f"{d} {MONTHS[m - 1]} {y}",                    # 21 November 2026
    "month_day_year": lambda y, m, d, w: f"{MONTHS[m - 1]} {d}, {y}",                   # November 21, 2026
    "mon_day_year": lambda y, m, d, w: f"{MONTHS[m - 1][:3]} {d} {y}",                  # Nov 21 2026
    "day_mon_year_lower": lambda y, m, d, w: f"{d} {MONTHS[m - 1][:3].lower()} {y}",    # 21 nov 2026
    "day_mon_year_upper": lambda y, m, d, w: f"{d} {MONTHS[m - 1][:3].upper()} {y}",    # 21 NOV 2026
    # Saturday, 21 November 2026 (the true weekday of the date)
    "weekday_day_month_year": lambda y, m, d, w: f"{WEEKDAYS[w]}, {d} {MONTHS[m - 1]} {y}",
    "wkd_day_mon_year": lambda y, m, d, w: f"{WEEKDAYS[w][:3]} {d} {MONTHS[m - 1][:3]} {y}",  # Sat 21 Nov 2026
    "ordinal_of_month_year": lambda y, m, d, w: f"{_ordinal(d)} of {MONTHS[m - 1]} {y}",  # 21st of November 2026
    "month_ordinal_year": lambda y, m, d, w: f"{MONTHS[m - 1]} {_ordinal(d)}, {y}",      # November 21st, 2026
    "day_mon_year_dashed": lambda y, m, d, w: f"{d:02d}-{MONTHS[m - 1][:3]}-{y}",        # 21-Nov-2026
    "dd.mm.yyyy": lambda y, m, d, w: f"{d:02d}.{m:02d}.{y}",                             # 21.11.2026
    "yyyy/mm/dd": lambda y, m, d, w: f"{y}/{m:02d}/{d:02d}",                             # 2026/11/21
    "mm/dd/yyyy": lambda y, m, d, w: f"{m:02d}/{d:02d}/{y}",                             # 11/21/2026 (US)
    "yyyymmdd": lambda y, m, d, w: f"{y}{m:02d}{d:02d}",                                 # 20261121
}
DATE_FORMS: list[str] = list(_DATE_RENDER)


def render_date(date: dt.date, form: str) -> str:
    """``date`` written in the named form (one of ``DATE_FORMS``)."""
    return _DATE_RENDER[form](date.year, date.month, date.day, date.weekday())


@lru_cache(maxsize=1)
def _date_vocab_and_len() -> tuple[Vocab, int, int]:
    """The vocabulary of every form, the longest source and the target length (10, YYYY-MM-DD).

    Years always have four digits, so every month, day and weekday written in year 2000
    covers all characters and lengths.
    """
    chars, longest = set("0123456789-"), 0
    for render in _DATE_RENDER.values():
        for m in range(1, 13):
            for d in range(1, 32):
                for w in range(7):
                    s = render(2000, m, d, w)
                    chars.update(s)
                    longest = max(longest, len(s))
    return Vocab(chars), longest, len("YYYY-MM-DD")


@register_dataset("dates")
def dates(*, n_train: int = 20_000, n_val: int = 1000, n_test: int = 1000, forms: list[str] | None = None,
          data_seed: int = 0, batch_size: int | str = 64, eval_batch_size: int = 256, num_workers: int = 0,
          seed: int = 0) -> Seq2SeqData:
    """Date normalisation: many written forms of a date (1950–2049) -> ISO YYYY-MM-DD."""
    sizes = _check_sizes(n_train=n_train, n_val=n_val, n_test=n_test)
    forms = list(DATE_FORMS if forms is None else forms)
    unknown = [f for f in forms if f not in _DATE_RENDER]
    if unknown or not forms:
        raise UsageError(f"data.forms must be a non-empty list of {', '.join(DATE_FORMS)}; got {forms!r}")
    rng = random.Random(f"dates:{data_seed}")
    # Dates, not strings, are split: a date of the test set is never seen in training, in any form.
    days = [FIRST_DATE + dt.timedelta(k) for k in range((LAST_DATE - FIRST_DATE).days + 1)]
    rng.shuffle(days)
    pools = {"test": days[:n_test], "val": days[n_test : n_test + n_val], "train": days[n_test + n_val :]}
    examples = {}
    for name in SPLITS:
        pool, n = pools[name], sizes[name]
        if n <= len(pool):  # one example per date, in a random form
            picks = [(day, rng.choice(forms)) for day in rng.sample(pool, n)]
        elif n <= len(pool) * len(forms):  # distinct (date, form) pairs
            pairs = rng.sample(range(len(pool) * len(forms)), n)
            picks = [(pool[k // len(forms)], forms[k % len(forms)]) for k in pairs]
        else:
            raise UsageError(f"data.n_{name}={n:,} is more than the {len(pool):,} dates left for {name} in "
                             f"{len(forms)} forms can give; there are {len(days):,} dates in 1950–2049")
        examples[name] = [(render_date(day, form), day.isoformat()) for day, form in picks]
    vocab, source_len, target_chars = _date_vocab_and_len()
    return Seq2SeqData(examples=examples, vocab=vocab, source_len=source_len, target_chars=target_chars,
                       batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)


@register_dataset("reverse")
def reverse(*, min_len: int = 3, max_len: int = 12, n_train: int = 10_000, n_val: int = 1000, n_test: int = 1000,
            data_seed: int = 0, batch_size: int | str = 64, eval_batch_size: int = 256, num_workers: int = 0,
            seed: int = 0) -> Seq2SeqData:
    """String reversal: random lowercase strings of min_len..max_len letters -> the same reversed."""
    sizes = _check_sizes(n_train=n_train, n_val=n_val, n_test=n_test)
    if not isinstance(min_len, int) or min_len < 1:
        raise UsageError(f"data.min_len must be a positive integer, got {min_len!r}")
    if not isinstance(max_len, int) or max_len < min_len:
        raise UsageError(f"data.max_len must be an integer >= data.min_len={min_len}, got {max_len!r}")
    rng = random.Random(f"reverse:{data_seed}")
    letters = string.ascii_lowercase

    def draw() -> tuple[str, str]:
        s = "".join(rng.choices(letters, k=rng.randint(min_len, max_len)))
        return s, s[::-1]

    pairs = _draw_distinct(sum(sizes.values()), draw, f"strings of {min_len}..{max_len} letters")
    return Seq2SeqData(examples=_split_examples(pairs, sizes), vocab=Vocab(letters), source_len=max_len,
                       target_chars=max_len, batch_size=batch_size, eval_batch_size=eval_batch_size,
                       num_workers=num_workers, seed=seed)


@register_dataset("addition")
def addition(*, max_digits: int = 4, n_train: int = 20_000, n_val: int = 1000, n_test: int = 1000,
             data_seed: int = 0, batch_size: int | str = 64, eval_batch_size: int = 256, num_workers: int = 0,
             seed: int = 0) -> Seq2SeqData:
    """Addition: "123+4567" -> "4690", operands of 1..max_digits digits."""
    sizes = _check_sizes(n_train=n_train, n_val=n_val, n_test=n_test)
    if not isinstance(max_digits, int) or max_digits < 1:
        raise UsageError(f"data.max_digits must be a positive integer, got {max_digits!r}")
    rng = random.Random(f"addition:{data_seed}")

    def operand() -> int:
        # The number of digits first, uniformly: otherwise nearly all operands would be long.
        digits = rng.randint(1, max_digits)
        return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)

    def draw() -> tuple[str, str]:
        a, b = operand(), operand()
        return f"{a}+{b}", str(a + b)

    pairs = _draw_distinct(sum(sizes.values()), draw, f"sums of numbers of up to {max_digits} digits")
    return Seq2SeqData(examples=_split_examples(pairs, sizes), vocab=Vocab("0123456789+"),
                       source_len=2 * max_digits + 1, target_chars=max_digits + 1, batch_size=batch_size,
                       eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)


__all__ = ["DATE_FORMS", "ReberData", "Seq2SeqData", "TextCorpusData", "Vocab", "WindowDataset", "addition",
           "dates", "is_embedded_reber", "is_reber", "reber", "reber_string", "render_date", "reverse", "text"]
