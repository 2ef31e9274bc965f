"""Transformer encoder and decoder layers, written out on ``dlcamp.nn.MultiheadAttention``.

Paper: "Attention Is All You Need", Vaswani et al. 2017, arXiv:1706.03762 (post-norm);
pre-norm as in "On Layer Normalization in the Transformer Architecture", Xiong et al.
2020, arXiv:2002.04745 (and GPT-2, ViT).

An encoder layer is two sub-layers, each wrapped in a residual connection and a layer
norm: self-attention (every position looks at every other), then a position-wise
feed-forward network (the same two-layer MLP applied to each position alone).

    post-norm (the paper):   x = LN(x + SelfAttn(x));      x = LN(x + FFN(x))
    pre-norm  (norm_first):  x = x + SelfAttn(LN(x));      x = x + FFN(LN(x))

Pre-norm keeps an identity path from input to output through every layer, so deep
stacks train without learning-rate warm-up; post-norm normalises the residual stream
itself and needs warm-up (Xiong et al. 2020). A decoder layer adds a third sub-layer
between the two: cross-attention, whose queries come from the decoder and whose keys and
values are the encoder's output ("memory"). The decoder's self-attention is causal
(position t sees positions <= t) so that training on a whole sequence at once predicts
each token from its past only.

The classes keep the constructor arguments, submodule names and forward signatures of
``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer`` / ``TransformerEncoder``
/ ``TransformerDecoder``, so state dicts move both ways with ``strict=True``.

``keep_attention = True`` on a layer makes it store its attention weights, per head, as
``self_attention_weights`` (B, nh, L, S) (and ``cross_attention_weights`` on a decoder
layer) for figures; it costs the fused kernel, so it is off by default. Models switch it
on for one call with ``keeping_attention(module)``.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Callable, Iterator

import torch.nn.functional as F
from torch import Tensor, nn

from dlcamp.nn.attention import MultiheadAttention

__all__ = [
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "keeping_attention",
]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


def _activation(activation: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    if callable(activation):
        return activation
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)} or a callable, got {activation!r}")
    return _ACTIVATIONS[activation]


class _FeedForward(nn.Module):
    """Shared by both layers: the position-wise MLP and its two dropouts (torch's names)."""

    linear1: nn.Linear
    linear2: nn.Linear
    dropout: nn.Dropout

    def _init_ff(self, d_model: int, dim_feedforward: int, dropout: float, activation, bias: bool) -> None:
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.activation = _activation(activation)

    def _ff_block(self, x: Tensor, out_dropout: nn.Dropout) -> Tensor:
        return out_dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    @staticmethod
    def _attend(
        attn: MultiheadAttention, q: Tensor, kv: Tensor, mask, padding, is_causal: bool, keep: bool
    ) -> tuple[Tensor, Tensor | None]:
        out, weights = attn(
            q,
            kv,
            kv,
            attn_mask=mask,
            key_padding_mask=padding,
            need_weights=keep,
            average_attn_weights=False,
            is_causal=is_causal,
        )
        return out, (weights.detach() if keep and weights is not None else None)


class TransformerEncoderLayer(_FeedForward):
    """Self-attention + feed-forward; post-norm by default, pre-norm with ``norm_first``.

    Shapes: src (B, S, E) if ``batch_first`` else (S, B, E); ``src_mask`` (S, S) or
    (B * nh, S, S), bool True = ignore the pair or float added; ``src_key_padding_mask``
    (B, S), True = padding.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self._init_ff(d_model, dim_feedforward, dropout, activation, bias)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.keep_attention = False
        self.self_attention_weights: Tensor | None = None

    def _sa_block(self, x: Tensor, mask, padding, is_causal: bool) -> Tensor:
        out, self.self_attention_weights = self._attend(
            self.self_attn, x, x, mask, padding, is_causal, self.keep_attention
        )
        return self.dropout1(out)

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x), self.dropout2)
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x, self.dropout2))
        return x


class TransformerDecoderLayer(_FeedForward):
    """Causal self-attention, cross-attention over ``memory``, feed-forward.

    Shapes: tgt (B, T, E), memory (B, S, E) if ``batch_first``; ``tgt_mask`` (T, T),
    ``memory_mask`` (T, S); key padding masks (B, T) / (B, S), True = padding. Pass
    ``tgt_is_causal=True`` without a ``tgt_mask`` and the causal mask is built here.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self._init_ff(d_model, dim_feedforward, dropout, activation, bias)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.keep_attention = False
        self.self_attention_weights: Tensor | None = None
        self.cross_attention_weights: Tensor | None = None

    def _sa_block(self, x: Tensor, mask, padding, is_causal: bool) -> Tensor:
        out, self.self_attention_weights = self._attend(
            self.self_attn, x, x, mask, padding, is_causal, self.keep_attention
        )
        return self.dropout1(out)

    def _mha_block(self, x: Tensor, memory: Tensor, mask, padding, is_causal: bool) -> Tensor:
        out, self.cross_attention_weights = self._attend(
            self.multihead_attn, x, memory, mask, padding, is_causal, self.keep_attention
        )
        return self.dropout2(out)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Tensor:
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x), self.dropout3)
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x, self.dropout3))
        return x


def _clones(layer: nn.Module, num_layers: int) -> nn.ModuleList:
    # As torch.nn does: deep copies, so every layer starts from the same weights unless
    # the caller re-initialises them (our models build each layer on its own instead).
    return nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))


class TransformerEncoder(nn.Module):
    """``num_layers`` copies of ``encoder_layer`` and an optional final norm (pre-norm stacks need it)."""

    def __init__(
        self,
        encoder_layer: TransformerEncoderLayer | list[TransformerEncoderLayer],
        num_layers: int | None = None,
        norm: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if isinstance(encoder_layer, list):  # independently initialised layers
            self.layers = nn.ModuleList(encoder_layer)
        else:
            self.layers = _clones(encoder_layer, int(num_layers or 1))
        self.num_layers = len(self.layers)
        self.norm = norm

    def forward(
        self,
        src: Tensor,
        mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool | None = None,
    ) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(x) if self.norm is not None else x


class TransformerDecoder(nn.Module):
    """``num_layers`` copies of ``decoder_layer`` and an optional final norm."""

    def __init__(
        self,
        decoder_layer: TransformerDecoderLayer | list[TransformerDecoderLayer],
        num_layers: int | None = None,
        norm: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if isinstance(decoder_layer, list):
            self.layers = nn.ModuleList(decoder_layer)
        else:
            self.layers = _clones(decoder_layer, int(num_layers or 1))
        self.num_layers = len(self.layers)
        self.norm = norm

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        x = tgt
        for layer in self.layers:
            x = layer(
                x,
                memory,
                tgt_mask=tgt_mask,
                memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=bool(tgt_is_causal),
                memory_is_causal=memory_is_causal,
            )
        return self.norm(x) if self.norm is not None else x


@contextmanager
def keeping_attention(module: nn.Module) -> Iterator[None]:
    """Inside the block every encoder and decoder layer in ``module`` keeps its attention weights.

    Each layer's ``keep_attention`` switch is restored afterwards, even on an error.
    """
    layers = [m for m in module.modules() if isinstance(m, (TransformerEncoderLayer, TransformerDecoderLayer))]
    before = [layer.keep_attention for layer in layers]
    for layer in layers:
        layer.keep_attention = True
    try:
        yield
    finally:
        for layer, keep in zip(layers, before):
            layer.keep_attention = keep
