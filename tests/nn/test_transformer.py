"""dlcamp.nn.transformer against torch.nn's Transformer layers: same weights, same outputs and grads.

Every comparison loads torch's state dict into ours (and ours back into torch) with
``strict=True``, runs both in float64 and asks for agreement to 1e-6. "train" runs with
dropout 0 (torch's Python path); "eval" runs under ``no_grad``, where torch takes its
fused "fast path" (``torch._transformer_encoder_layer_fwd``) whenever it can: for every
batch-first encoder layer here, masks or not (checked by hand with a spy on that function).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from dlcamp.nn import TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer

E, NH, FF = 8, 2, 16  # d_model, heads, feed-forward width
B, S, T = 3, 6, 5  # batch, source (memory) length, target length
ATOL = 1e-6

MASKS = ["none", "causal", "all"]


def _perturb(module: nn.Module, seed: int) -> None:
    """Nudge every parameter so zero biases and unit norm weights hide no mistake."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=generator, dtype=p.dtype))


def _load_both_ways(ours: nn.Module, theirs: nn.Module) -> None:
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def _layer_pair(kind: str, seed: int = 0, **kwargs) -> tuple[nn.Module, nn.Module]:
    """(ours, torch's) encoder or decoder layer in float64 with torch's (perturbed) weights."""
    ours_cls, ref_cls = {
        "encoder": (TransformerEncoderLayer, nn.TransformerEncoderLayer),
        "decoder": (TransformerDecoderLayer, nn.TransformerDecoderLayer),
    }[kind]
    torch.manual_seed(seed)
    theirs = ref_cls(E, NH, dim_feedforward=FF, dropout=0.0, **kwargs).double()
    _perturb(theirs, seed)
    ours = ours_cls(E, NH, dim_feedforward=FF, dropout=0.0, **kwargs).double()
    _load_both_ways(ours, theirs)
    return ours, theirs


def _randn(*shape: int) -> Tensor:
    return torch.randn(*shape, dtype=torch.float64)


def _sequence(length: int, batch_first: bool) -> Tensor:
    return _randn(B, length, E) if batch_first else _randn(length, B, E)


def _padding(length: int) -> Tensor:
    """(B, length) bool, True = padding: sequence 0 loses its last 2, sequence 2 all but 2, sequence 1 none."""
    mask = torch.zeros(B, length, dtype=torch.bool)
    mask[0, length - 2 :] = True
    mask[2, 2:] = True
    return mask


def _sparse_mask(rows: int, cols: int) -> Tensor:
    """(rows, cols) bool, True = ignore: random pairs hidden, column 0 always kept (no empty row)."""
    mask = torch.rand(rows, cols, generator=torch.Generator().manual_seed(rows * cols)) < 0.4
    mask[:, 0] = False
    return mask


def _run(module: nn.Module, mode: str, *args, **kwargs) -> Tensor:
    if mode == "train":
        return module.train()(*args, **kwargs)
    with torch.no_grad():
        return module.eval()(*args, **kwargs)


# ---------------------------------------------------------------- encoder layer


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("masks", ["none", "padding", "attn_mask", "both"])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_torch(norm_first, activation, batch_first, masks, mode):
    ours, theirs = _layer_pair("encoder", norm_first=norm_first, activation=activation, batch_first=batch_first)
    src = _sequence(S, batch_first)
    kwargs = {}
    if masks in ("padding", "both"):
        kwargs["src_key_padding_mask"] = _padding(S)
    if masks in ("attn_mask", "both"):
        kwargs["src_mask"] = _sparse_mask(S, S)
    out = _run(ours, mode, src, **kwargs)
    ref = _run(theirs, mode, src, **kwargs)
    # A single layer has no nested-tensor path: even torch's fused kernel returns every
    # position, padded ones included, so the whole output is compared.
    assert out.shape == ref.shape == src.shape
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


# ---------------------------------------------------------------- decoder layer


def _decoder_masks(masks: str) -> dict[str, object]:
    """Keyword arguments shared by ours and torch's decoder for one mask setting."""
    kwargs: dict[str, object] = {}
    if masks == "causal":
        # torch needs the mask itself; tgt_is_causal is only a hint to its kernels.
        kwargs["tgt_mask"] = nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)  # 0 / -inf
        kwargs["tgt_is_causal"] = True
    if masks == "all":
        # Boolean like the padding masks (torch deprecates mixing float and bool masks).
        kwargs["tgt_mask"] = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)  # True = future, hidden
        kwargs["tgt_is_causal"] = True
        kwargs["tgt_key_padding_mask"] = _padding(T)
        kwargs["memory_key_padding_mask"] = _padding(S)
        kwargs["memory_mask"] = _sparse_mask(T, S)
    return kwargs


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first, activation, batch_first, masks, mode):
    ours, theirs = _layer_pair("decoder", norm_first=norm_first, activation=activation, batch_first=batch_first)
    tgt, memory = _sequence(T, batch_first), _sequence(S, batch_first)
    kwargs = _decoder_masks(masks)
    out = _run(ours, mode, tgt, memory, **kwargs)
    ref = _run(theirs, mode, tgt, memory, **kwargs)
    assert out.shape == ref.shape == tgt.shape
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("keep_attention", [False, True])
def test_decoder_builds_the_causal_mask_from_tgt_is_causal(keep_attention):
    ours, theirs = _layer_pair("decoder", seed=1, batch_first=True)
    ours.keep_attention = keep_attention  # written-out attention instead of the fused kernel
    tgt, memory = _sequence(T, True), _sequence(S, True)
    out = ours(tgt, memory, tgt_is_causal=True)  # no tgt_mask: ours builds it
    ref = theirs(tgt, memory, **_decoder_masks("causal"))
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_layers_without_bias_on_unbatched_input_match_torch(kind):
    ours, theirs = _layer_pair(kind, seed=8, bias=False, activation=nn.GELU())  # a module as activation, too
    assert not any("bias" in name for name in ours.state_dict())
    inputs = (_randn(T, E),) if kind == "encoder" else (_randn(T, E), _randn(S, E))  # (T, E), (S, E)
    torch.testing.assert_close(ours(*inputs), theirs(*inputs), atol=ATOL, rtol=0)


# ---------------------------------------------------------------- stacks


def _stack_pair(kind: str, norm_first: bool, batch_first: bool, seed: int = 2) -> tuple[nn.Module, nn.Module]:
    """(ours, torch's) two-layer stack with a final LayerNorm, float64, same weights."""
    ours_layer, ref_layer = _layer_pair(kind, seed=seed, norm_first=norm_first, batch_first=batch_first)
    if kind == "encoder":
        # torch only builds nested tensors for batch-first post-norm stacks (and warns
        # when asked to otherwise), so ask exactly then.
        theirs = nn.TransformerEncoder(
            ref_layer, num_layers=2, norm=nn.LayerNorm(E), enable_nested_tensor=batch_first and not norm_first
        )
        ours = TransformerEncoder(ours_layer, num_layers=2, norm=nn.LayerNorm(E))
    else:
        theirs = nn.TransformerDecoder(ref_layer, num_layers=2, norm=nn.LayerNorm(E))
        ours = TransformerDecoder(ours_layer, num_layers=2, norm=nn.LayerNorm(E))
    theirs.double()
    _perturb(theirs, seed + 1)  # the two layers and the final norm now all differ
    ours.double()
    _load_both_ways(ours, theirs)
    return ours, theirs


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_matches_torch(norm_first, batch_first, mode):
    ours, theirs = _stack_pair("encoder", norm_first, batch_first)
    src = _sequence(S, batch_first)
    padding = _padding(S)  # (B, S)
    mask = _sparse_mask(S, S)
    torch.testing.assert_close(_run(ours, mode, src, mask=mask), _run(theirs, mode, src, mask=mask), atol=ATOL, rtol=0)

    out = _run(ours, mode, src, src_key_padding_mask=padding)
    ref = _run(theirs, mode, src, src_key_padding_mask=padding)
    if mode == "eval" and theirs.use_nested_tensor:
        # torch's eval fast path packs the batch into a nested tensor without the padded
        # positions, runs the layers on real tokens only and pads the result back with
        # zeros before the final norm: its padded rows are norm(0), ours are the layer
        # outputs there. Padded keys are masked out of every attention, so the real
        # positions cannot depend on what is at padded ones: compare those alone.
        real = ~padding if batch_first else ~padding.T  # (B, S) or (S, B)
        torch.testing.assert_close(out[real], ref[real], atol=ATOL, rtol=0)
        with torch.no_grad():
            zero_row = theirs.norm(torch.zeros(E, dtype=torch.float64))
        torch.testing.assert_close(ref[~real], zero_row.expand_as(ref[~real]), atol=ATOL, rtol=0)
    else:
        torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_stack_matches_torch(norm_first, batch_first, mode):
    ours, theirs = _stack_pair("decoder", norm_first, batch_first)
    tgt, memory = _sequence(T, batch_first), _sequence(S, batch_first)
    kwargs = _decoder_masks("all")
    out = _run(ours, mode, tgt, memory, **kwargs)
    ref = _run(theirs, mode, tgt, memory, **kwargs)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("norm_first", [False, True])
def test_stack_gradients_match_torch(norm_first):
    encoders = _stack_pair("encoder", norm_first, batch_first=True, seed=3)
    decoders = _stack_pair("decoder", norm_first, batch_first=True, seed=4)
    src, tgt = _sequence(S, True), _sequence(T, True)
    cotangent = _randn(B, T, E)
    grads = []
    for encoder, decoder in zip(encoders, decoders):  # ours, then torch's
        encoder.train(), decoder.train()
        src_in, tgt_in = src.clone().requires_grad_(), tgt.clone().requires_grad_()
        memory = encoder(src_in, src_key_padding_mask=_padding(S))
        out = decoder(tgt_in, memory, **_decoder_masks("all"))
        (out * cotangent).sum().backward()
        params = {f"encoder.{n}": p.grad for n, p in encoder.named_parameters()}
        params |= {f"decoder.{n}": p.grad for n, p in decoder.named_parameters()}
        grads.append({"src": src_in.grad, "tgt": tgt_in.grad, **params})
    ours, theirs = grads
    assert list(ours) == list(theirs)
    for name in ours:
        assert ours[name] is not None, name
        torch.testing.assert_close(ours[name], theirs[name], atol=ATOL, rtol=0, msg=name)


# ---------------------------------------------------------------- causality and weights


def _decoder_stack(seed: int = 5) -> TransformerDecoder:
    torch.manual_seed(seed)
    layers = [TransformerDecoderLayer(E, NH, FF, dropout=0.0, batch_first=True) for _ in range(2)]
    decoder = TransformerDecoder(layers, norm=nn.LayerNorm(E)).eval()
    _perturb(decoder, seed)
    return decoder


@pytest.mark.parametrize("keep_attention", [False, True])
def test_causal_mask_hides_the_future(keep_attention):
    decoder = _decoder_stack()
    for layer in decoder.layers:
        layer.keep_attention = keep_attention  # fused kernel and written-out attention alike
    torch.manual_seed(6)
    tgt, memory = torch.randn(B, T, E), torch.randn(B, S, E)
    with torch.no_grad():
        out = decoder(tgt, memory, tgt_is_causal=True)
        for t in range(T - 1):
            changed = tgt.clone()
            changed[:, t + 1 :] = torch.randn(B, T - t - 1, E)  # rewrite the future of t
            out_changed = decoder(changed, memory, tgt_is_causal=True)
            assert torch.equal(out_changed[:, : t + 1], out[:, : t + 1]), f"position <= {t} saw the future"
            assert not torch.equal(out_changed[:, t + 1 :], out[:, t + 1 :])
            # Without the mask the same change reaches the past: the check above can fail.
            leaky = decoder(tgt, memory) - decoder(changed, memory)
            assert leaky[:, : t + 1].abs().max() > 1e-4


def test_kept_attention_weights_are_causal_distributions():
    decoder = _decoder_stack()
    for layer in decoder.layers:
        layer.keep_attention = True
    tgt, memory = torch.randn(B, T, E), torch.randn(B, S, E)
    padding = _padding(S)
    decoder(tgt, memory, tgt_is_causal=True, memory_key_padding_mask=padding)
    for layer in decoder.layers:
        self_weights, cross_weights = layer.self_attention_weights, layer.cross_attention_weights
        assert self_weights.shape == (B, NH, T, T) and cross_weights.shape == (B, NH, T, S)
        assert not self_weights.requires_grad  # stored for figures, detached
        for weights in (self_weights, cross_weights):
            torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
        assert torch.equal(self_weights.triu(diagonal=1), torch.zeros_like(self_weights))  # nothing above the diagonal
        past = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T), on or below the diagonal
        assert (self_weights[..., past] > 0).all()
        assert torch.all(cross_weights.masked_select(padding[:, None, None, :]) == 0)  # padded memory unseen


@pytest.mark.parametrize("batch_first", [True, False])
def test_kept_encoder_weights_match_torch_attention(batch_first):
    ours, theirs = _layer_pair("encoder", seed=7, batch_first=batch_first)  # post-norm: attention sees src
    ours.keep_attention = True
    src = _sequence(S, batch_first)
    padding = _padding(S)
    ours.eval()(src, src_key_padding_mask=padding)
    _, ref_weights = theirs.self_attn(src, src, src, key_padding_mask=padding, average_attn_weights=False)
    assert ours.self_attention_weights.shape == (B, NH, S, S)
    torch.testing.assert_close(ours.self_attention_weights, ref_weights, atol=ATOL, rtol=0)
    assert ours.keep_attention and not TransformerEncoderLayer(E, NH).keep_attention  # off by default


def test_keeping_attention_switches_every_layer_on_for_the_block_only():
    from dlcamp.nn import keeping_attention

    decoder = _decoder_stack()
    decoder.layers[0].keep_attention = True  # a switch already on stays on afterwards
    with pytest.raises(RuntimeError, match="inside"):
        with keeping_attention(nn.ModuleList([decoder])):
            assert all(layer.keep_attention for layer in decoder.layers)
            decoder(torch.randn(B, T, E), torch.randn(B, S, E), tgt_is_causal=True)
            raise RuntimeError("an error inside the block")
    assert [layer.keep_attention for layer in decoder.layers] == [True] + [False] * (len(decoder.layers) - 1)
    assert all(layer.self_attention_weights.shape == (B, NH, T, T) for layer in decoder.layers)
