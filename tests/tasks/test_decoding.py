"""Greedy and beam search against an exhaustive search on a model with known probabilities."""

from __future__ import annotations

import itertools

import pytest
import torch

from dlcamp.tasks.decoding import BOS, EOS, PAD, beam_search, greedy_decode

V = 5  # PAD, BOS, EOS, "a", "b"


class TableModel:
    """log p(next | src, prefix) from a fixed random table keyed by (src, prefix): any distribution at all."""

    def __init__(self, seed: int = 0, sharp: float = 2.0) -> None:
        self.seed, self.sharp, self.table = seed, sharp, {}

    def logits(self, key: tuple) -> torch.Tensor:
        if key not in self.table:
            g = torch.Generator().manual_seed(hash((self.seed,) + key) % (2**31))
            self.table[key] = torch.randn(V, generator=g) * self.sharp
        return self.table[key]

    def encode(self, src: torch.Tensor):
        return (src,)

    def decode(self, memory, prefix: torch.Tensor) -> torch.Tensor:
        (src,) = memory
        return torch.stack(
            [
                torch.stack(
                    [
                        self.logits((tuple(src[b].tolist()), tuple(prefix[b, : t + 1].tolist())))
                        for t in range(prefix.size(1))
                    ]
                )
                for b in range(prefix.size(0))
            ]
        )


def log_prob(model: TableModel, src: torch.Tensor, tokens: list[int]) -> float:
    """log p(tokens | src) with PAD and BOS excluded from the softmax, as the searches do."""
    total, prefix = 0.0, [BOS]
    for tok in tokens:
        logits = model.logits((tuple(src.tolist()), tuple(prefix))).clone()
        logits[[PAD, BOS]] = float("-inf")
        total += float(logits.log_softmax(0)[tok])
        prefix.append(tok)
    return total


def exhaustive(model: TableModel, src: torch.Tensor, max_len: int) -> tuple[list[int], float]:
    """The most probable finished output: at most ``max_len`` tokens, the last one EOS."""
    best, best_lp = None, float("-inf")
    for n in range(1, max_len + 1):
        for body in itertools.product([3, 4], repeat=n - 1):
            for last in [EOS]:
                seq = list(body) + [last]
                lp = log_prob(model, src, seq)
                if lp > best_lp:
                    best, best_lp = seq, lp
    return best, best_lp


def _strip(row: torch.Tensor) -> list[int]:
    return [t for t in row.tolist() if t != PAD]


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_finds_the_most_probable_output(seed):
    model, max_len = TableModel(seed), 4
    src = torch.tensor([[3, 4, 3], [4, 4, 3]])
    out = beam_search(model, src, max_len=max_len, beam_size=40)  # > all 3 + 9 + 27 + 81 prefixes that matter
    for b in range(len(src)):
        seq, lp = exhaustive(model, src[b], max_len)
        assert _strip(out[b]) == seq
        assert log_prob(model, src[b], _strip(out[b])) == pytest.approx(lp)


@pytest.mark.parametrize("seed", range(4))
def test_beam_of_one_is_greedy(seed):
    model = TableModel(seed)
    src = torch.tensor([[3, 4], [4, 3], [3, 3]])
    torch.testing.assert_close(beam_search(model, src, max_len=5, beam_size=1), greedy_decode(model, src, max_len=5))


def test_beam_beats_greedy_on_average():
    """Over many random tables a beam of 3 scores higher than greedy on average, and strictly higher often.

    (Not on every table: greedy's prefix can fall out of the beam and greedy can then win.)
    """
    wins, gain = 0, 0.0
    for seed in range(40):
        model = TableModel(seed, sharp=1.0)
        src = torch.tensor([[3]])
        g = _strip(greedy_decode(model, src, max_len=4)[0])
        b = _strip(beam_search(model, src, max_len=4, beam_size=3)[0])
        lg, lb = log_prob(model, src[0], g), log_prob(model, src[0], b)
        wins += lb > lg + 1e-9
        gain += lb - lg
    assert wins >= 5 and gain > 0


def test_outputs_stop_at_eos_and_pad_after():
    model = TableModel(3)
    src = torch.tensor([[3, 4], [4, 4], [3, 3], [4, 3]])
    for out in (greedy_decode(model, src, max_len=6), beam_search(model, src, max_len=6, beam_size=3)):
        for row in out.tolist():
            assert BOS not in row
            if EOS in row:
                i = row.index(EOS)
                assert all(t == PAD for t in row[i + 1 :])
            else:
                assert PAD not in row and len(row) == 6


def test_length_penalty_favours_longer_outputs():
    """With alpha > 0 the winner is at least as long as with alpha = 0 (scores divided by length^alpha)."""
    longer = 0
    for seed in range(20):
        model = TableModel(seed, sharp=1.0)
        src = torch.tensor([[4]])
        short = _strip(beam_search(model, src, max_len=5, beam_size=6)[0])
        long = _strip(beam_search(model, src, max_len=5, beam_size=6, length_penalty=1.0)[0])
        assert len(long) >= len(short)
        longer += len(long) > len(short)
    assert longer > 0


def test_bad_beam_size():
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(TableModel(), torch.tensor([[3]]), max_len=3, beam_size=0)
