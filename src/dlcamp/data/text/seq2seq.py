"""The seq2seq datasets ``dates``, ``reverse`` and ``addition``: source string -> target string.

Tasks for encoder–decoder models: date normalisation (many written forms of a date -> ISO
YYYY-MM-DD, as in the classic "translate human-readable dates" attention exercise);
string reversal; and addition as in Zaremba & Sutskever, "Learning to Execute", 2014,
arXiv:1410.4615. Every task serves its pairs through one data module, ``Seq2SeqData``:
src (S,) without BOS/EOS, tgt (T,) = BOS + target + EOS, both PAD-padded. No source
string is in two splits. A new task is a builder that draws its pairs.

Shape letters: N pairs, S source length, T target length.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from functools import lru_cache
from typing import Any, Callable

from torch.utils.data import Dataset, TensorDataset

from dlcamp.data import contracts, register_dataset
from dlcamp.data.module import DataModule
from dlcamp.data.text.base import SPLITS, LineInputs, TextDataModule, check_sizes
from dlcamp.data.text.vocab import Vocab, encode_padded
from dlcamp.errors import UsageError
from dlcamp.registry import forwards


class Seq2SeqData(LineInputs, contracts.Seq2SeqData, TextDataModule):
    """(source, target) string pairs as (src LongTensor[S], tgt LongTensor[T]) for encoder–decoder models.

    src: the source characters, right-padded with PAD to S (no BOS/EOS). tgt: BOS, the
    target characters, EOS, right-padded to T = ``max_target_len``. One vocabulary for both
    sides. ``examples`` holds the raw (source, target) strings per split.
    """

    @forwards(DataModule)
    def __init__(
        self,
        *,
        examples: dict[str, list[tuple[str, str]]],
        vocab: Vocab,
        source_len: int,
        target_chars: int,
        **loader_args: Any,
    ) -> None:
        super().__init__(**loader_args)
        self.examples, self.vocab = examples, vocab
        self.source_len, self.max_target_len = source_len, target_chars + 2
        self.max_len = max(self.source_len, self.max_target_len)
        self._tensors = {
            name: (
                encode_padded(vocab, [src for src, _ in pairs], source_len),  # (N, S)
                encode_padded(vocab, [tgt for _, tgt in pairs], self.max_target_len, bos_eos=True),
            )  # (N, T)
            for name, pairs in examples.items()
        }
        self.num_classes = len(vocab)
        self.input_shape = (source_len,)
        self.class_names = list(vocab.itos)

    def build_splits(self) -> dict[str, Dataset]:
        return {name: TensorDataset(*self._tensors[name]) for name in SPLITS}


# The builders set what Seq2SeqData takes besides the loader options.
_DRAWN = ("examples", "vocab", "source_len", "target_chars")


def _draw_distinct(n_total: int, draw: Callable[[], tuple[str, str]], what: str) -> list[tuple[str, str]]:
    """``n_total`` examples with distinct sources, by rejection; UsageError if they run out."""
    seen: dict[str, str] = {}
    for _ in range(20 * n_total + 1000):
        if len(seen) == n_total:
            break
        source, target = draw()
        seen.setdefault(source, target)
    if len(seen) < n_total:
        raise UsageError(
            f"could not draw {n_total:,} distinct {what}; lower data.n_train/n_val/n_test or allow longer strings"
        )
    return list(seen.items())


def _split_examples(pairs: list[tuple[str, str]], sizes: dict[str, int]) -> dict[str, list[tuple[str, str]]]:
    """Consecutive runs of ``pairs``: the first n_train to train, the next n_val to val, then test."""
    out, start = {}, 0
    for name in SPLITS:
        out[name], start = pairs[start : start + sizes[name]], start + sizes[name]
    return out


# Dates. Names are written out here (not strftime's %B) so that the data do not depend on the locale.
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FIRST_DATE, LAST_DATE = dt.date(1950, 1, 1), dt.date(2049, 12, 31)


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


# form name -> render(year, month, day, weekday 0=Monday); 21 November 2026 shown. Every form
# gives one date only: the numeric ones are told apart by separator and the year's position.
_DATE_RENDER: dict[str, Callable[[int, int, int, int], str]] = {
    "day_month_year": lambda y, m, d, w: f"{d} {MONTHS[m - 1]} {y}",  # 21 November 2026
    "month_day_year": lambda y, m, d, w: f"{MONTHS[m - 1]} {d}, {y}",  # November 21, 2026
    "mon_day_year": lambda y, m, d, w: f"{MONTHS[m - 1][:3]} {d} {y}",  # Nov 21 2026
    "day_mon_year_lower": lambda y, m, d, w: f"{d} {MONTHS[m - 1][:3].lower()} {y}",  # 21 nov 2026
    "day_mon_year_upper": lambda y, m, d, w: f"{d} {MONTHS[m - 1][:3].upper()} {y}",  # 21 NOV 2026
    # Saturday, 21 November 2026 (the true weekday of the date)
    "weekday_day_month_year": lambda y, m, d, w: f"{WEEKDAYS[w]}, {d} {MONTHS[m - 1]} {y}",
    "wkd_day_mon_year": lambda y, m, d, w: f"{WEEKDAYS[w][:3]} {d} {MONTHS[m - 1][:3]} {y}",  # Sat 21 Nov 2026
    "ordinal_of_month_year": lambda y, m, d, w: f"{_ordinal(d)} of {MONTHS[m - 1]} {y}",  # 21st of November 2026
    "month_ordinal_year": lambda y, m, d, w: f"{MONTHS[m - 1]} {_ordinal(d)}, {y}",  # November 21st, 2026
    "day_mon_year_dashed": lambda y, m, d, w: f"{d:02d}-{MONTHS[m - 1][:3]}-{y}",  # 21-Nov-2026
    "dd.mm.yyyy": lambda y, m, d, w: f"{d:02d}.{m:02d}.{y}",  # 21.11.2026
    "yyyy/mm/dd": lambda y, m, d, w: f"{y}/{m:02d}/{d:02d}",  # 2026/11/21
    "mm/dd/yyyy": lambda y, m, d, w: f"{m:02d}/{d:02d}/{y}",  # 11/21/2026 (US)
    "yyyymmdd": lambda y, m, d, w: f"{y}{m:02d}{d:02d}",  # 20261121
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
@forwards(Seq2SeqData, drop=_DRAWN)
def dates(
    *,
    n_train: int = 20_000,
    n_val: int = 1000,
    n_test: int = 1000,
    forms: list[str] | None = None,
    data_seed: int = 0,
    **loader_args: Any,
) -> Seq2SeqData:
    """Date normalisation: many written forms of a date (1950–2049) -> ISO YYYY-MM-DD."""
    sizes = check_sizes(n_train=n_train, n_val=n_val, n_test=n_test)
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
            raise UsageError(
                f"data.n_{name}={n:,} is more than the {len(pool):,} dates left for {name} in "
                f"{len(forms)} forms can give; there are {len(days):,} dates in 1950–2049"
            )
        examples[name] = [(render_date(day, form), day.isoformat()) for day, form in picks]
    vocab, source_len, target_chars = _date_vocab_and_len()
    return Seq2SeqData(examples=examples, vocab=vocab, source_len=source_len, target_chars=target_chars, **loader_args)


@register_dataset("reverse")
@forwards(Seq2SeqData, drop=_DRAWN)
def reverse(
    *,
    min_len: int = 3,
    max_len: int = 12,
    n_train: int = 10_000,
    n_val: int = 1000,
    n_test: int = 1000,
    data_seed: int = 0,
    **loader_args: Any,
) -> Seq2SeqData:
    """String reversal: random lowercase strings of min_len..max_len letters -> the same reversed."""
    sizes = check_sizes(n_train=n_train, n_val=n_val, n_test=n_test)
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
    return Seq2SeqData(
        examples=_split_examples(pairs, sizes),
        vocab=Vocab(letters),
        source_len=max_len,
        target_chars=max_len,
        **loader_args,
    )


@register_dataset("addition")
@forwards(Seq2SeqData, drop=_DRAWN)
def addition(
    *,
    max_digits: int = 4,
    n_train: int = 20_000,
    n_val: int = 1000,
    n_test: int = 1000,
    data_seed: int = 0,
    **loader_args: Any,
) -> Seq2SeqData:
    """Addition: "123+4567" -> "4690", operands of 1..max_digits digits."""
    sizes = check_sizes(n_train=n_train, n_val=n_val, n_test=n_test)
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
    return Seq2SeqData(
        examples=_split_examples(pairs, sizes),
        vocab=Vocab("0123456789+"),
        source_len=2 * max_digits + 1,
        target_chars=max_digits + 1,
        **loader_args,
    )


__all__ = ["DATE_FORMS", "MONTHS", "WEEKDAYS", "Seq2SeqData", "addition", "dates", "render_date", "reverse"]
