"""Positional encodings: how a Transformer knows where a token is.

Attention is permutation-equivariant: shuffle the tokens and the outputs shuffle with
them, so on its own a Transformer sees a bag of tokens. Adding a position signal to each
token's embedding breaks the symmetry.

- ``SinusoidalPositionalEncoding`` (Vaswani et al. 2017, section 3.5): fixed, no
  parameters. Dimension pair (2i, 2i+1) of position p holds sin / cos of
  p / 10000^(2i/E), a geometric ladder of wavelengths from 2π to 10000·2π. For any fixed
  offset k, PE(p + k) is a linear function (a rotation per pair) of PE(p), which lets
  attention pick out relative positions; and it is defined for any length.
- ``LearnedPositionalEmbedding`` (ViT, BERT, GPT): one trained vector per position up to
  ``max_len``; nothing is assumed, but positions never seen in training stay untrained.

Both take batch-first input (B, T, E) and return ``x + position`` for positions
``offset .. offset + T - 1`` (``offset`` serves incremental decoding).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["LearnedPositionalEmbedding", "SinusoidalPositionalEncoding", "sinusoidal_table"]


def sinusoidal_table(max_len: int, dim: int) -> Tensor:
    """The (max_len, dim) table: [p, 2i] = sin(p / 10000^(2i/dim)), [p, 2i+1] = cos(...)."""
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))  # (ceil(E/2),)
    angles = position * inv_freq  # (P, ceil(E/2))
    table = torch.zeros(max_len, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : dim // 2])  # an odd dim has one sine more than cosines
    return table.float()


def _check_length(offset: int, length: int, max_len: int) -> None:
    if offset < 0 or offset + length > max_len:
        raise ValueError(
            f"positions {offset}..{offset + length - 1} are outside 0..{max_len - 1}; raise max_len (now {max_len})"
        )


class SinusoidalPositionalEncoding(nn.Module):
    """x + PE[offset : offset + T] with the fixed sinusoidal table, then dropout.

    ``scale_input`` multiplies the embeddings by sqrt(E) first, as the paper does
    (its embeddings share weights with the output layer and are small).
    """

    def __init__(self, dim: int, max_len: int = 4096, dropout: float = 0.0, scale_input: bool = False) -> None:
        super().__init__()
        self.dim, self.max_len, self.scale_input = dim, max_len, scale_input
        # Not persistent: it is a function of (max_len, dim), so it stays out of state dicts.
        self.register_buffer("table", sinusoidal_table(max_len, dim), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x (B, T, E) -> (B, T, E)."""
        _check_length(offset, x.size(1), self.max_len)
        if self.scale_input:
            x = x * math.sqrt(self.dim)
        return self.dropout(x + self.table[offset : offset + x.size(1)].to(x.dtype))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_len={self.max_len}, scale_input={self.scale_input}"


class LearnedPositionalEmbedding(nn.Module):
    """x + weight[offset : offset + T]: one learned vector per position (initialised N(0, std²))."""

    def __init__(self, max_len: int, dim: int, dropout: float = 0.0, std: float = 0.02) -> None:
        super().__init__()
        self.max_len, self.dim = max_len, dim
        self.weight = nn.Parameter(torch.empty(max_len, dim))
        nn.init.normal_(self.weight, std=std)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x (B, T, E) -> (B, T, E)."""
        _check_length(offset, x.size(1), self.max_len)
        return self.dropout(x + self.weight[offset : offset + x.size(1)])

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, dim={self.dim}"
