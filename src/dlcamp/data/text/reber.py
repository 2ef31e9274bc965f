"""The ``reber`` dataset: the embedded Reber grammar, a long-time-lag memory test.

A. S. Reber, "Implicit learning of artificial grammars", 1967; the long-time-lag benchmark
of Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 1997, section
5.1. Strings ``B T <reber> T E`` or ``B P <reber> P E``: to predict the second-to-last
symbol a network must carry the second symbol across the whole inner string. A plain
RNN's gradient through that many steps vanishes; LSTM and GRU gates let it through.
``max_length`` is the distance knob.

Shape letters: N strings, L input length (max_length + 2).
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from dlcamp.data import register_dataset
from dlcamp.data.module import DataModule
from dlcamp.data.text.base import SPLITS, LineInputs, TextDataModule, check_sizes
from dlcamp.data.text.vocab import Vocab, encode_padded
from dlcamp.errors import UsageError
from dlcamp.registry import forwards

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
    return (
        len(s) >= REBER_MIN_LENGTH + 4
        and s[0] == "B"
        and s[1] in "TP"
        and s[-2] == s[1]
        and s[-1] == "E"
        and is_reber(s[2:-2])
    )


def _reber_choices(max_length: int) -> list[list[tuple[tuple[str, int | None], ...]]]:
    """choices[state][r]: the transitions from ``state`` after which exactly r - 1 more symbols end the string.

    Dynamic programming backwards from the final E; a walk that only takes these choices
    ends with exactly the length it was asked for.
    """
    can_end = [[False] * (max_length + 1) for _ in REBER_TRANSITIONS]  # can_end[s][r]: r symbols finish from s
    choices: list[list[tuple]] = [[()] * (max_length + 1) for _ in REBER_TRANSITIONS]
    for r in range(1, max_length + 1):
        for state, moves in REBER_TRANSITIONS.items():
            ok = tuple(
                (sym, nxt)
                for sym, nxt in moves
                if (nxt is None and r == 1) or (nxt is not None and can_end[nxt][r - 1])
            )
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


class ReberData(LineInputs, TextDataModule):
    """Embedded Reber strings, cut before the closing symbol pair: predict T (0) or P (1).

    Input: ``B``, the second symbol (T or P), then the inner Reber string, as LongTensor[L]
    with L = max_length + 2, right-padded with PAD. Target: 0 if the symbol that must
    follow is T, 1 if P, i.e. the second symbol. Inner lengths are uniform over
    [min_length, max_length]; the classes are exactly balanced (a shuffled half-and-half).
    ``strings`` holds the full embedded strings per split. Short strings can repeat, also
    across splits (there are only two inner strings of length 5); what is tested is the
    memory, not the strings.
    """

    @forwards(DataModule)
    def __init__(
        self,
        *,
        min_length: int = 5,
        max_length: int = 20,
        n_train: int = 2000,
        n_val: int = 500,
        n_test: int = 500,
        data_seed: int = 0,
        **loader_args: Any,
    ) -> None:
        super().__init__(**loader_args)
        if not isinstance(min_length, int) or min_length < REBER_MIN_LENGTH:
            raise UsageError(
                f"data.min_length must be an integer >= {REBER_MIN_LENGTH} (the shortest Reber "
                f"strings, BTXSE and BPVVE), got {min_length!r}"
            )
        if not isinstance(max_length, int) or max_length < min_length:
            raise UsageError(f"data.max_length must be an integer >= data.min_length={min_length}, got {max_length!r}")
        sizes = check_sizes(n_train=n_train, n_val=n_val, n_test=n_test)
        self.min_length, self.max_length, self.data_seed = min_length, max_length, data_seed
        self.vocab = Vocab(REBER_SYMBOLS)
        self.input_len = self.source_len = self.max_len = max_length + 2
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
            x = encode_padded(self.vocab, [s[:-2] for s in strings], self.input_len)  # (N, L)
            self._tensors[name] = (x, torch.tensor(labels, dtype=torch.long))
        self.num_classes = 2
        self.input_shape = (self.input_len,)
        self.class_names = ["T", "P"]

    def build_splits(self) -> dict[str, Dataset]:
        return {name: TensorDataset(*self._tensors[name]) for name in SPLITS}


@register_dataset("reber")
@forwards(ReberData)
def reber(**kwargs: Any) -> ReberData:
    """The embedded Reber grammar: remember the 2nd symbol across an inner string of min..max_length."""
    return ReberData(**kwargs)


__all__ = [
    "REBER_MIN_LENGTH",
    "REBER_SYMBOLS",
    "REBER_TRANSITIONS",
    "ReberData",
    "is_embedded_reber",
    "is_reber",
    "reber",
    "reber_string",
]
