"""ViT and the Transformer sequence classifier: sizes against torchvision, outputs against
transformers' ViT (random weights, built from a config: nothing is downloaded), shapes,
argument checks, attention maps and padding invariance."""

from __future__ import annotations

import math
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported

import pytest
import torch
import torch.nn.functional as F

from dlcamp.models.classification.vit import (
    LAYER_NORM_EPS,
    VisionTransformer,
    convert_hf_vit_state,
    load_hf_vit_state,
    vit_b_16,
    vit_digits32,
)
from dlcamp.models.sequence.classifier import PAD, transformer_classifier

# The small reference: 16x16 grey images, 4x4 patches (16 + 1 tokens), width 32, 2 layers.
HF_SIZE = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    image_size=16,
    patch_size=4,
    num_channels=1,
)


def _hf_config(**extra):
    import transformers  # a test dependency (pyproject [test]): the reference must be there

    return transformers.ViTConfig(
        **HF_SIZE,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        hidden_act="gelu",
        layer_norm_eps=LAYER_NORM_EPS,
        **extra,
    )


def _randomise(model: torch.nn.Module) -> torch.nn.Module:
    """HF initialises biases at zero and norms at (1, 0): jitter every tensor, so a
    misplaced bias or norm weight cannot go unnoticed."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def hf_vit():
    import transformers  # a test dependency (pyproject [test]): the reference must be there

    torch.manual_seed(0)
    return _randomise(transformers.ViTModel(_hf_config(), add_pooling_layer=False))


def _ours_for_hf(num_classes: int = 10) -> VisionTransformer:
    return VisionTransformer(
        image_size=16, patch_size=4, in_channels=1, num_classes=num_classes, dim=32, depth=2, num_heads=4, mlp_dim=64
    )


def _hf_encoder(hf_vit, hidden: torch.Tensor) -> torch.Tensor:
    """HF's layer stack and final norm on given token embeddings (transformers 5.x or 4.x layout)."""
    layers = hf_vit.layers if hasattr(hf_vit, "layers") else hf_vit.encoder.layer
    for layer in layers:
        hidden = layer(hidden)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    return hf_vit.layernorm(hidden)


# -- size ------------------------------------------------------------------------------------


def test_vit_b_16_parameter_count_equals_torchvision():
    import torchvision

    with torch.device("meta"):
        reference = torchvision.models.vit_b_16()
        ours = vit_b_16()
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in reference.parameters()) == 86_567_656


# -- conformance with transformers ----------------------------------------------------------


def test_vit_matches_hf_vit_model(hf_vit):
    torch.manual_seed(1)
    ours = _ours_for_hf().eval()
    assert load_hf_vit_state(ours, hf_vit.state_dict()) == ["head.weight", "head.bias"]  # a bare ViTModel has no head
    images = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        expected = hf_vit(pixel_values=images).last_hidden_state  # (B, 17, 32)
        torch.testing.assert_close(ours.forward_tokens(images), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.forward_features(images), expected[:, 0], atol=1e-5, rtol=1e-5)


def test_vit_logits_match_hf_image_classifier():
    import transformers  # a test dependency (pyproject [test]): the reference must be there

    torch.manual_seed(2)
    hf = _randomise(transformers.ViTForImageClassification(_hf_config(num_labels=5)))
    ours = _ours_for_hf(num_classes=5).eval()
    assert load_hf_vit_state(ours, hf.state_dict()) == []  # "vit." prefix dropped, classifier -> head
    images = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), hf(pixel_values=images).logits, atol=1e-5, rtol=1e-5)


def test_hf_mapping_is_strict(hf_vit):
    hf_state = hf_vit.state_dict()
    converted = convert_hf_vit_state(hf_state)
    ours = _ours_for_hf().state_dict()
    # Every tensor of ours (but the head) is filled, with its own shape, and nothing else is made.
    assert set(converted) == set(ours) - {"head.weight", "head.bias"}
    assert all(converted[k].shape == ours[k].shape for k in converted)
    # Every HF element is used: the converted tensors hold exactly as many numbers.
    assert sum(v.numel() for v in converted.values()) == sum(v.numel() for v in hf_state.values())

    with pytest.raises(ValueError, match="pooler"):
        convert_hf_vit_state({**hf_state, "pooler.dense.weight": torch.zeros(32, 32)})
    without_key = {k: v for k, v in hf_state.items() if "k_proj.weight" not in k and "attention.key.weight" not in k}
    with pytest.raises(ValueError, match="query/key/value"):
        convert_hf_vit_state(without_key)
    deeper = VisionTransformer(
        image_size=16, patch_size=4, in_channels=1, num_classes=10, dim=32, depth=3, num_heads=4, mlp_dim=64
    )
    with pytest.raises(ValueError, match="missing"):
        load_hf_vit_state(deeper, hf_state)


def test_classifier_encoder_matches_hf_encoder(hf_vit):
    torch.manual_seed(3)
    model = transformer_classifier(
        vocab_size=11, num_classes=3, max_len=20, d_model=32, nhead=4, num_layers=2, dim_feedforward=64, dropout=0.0
    ).eval()
    encoder_state = {
        k.removeprefix("encoder."): v
        for k, v in convert_hf_vit_state(hf_vit.state_dict()).items()
        if k.startswith("encoder.")
    }
    model.encoder.load_state_dict(encoder_state, strict=True)
    embeddings = torch.randn(2, 9, 32)  # (B, T, D), any token embeddings
    with torch.no_grad():
        torch.testing.assert_close(model.encoder(embeddings), _hf_encoder(hf_vit, embeddings), atol=1e-5, rtol=1e-5)


# -- shapes and arguments -------------------------------------------------------------------


def test_vit_shapes_on_square_and_rectangular_images():
    model = vit_digits32(num_classes=7, dim=16, depth=2, num_heads=2, mlp_dim=32)
    images = torch.rand(3, 1, 32, 32)
    assert model.forward_tokens(images).shape == (3, 8 * 8 + 1, 16)
    assert model.forward_features(images).shape == (3, 16)
    assert model(images).shape == (3, 7)
    wide = vit_digits32(in_channels=3, input_shape=(3, 16, 24), dim=16, depth=1, num_heads=2, mlp_dim=32)
    assert wide.forward_tokens(torch.rand(2, 3, 16, 24)).shape == (2, 4 * 6 + 1, 16)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_classifier_shapes(pool):
    model = transformer_classifier(vocab_size=20, num_classes=4, max_len=12, pool=pool)
    tokens = torch.randint(1, 20, (5, 12))
    assert model.forward_features(tokens).shape == (5, 64)
    assert model(tokens).shape == (5, 4)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: vit_digits32(input_shape=(1, 30, 30)), "multiple of patch_size"),
        (lambda: vit_digits32(dim=66, num_heads=4), "num_heads"),
        (lambda: vit_digits32(depth=0), "depth"),
        (lambda: vit_digits32(in_channels=3), "in_channels"),
        (lambda: transformer_classifier(vocab_size=10, num_classes=2, max_len=8, pool="max"), "pool"),
        (lambda: transformer_classifier(vocab_size=10, num_classes=2, max_len=8, d_model=30, nhead=4), "num_heads"),
    ],
)
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_inputs_of_the_wrong_size_raise_value_error():
    with pytest.raises(ValueError, match="32x32"):
        vit_digits32(dim=16, depth=1, num_heads=2, mlp_dim=16)(torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError, match="max_len"):
        transformer_classifier(vocab_size=10, num_classes=2, max_len=8)(torch.ones(1, 9, dtype=torch.long))


# -- attention maps -------------------------------------------------------------------------


def test_attention_maps_are_distributions_and_the_ones_used():
    from dlcamp.models.contracts import AttentionMapper

    torch.manual_seed(4)
    model = vit_digits32(dim=16, depth=3, num_heads=2, mlp_dim=32).eval()
    assert isinstance(model, AttentionMapper) and model.patch_size == 4  # the contract the classification task checks
    images = torch.rand(2, 1, 32, 32)
    maps = model.attention_maps(images)
    assert len(maps) == 3 and all(m.shape == (2, 2, 65, 65) for m in maps)  # (B, nh, T, T)
    for m in maps:
        assert (m >= 0).all()
        torch.testing.assert_close(m.sum(-1), torch.ones(2, 2, 65))
    assert not model.encoder.keep_attention  # switched back off

    # Layer 0's map recomputed by hand: softmax(q k^T / sqrt(hs)) on the pre-normed tokens.
    layer = model.encoder.layers[0]
    with torch.no_grad():
        tokens = layer.norm1(model.embed(images))  # (B, T, D)
        q, k, _ = F.linear(tokens, layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias).chunk(3, dim=-1)
        q, k = (t.view(2, 65, 2, 8).transpose(1, 2) for t in (q, k))  # (B, nh, T, hs)
        expected = (q @ k.transpose(-2, -1) / math.sqrt(8)).softmax(-1)  # (B, nh, T, T)
    torch.testing.assert_close(maps[0], expected, atol=1e-5, rtol=1e-5)


def test_classifier_attention_never_reads_padding():
    model = transformer_classifier(vocab_size=10, num_classes=2, max_len=8).eval()
    tokens = torch.tensor([[3, 4, 5, PAD, PAD], [6, 7, PAD, PAD, PAD]])
    for m in model.attention_maps(tokens):  # (B, nh, T, T), T = 6 with the class token
        assert m.shape == (2, 4, 6, 6)
        assert m[0, :, :, 4:].abs().max() == 0 and m[1, :, :, 3:].abs().max() == 0
        torch.testing.assert_close(m.sum(-1), torch.ones(2, 4, 6))


# -- padding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_appending_padding_leaves_the_logits_unchanged(pool):
    torch.manual_seed(5)
    model = transformer_classifier(vocab_size=15, num_classes=3, max_len=16, pool=pool, dropout=0.1).eval()
    tokens = torch.randint(1, 15, (3, 8))
    tokens[1, 5:] = PAD  # right-padded rows of lengths 8, 5, 2
    tokens[2, 2:] = PAD
    padded = torch.cat([tokens, torch.full((3, 6), PAD)], dim=1)  # 6 more PADs
    with torch.no_grad():
        logits = model(tokens)
        torch.testing.assert_close(model(padded), logits, atol=1e-5, rtol=1e-5)
        # Row 2 cut to its two real tokens: the PADs it had were never read either.
        torch.testing.assert_close(model(tokens[2:, :2]), logits[2:], atol=1e-5, rtol=1e-5)
