"""Attention written out matches PyTorch's SDPA and nn.MultiheadAttention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcamp.nn.attention import MultiheadAttention, scaled_dot_product_attention

B, L, S, E, NH = 2, 5, 7, 8, 2


def _pair(**kwargs) -> tuple[MultiheadAttention, nn.MultiheadAttention]:
    """Ours and PyTorch's with the same (PyTorch's) weights, in eval mode."""
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(E, NH, **kwargs).eval()
    ours = MultiheadAttention(E, NH, **kwargs).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


# ---------------------------------------------------------------- functional


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal", "causal_rect"])
def test_sdpa_matches_torch(mask_kind):
    torch.manual_seed(0)
    source_len = L if mask_kind == "causal" else S
    q = torch.randn(B, 3, L, 4, dtype=torch.float64)
    k = torch.randn(B, 3, source_len, 4, dtype=torch.float64)
    v = torch.randn(B, 3, source_len, 6, dtype=torch.float64)
    kwargs: dict = {}
    if mask_kind == "bool":
        mask = torch.rand(L, S) > 0.3
        mask[:, 0] = True  # no fully masked row (0/0 differs between backends)
        kwargs["attn_mask"] = mask
    elif mask_kind == "float":
        kwargs["attn_mask"] = torch.randn(B, 1, L, S, dtype=torch.float64)
    elif mask_kind.startswith("causal"):
        kwargs["is_causal"] = True
    ours = scaled_dot_product_attention(q, k, v, **kwargs)
    theirs = F.scaled_dot_product_attention(q, k, v, **kwargs)
    assert ours.shape == (B, 3, L, 6)
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=1e-10)


def test_sdpa_custom_scale_matches_torch():
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, L, 4, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, scale=0.3),
        F.scaled_dot_product_attention(q, k, v, scale=0.3),
        atol=1e-10,
        rtol=1e-10,
    )


# ---------------------------------------------------------------- module


def _inputs(batch_first: bool, kdim: int = E, vdim: int = E, self_attention: bool = False):
    torch.manual_seed(1)
    query = torch.randn(B, L, E)
    key = query if self_attention else torch.randn(B, S, kdim)
    value = query if self_attention else torch.randn(B, S, vdim)
    if not batch_first:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    return query, key, value


def _masks(source_len: int, kind: str):
    torch.manual_seed(2)
    key_padding_mask = torch.zeros(B, source_len, dtype=torch.bool)
    key_padding_mask[0, -2:] = True  # pad the last two source positions of example 0
    if kind == "none":
        return key_padding_mask, None
    shape = (L, source_len) if kind.startswith("2d") else (B * NH, L, source_len)
    if kind.endswith("bool"):
        attn_mask = torch.rand(shape) > 0.7  # True = ignore
        attn_mask[..., 0] = False  # every row keeps one source
    else:
        attn_mask = torch.randn(shape)
        # Same dtype for both masks (PyTorch deprecates mixing): padding as an additive -inf.
        key_padding_mask = torch.zeros(B, source_len).masked_fill(key_padding_mask, float("-inf"))
    return key_padding_mask, attn_mask


def _assert_same(ours, theirs, *args, **kwargs):
    out, weights = ours(*args, **kwargs)
    ref_out, ref_weights = theirs(*args, **kwargs)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-6)
    if ref_weights is None:
        assert weights is None
    else:
        torch.testing.assert_close(weights, ref_weights, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "2d_bool", "2d_float", "3d_bool", "3d_float"])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_cross_attention_matches_torch(batch_first, mask_kind, need_weights, average):
    ours, theirs = _pair(batch_first=batch_first)
    query, key, value = _inputs(batch_first)
    key_padding_mask, attn_mask = _masks(S, mask_kind)
    _assert_same(
        ours,
        theirs,
        query,
        key,
        value,
        key_padding_mask=key_padding_mask,
        attn_mask=attn_mask,
        need_weights=need_weights,
        average_attn_weights=average,
    )


@pytest.mark.parametrize("batch_first", [False, True])
def test_self_attention_matches_torch(batch_first):
    ours, theirs = _pair(batch_first=batch_first)
    x, _, _ = _inputs(batch_first, self_attention=True)
    causal = torch.ones(L, L, dtype=torch.bool).triu(1)  # True = ignore the future
    _assert_same(ours, theirs, x, x, x, attn_mask=causal)
    _assert_same(ours, theirs, x, x, x, attn_mask=causal, need_weights=False)


@pytest.mark.parametrize("need_weights", [True, False])
def test_kdim_vdim_differ_from_embed_dim_matches_torch(need_weights):
    ours, theirs = _pair(kdim=3, vdim=5, batch_first=True)
    assert "in_proj_weight" not in ours.state_dict()
    query, key, value = _inputs(True, kdim=3, vdim=5)
    key_padding_mask, attn_mask = _masks(S, "2d_float")
    _assert_same(
        ours,
        theirs,
        query,
        key,
        value,
        key_padding_mask=key_padding_mask,
        attn_mask=attn_mask,
        need_weights=need_weights,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bias": False},
        {"add_bias_kv": True},
        {"add_zero_attn": True},
        {"add_bias_kv": True, "add_zero_attn": True},
    ],
)
def test_bias_options_match_torch(kwargs):
    ours, theirs = _pair(batch_first=True, **kwargs)
    query, key, value = _inputs(True)
    key_padding_mask, attn_mask = _masks(S, "3d_bool")
    for need_weights in (True, False):
        _assert_same(
            ours,
            theirs,
            query,
            key,
            value,
            key_padding_mask=key_padding_mask,
            attn_mask=attn_mask,
            need_weights=need_weights,
            average_attn_weights=False,
        )


def test_unbatched_input_matches_torch():
    ours, theirs = _pair()
    query, key, value = (t[:, 0] for t in _inputs(False))  # (L, E), (S, E), (S, E)
    _assert_same(ours, theirs, query, key, value, key_padding_mask=torch.zeros(S, dtype=torch.bool))


def test_fast_path_on_and_off_give_the_same_output():
    ours, _ = _pair(batch_first=True)
    query, key, value = _inputs(True)
    key_padding_mask, attn_mask = _masks(S, "3d_float")
    kwargs = dict(key_padding_mask=key_padding_mask, attn_mask=attn_mask, need_weights=False)
    fused, _ = ours(query, key, value, **kwargs)
    ours.fast_path = False
    written_out, _ = ours(query, key, value, **kwargs)
    torch.testing.assert_close(fused, written_out, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("fast_path", [True, False])
def test_causal_mask_hides_the_future(fast_path):
    torch.manual_seed(0)
    mha = MultiheadAttention(E, NH, batch_first=True, fast_path=fast_path).eval()
    x = torch.randn(B, L, E)
    out, _ = mha(x, x, x, is_causal=True, need_weights=False)
    for t in range(L - 1):
        changed = x.clone()
        changed[:, t + 1 :] = torch.randn(B, L - t - 1, E)  # new keys/values after t
        out_changed, _ = mha(changed, changed, changed, is_causal=True, need_weights=False)
        torch.testing.assert_close(out_changed[:, : t + 1], out[:, : t + 1], atol=1e-6, rtol=1e-6)
        assert not torch.allclose(out_changed[:, t + 1 :], out[:, t + 1 :])


def test_is_causal_without_mask_equals_explicit_causal_mask():
    ours, theirs = _pair(batch_first=True)
    x, _, _ = _inputs(True, self_attention=True)
    causal = torch.ones(L, L, dtype=torch.bool).triu(1)
    out, weights = ours(x, x, x, is_causal=True)
    ref_out, ref_weights = theirs(x, x, x, attn_mask=causal, is_causal=True)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(weights, ref_weights, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kwargs", [{}, {"bias": False}, {"kdim": 3, "vdim": 5}, {"add_bias_kv": True}])
def test_state_dict_loads_both_ways_strict(kwargs):
    torch.manual_seed(0)
    ours = MultiheadAttention(E, NH, **kwargs)
    theirs = nn.MultiheadAttention(E, NH, **kwargs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    mha = MultiheadAttention(E, NH, dropout=0.5, batch_first=True)
    x = torch.randn(B, L, E)
    _, weights = mha.eval()(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, NH, L))
    _, train_weights = mha.train()(x, x, x, average_attn_weights=False)
    assert (train_weights == 0).any()


def test_embed_dim_not_divisible_by_heads_raises():
    with pytest.raises(ValueError, match="num_heads"):
        MultiheadAttention(10, 3)
