"""Scaled dot-product attention and multi-head attention, written out.

Paper: "Attention Is All You Need", Ashish Vaswani, Noam Shazeer, Niki Parmar, Jakob
Uszkoreit, Llion Jones, Aidan N. Gomez, Lukasz Kaiser and Illia Polosukhin, 2017,
arXiv:1706.03762.

Intuition: every target position asks a question (its query), every source position
advertises what it holds (its key) and what it would hand over (its value). The dot
product of a query with each key says how well they match; a softmax over the source
turns those matches into weights that sum to one, and the answer is the weighted
average of the values. Multi-head attention runs nh such lookups side by side, each in
its own learned hs = E / nh dimensional subspace, so one head can follow syntax while
another follows position; their answers are concatenated and mixed by a last linear map.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + mask) V
    MultiHead(q, k, v) = Concat(head_1, ..., head_nh) W_o,
        head_i = Attention(q W_q_i, k W_k_i, v W_v_i)

``MultiheadAttention`` keeps the parameter names, shapes, initialisation and mask
conventions of ``torch.nn.MultiheadAttention`` so state dicts move both ways.

Mask conventions (they differ between the two APIs, exactly as in PyTorch):
    ``scaled_dot_product_attention``: boolean True = this pair TAKES PART; float = added.
    ``MultiheadAttention``: boolean True = this pair is IGNORED; float = added.

Shapes: B batch, L target (query) length, S source (key/value) length, E embedding
(``embed_dim``), Ek / Ev key / value feature sizes (``kdim`` / ``vdim``), nh heads
(``num_heads``), hs head size (E // nh).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MultiheadAttention", "scaled_dot_product_attention"]


def _causal_mask(target_len: int, source_len: int, device: torch.device) -> Tensor:
    """Boolean (L, S) mask, True = take part: position i sees source positions j <= i."""
    return torch.ones(target_len, source_len, dtype=torch.bool, device=device).tril()


def _attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None,
    dropout_p: float,
    is_causal: bool,
    scale: float | None,
) -> tuple[Tensor, Tensor]:
    """The written-out core; returns (output (..., L, Ev), weights (..., L, S))."""
    target_len, source_len = q.size(-2), k.size(-2)
    # Why divide by sqrt(d): if the entries of q and k are independent with mean 0 and
    # variance 1, their dot product over d features has variance d. Large scores push
    # the softmax into saturation, where one weight is ~1, the rest ~0, and gradients
    # vanish (Vaswani et al. 2017, section 3.2.1). Dividing by sqrt(d) brings the
    # variance back to 1 whatever the head size.
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (..., L, E) @ (..., E, S) -> (..., L, S)

    if is_causal:
        if attn_mask is not None:
            raise ValueError("pass either attn_mask or is_causal=True, not both")
        attn_mask = _causal_mask(target_len, source_len, q.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            # -inf becomes exactly 0 after the softmax: the pair takes no part.
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask  # additive bias, e.g. -inf or a relative position

    weights = scores.softmax(dim=-1)  # (..., L, S), each row sums to 1 over the source
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (..., L, S) @ (..., S, Ev) -> (..., L, Ev)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(q k^T * scale + mask) v, as ``torch.nn.functional.scaled_dot_product_attention``.

    Args:
        q (Tensor[..., L, E]): queries.
        k (Tensor[..., S, E]): keys.
        v (Tensor[..., S, Ev]): values.
        attn_mask (Tensor[..., L, S] broadcastable, optional): boolean, True = the pair
            takes part; or float, added to the scores.
        dropout_p: probability of zeroing an attention weight (always applied when > 0,
            as in PyTorch's functional; pass 0.0 in eval).
        is_causal: target position i attends to source positions j <= i (top-left
            aligned). Not to be combined with ``attn_mask``.
        scale: score scale; defaults to 1 / sqrt(E).

    Returns:
        Tensor[..., L, Ev].
    """
    output, _ = _attention(q, k, v, attn_mask, dropout_p, is_causal, scale)
    return output


def _as_additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """MultiheadAttention convention (bool True = ignore) -> additive float mask."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


class MultiheadAttention(nn.Module):
    """Multi-head attention with the parameters and call of ``torch.nn.MultiheadAttention``.

    Args:
        embed_dim: E, the query and output feature size.
        num_heads: nh; E must divide evenly into nh heads of hs = E // nh.
        dropout: dropout on the attention weights (training only).
        bias: biases on the input and output projections.
        add_bias_kv: append one learned key and value to the source (S -> S + 1).
        add_zero_attn: append an all-zero key and value to the source (S -> S + 1),
            so a query may attend to "nothing".
        kdim, vdim: key / value feature sizes (default E); when either differs from E
            the projections are kept as separate ``q/k/v_proj_weight``.
        batch_first: inputs and outputs are (B, L, E) instead of (L, B, E).
        fast_path: when no weights are asked for (``need_weights=False``), run the
            core with PyTorch's fused ``F.scaled_dot_product_attention``; otherwise the
            written-out one (the fused kernel does not return weights).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        fast_path: bool = True,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim={embed_dim} must be a positive multiple of num_heads={num_heads}; "
                "pick num_heads that divides embed_dim"
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.add_zero_attn = add_zero_attn
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.batch_first = batch_first
        self.fast_path = fast_path
        # Same name as PyTorch's attribute: one packed (3E, E) matrix when all inputs are E wide.
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim

        if self._qkv_same_embed_dim:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = nn.Parameter(torch.empty(embed_dim, embed_dim))
            self.k_proj_weight = nn.Parameter(torch.empty(embed_dim, self.kdim))
            self.v_proj_weight = nn.Parameter(torch.empty(embed_dim, self.vdim))
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, embed_dim))
            self.bias_v = nn.Parameter(torch.empty(1, 1, embed_dim))
        else:
            self.bias_k = self.bias_v = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: Xavier-uniform projections, zero biases."""
        if self._qkv_same_embed_dim:
            nn.init.xavier_uniform_(self.in_proj_weight)
        else:
            nn.init.xavier_uniform_(self.q_proj_weight)
            nn.init.xavier_uniform_(self.k_proj_weight)
            nn.init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            nn.init.xavier_normal_(self.bias_k)
            nn.init.xavier_normal_(self.bias_v)

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, L, E), (B, S, Ek), (B, S, Ev) -> q (B, L, E), k (B, S, E), v (B, S, E)."""
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.split(E)  # 3 x (E, E)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q = b_k = b_v = None
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = self.in_proj_bias.split(E)  # 3 x (E,)
        return F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value``.

        Args:
            query: (L, B, E), or (B, L, E) if ``batch_first``, or unbatched (L, E).
            key: (S, B, Ek) / (B, S, Ek) / (S, Ek).
            value: (S, B, Ev) / (B, S, Ev) / (S, Ev).
            key_padding_mask: (B, S) or (S,); bool True = ignore that source position,
                or float added to the scores.
            need_weights: also return the attention weights.
            attn_mask: (L, S) or (B * nh, L, S); bool True = ignore that pair, or float
                added to the scores.
            average_attn_weights: average the returned weights over heads.
            is_causal: causal attention. PyTorch treats this only as a hint that
                ``attn_mask`` is already causal (and requires the mask); here, when no
                ``attn_mask`` is given, the causal mask is built, otherwise the given
                ``attn_mask`` is used as is.

        Returns:
            attn_output in the layout of ``query`` with E features; attn_weights
            (B, L, S) if averaged, (B, nh, L, S) if not (batch axis dropped for
            unbatched input; S grows by one for each of add_bias_kv / add_zero_attn),
            or None when ``need_weights=False``.
        """
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            # (L, B, E) -> (B, L, E): work batch-first inside.
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))

        B, L, _ = query.shape
        S = key.size(1)
        nh, hs = self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value)  # (B, L, E), (B, S, E), (B, S, E)

        mask_dtype = q.dtype
        if attn_mask is None and is_causal:
            attn_mask = ~_causal_mask(L, S, q.device)  # MHA convention: True = ignore
        if attn_mask is not None:
            attn_mask = _as_additive(attn_mask, mask_dtype)
            if attn_mask.dim() == 2:
                attn_mask = attn_mask.expand(B * nh, L, S)
            attn_mask = attn_mask.reshape(B, nh, L, S)  # (B * nh, L, S) -> (B, nh, L, S)
        if key_padding_mask is not None:
            key_padding_mask = _as_additive(key_padding_mask, mask_dtype).view(B, 1, 1, S)

        if self.bias_k is not None:
            # One learned key/value every query may attend to (S -> S + 1).
            k = torch.cat([k, self.bias_k.expand(B, 1, -1)], dim=1)  # (B, S + 1, E)
            v = torch.cat([v, self.bias_v.expand(B, 1, -1)], dim=1)  # (B, S + 1, E)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))

        q = q.view(B, L, nh, hs).transpose(1, 2)  # (B, nh, L, hs)
        k = k.view(B, -1, nh, hs).transpose(1, 2)  # (B, nh, S', hs)
        v = v.view(B, -1, nh, hs).transpose(1, 2)  # (B, nh, S', hs)

        if self.add_zero_attn:
            # An all-zero key scores 0 for every query, so a row can put weight on "nothing".
            k = torch.cat([k, k.new_zeros(B, nh, 1, hs)], dim=2)  # (B, nh, S' + 1, hs)
            v = torch.cat([v, v.new_zeros(B, nh, 1, hs)], dim=2)  # (B, nh, S' + 1, hs)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))

        # One additive mask for both: (B, nh, L, S'') broadcast from either part.
        if attn_mask is None:
            merged_mask = key_padding_mask
        elif key_padding_mask is None:
            merged_mask = attn_mask
        else:
            merged_mask = attn_mask + key_padding_mask

        dropout_p = self.dropout if self.training else 0.0
        attn_weights = None
        if need_weights or not self.fast_path:
            heads, attn_weights = _attention(q, k, v, merged_mask, dropout_p, False, None)
        else:
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=merged_mask, dropout_p=dropout_p)
        # heads: (B, nh, L, hs)

        attn_output = heads.transpose(1, 2).reshape(B, L, self.embed_dim)  # (B, L, E)
        attn_output = self.out_proj(attn_output)  # (B, L, E)

        if unbatched:
            attn_output = attn_output.squeeze(0)  # (L, E)
        elif not self.batch_first:
            attn_output = attn_output.transpose(0, 1)  # (L, B, E)

        if not need_weights:
            return attn_output, None
        if average_attn_weights:
            attn_weights = attn_weights.mean(dim=1)  # (B, nh, L, S'') -> (B, L, S'')
        if unbatched:
            attn_weights = attn_weights.squeeze(0)
        return attn_output, attn_weights
