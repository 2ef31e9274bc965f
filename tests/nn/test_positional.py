"""Positional encodings: the sinusoidal table's values and geometry, offsets, learned rows."""

from __future__ import annotations

import math

import pytest
import torch

from dlcamp.nn import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from dlcamp.nn.positional import sinusoidal_table

ATOL = 1e-6  # the table is computed in float64 and stored in float32


def test_position_zero_is_sin_0_and_cos_0():
    table = sinusoidal_table(4, 6)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))


def test_table_values_at_hand_computed_points():
    # dim 4: the pairs turn at rates 1 and 1 / 10000^(2/4) = 1/100 radians per position.
    table = sinusoidal_table(8, 4)
    expected = {
        (1, 0): math.sin(1.0),
        (1, 1): math.cos(1.0),
        (1, 2): math.sin(0.01),
        (1, 3): math.cos(0.01),
        (5, 0): math.sin(5.0),
        (5, 3): math.cos(0.05),
        (7, 2): math.sin(0.07),
    }
    for (position, column), value in expected.items():
        assert table[position, column].item() == pytest.approx(value, abs=ATOL), (position, column)


def test_table_follows_the_closed_form_everywhere():
    max_len, dim = 50, 10
    table = sinusoidal_table(max_len, dim)
    assert table.shape == (max_len, dim) and table.dtype == torch.float32
    for p in range(max_len):
        for i in range(dim // 2):
            angle = p / 10000 ** (2 * i / dim)
            assert table[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=ATOL)
            assert table[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=ATOL)
    # A longer table starts with the shorter one: positions do not depend on max_len.
    torch.testing.assert_close(sinusoidal_table(2 * max_len, dim)[:max_len], table)


def test_odd_dim_ends_with_a_sine():
    table = sinusoidal_table(20, 5)  # pairs (0, 1), (2, 3) and a lone sine in column 4
    assert table.shape == (20, 5)
    positions = torch.arange(20, dtype=torch.float64)
    torch.testing.assert_close(table[:, 4].double(), torch.sin(positions / 10000 ** (4 / 5)), atol=ATOL, rtol=0)
    torch.testing.assert_close(table[:, 1].double(), torch.cos(positions), atol=ATOL, rtol=0)
    out = SinusoidalPositionalEncoding(5, max_len=20)(torch.zeros(2, 7, 5))
    torch.testing.assert_close(out, table[:7].expand(2, 7, 5))


@pytest.mark.parametrize("k", [1, 3, 10])
def test_shift_by_k_is_the_same_rotation_at_every_position(k):
    # Pair i at position p is (sin pw, cos pw) with w = 1 / 10000^(2i/E). Moving k steps
    # on turns it by the angle kw: (sin (p+k)w, cos (p+k)w) = R_k (sin pw, cos pw) with
    # R_k = [[cos kw, sin kw], [-sin kw, cos kw]], which depends on k but not on p. Since
    # PE(0) = (0, 1) per pair, PE(k) = (sin kw, cos kw) gives R_k's entries directly.
    max_len, dim = 64, 8
    table = sinusoidal_table(max_len, dim).double()
    pairs = table.view(max_len, dim // 2, 2)  # (P, E/2, 2): (sin, cos) per pair
    sin_k, cos_k = pairs[k, :, 0], pairs[k, :, 1]  # (E/2,)
    rotation = torch.stack([torch.stack([cos_k, sin_k], -1), torch.stack([-sin_k, cos_k], -1)], -2)  # (E/2, 2, 2)
    assert torch.allclose(rotation @ rotation.transpose(-1, -2), torch.eye(2, dtype=torch.float64), atol=1e-6)
    rotated = torch.einsum("irc,pic->pir", rotation, pairs[: max_len - k])  # (P-k, E/2, 2)
    torch.testing.assert_close(rotated, pairs[k:], atol=1e-5, rtol=0)


def test_sinusoidal_encoding_adds_the_table_rows_from_offset():
    torch.manual_seed(0)
    module = SinusoidalPositionalEncoding(6, max_len=16)
    x = torch.randn(2, 5, 6)  # (B, T, E)
    table = sinusoidal_table(16, 6)
    torch.testing.assert_close(module(x), x + table[:5])
    torch.testing.assert_close(module(x, offset=3), x + table[3:8])
    torch.testing.assert_close(module(x[:, :1], offset=11)[:, 0], x[:, 0] + table[11])  # one decoding step
    scaled = SinusoidalPositionalEncoding(6, max_len=16, scale_input=True)
    torch.testing.assert_close(scaled(x), x * math.sqrt(6) + table[:5])


def test_learned_embedding_adds_its_weight_rows():
    torch.manual_seed(0)
    module = LearnedPositionalEmbedding(16, 6)
    x = torch.randn(2, 5, 6)
    torch.testing.assert_close(module(x), x + module.weight[:5])
    torch.testing.assert_close(module(x, offset=4), x + module.weight[4:9])
    module(x, offset=4).sum().backward()
    assert module.weight.grad[4:9].eq(2).all() and module.weight.grad[:4].eq(0).all()  # 2 = batch size


@pytest.mark.parametrize(
    "make", [lambda: SinusoidalPositionalEncoding(4, max_len=8), lambda: LearnedPositionalEmbedding(8, 4)]
)
def test_positions_outside_the_table_raise(make):
    module = make()
    module(torch.zeros(1, 8, 4))  # positions 0..7: the whole table
    module(torch.zeros(1, 3, 4), offset=5)  # positions 5..7
    for length, offset in [(9, 0), (3, 6), (1, 8), (2, -1)]:
        with pytest.raises(ValueError, match="max_len"):
            module(torch.zeros(1, length, 4), offset=offset)


def test_only_the_learned_embedding_has_state():
    sinusoidal = SinusoidalPositionalEncoding(4, max_len=8)
    assert sinusoidal.state_dict() == {}  # the table is rebuilt from (max_len, dim)
    assert list(sinusoidal.parameters()) == []
    assert "table" in dict(sinusoidal.named_buffers())  # still moves with .to(device)
    assert list(LearnedPositionalEmbedding(8, 4).state_dict()) == ["weight"]
