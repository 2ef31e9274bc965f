"""Every registered model: tiny configuration, forward, backward, no NaN, output shape.

Generated from the registry, so a model registered without a working tiny build fails here.
Add a model's tiny arguments and input to ``TINY`` when its defaults are too big for CI.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from dlcamp.models import MODELS, get_model, list_models
from dlcamp.models.sequence.contracts import CountingModel
from dlcamp.registry import signature_params

# name -> (builder kwargs, input shape without batch)
TINY: dict[str, tuple[dict, tuple[int, ...]]] = {
    "mlp": ({"width": 16, "depth": 2, "norm": "batchnorm", "dropout": 0.1}, (1, 8, 8)),
    # ImageNet CNNs at full conv width on the smallest input each accepts (AlexNet's 11x11/4
    # conv and three 3x3/2 pools need 63 px; the rest reach 1x1 at 32 px and pool adaptively);
    # AlexNet's and VGG's 4096-wide classifiers (~90% of their weights) narrowed.
    "alexnet": ({"hidden": 64}, (3, 64, 64)),
    **{f"vgg{d}{bn}": ({"hidden": 64}, (3, 32, 32)) for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    # The aux heads are trained through forward_with_aux; plain forward leaves them without gradient.
    "googlenet": ({"aux_logits": False}, (3, 32, 32)),
    **{f"resnet{d}": ({}, (3, 32, 32)) for d in (18, 34, 50, 101, 152)},
    **{f"densenet{d}": ({}, (3, 32, 32)) for d in (121, 161, 169, 201)},
    # 32x32 builds, narrowed.
    **{f"resnet{d}": ({"base_width": 8}, (3, 32, 32)) for d in (20, 32, 44, 56)},
    "resnet110": ({"base_width": 4, "in_channels": 1, "input_shape": (1, 32, 32)}, (1, 32, 32)),
    "densenet_bc_100_k12": ({"growth_rate": 4}, (3, 32, 32)),
    "alexnet_small": ({"hidden": 64, "in_channels": 1, "input_shape": (1, 32, 32)}, (1, 32, 32)),
    "vgg11_small": ({"width_mult": 0.25, "hidden": 32}, (3, 32, 32)),
    "vgg16_small": ({"width_mult": 0.25, "hidden": 32}, (3, 32, 32)),
    "googlenet_small": ({"width_mult": 0.25}, (3, 32, 32)),
    "vit_digits32": ({"dim": 16, "depth": 2, "num_heads": 2, "mlp_dim": 32}, (1, 32, 32)),
    # B/16 at full width and depth on 32x32 images: 2x2 patches + the class token.
    "vit_b_16": ({"image_size": 32}, (3, 32, 32)),
}


def _tiny(name: str) -> tuple[dict, tuple[int, ...]]:
    if name in TINY:
        return TINY[name]
    params = signature_params(MODELS.builder(name))
    shape = params.get("input_shape")
    default = (
        tuple(shape.default) if shape is not None and shape.default is not inspect.Parameter.empty else (3, 32, 32)
    )
    return {}, default


def _family(family: str) -> list[str]:
    return sorted(n for n in list_models() if MODELS.builder(n).__module__.startswith(f"dlcamp.models.{family}."))


def test_every_model_belongs_to_a_tested_family():
    assert set(list_models()) == (
        set(_family("classification"))
        | set(_family("generative"))
        | set(_family("adversarial"))
        | set(_family("sequence"))
        | set(_family("detection"))
        | set(_family("segmentation"))
    )


@pytest.mark.parametrize("name", _family("classification"))
def test_model_forward_backward(name):
    torch.manual_seed(0)
    kwargs, shape = _tiny(name)
    model = (
        get_model(name, num_classes=7, **kwargs)
        if "num_classes" in signature_params(MODELS.builder(name))
        else get_model(name, **kwargs)
    )
    x = torch.randn(4, *shape)
    out = model(x)
    assert out.shape == (4, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert hasattr(model, "forward_features") and hasattr(model, "forward_head")
    model.eval()  # dropout off: the two paths must then agree exactly
    torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))


def test_mlp_arguments_shape_the_network():
    from dlcamp import nn as dnn

    m = get_model("mlp", input_shape=(1, 8, 8), depth=3, width=20, norm="batchnorm", activation="tanh", dropout=0.5)
    assert sum(isinstance(l, torch.nn.Linear) for l in m.modules()) == 4
    assert sum(isinstance(l, dnn.BatchNorm1d) for l in m.modules()) == 3
    assert sum(isinstance(l, torch.nn.Tanh) for l in m.modules()) == 3
    assert sum(isinstance(l, dnn.Dropout) for l in m.modules()) == 3
    m = get_model("mlp", norm="torch_batchnorm", hidden=[5, 6])
    assert [l.num_features for l in m.modules() if isinstance(l, torch.nn.BatchNorm1d)] == [5, 6]
    with pytest.raises(ValueError):
        get_model("mlp", dropout=1.0)


@pytest.mark.parametrize("name", _family("adversarial"))
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 32, 32), (2,)], ids=["8x8", "32x32", "points"])
def test_adversarial_model_defaults_play_both_sides(name, shape):
    """Every GAN at its default size: G's samples have the data's shape, D scores them, both get gradients."""
    torch.manual_seed(0)
    takes = signature_params(MODELS.builder(name))
    if "dcgan" in name and len(shape) == 1:  # convolutional: images only, and it says so
        with pytest.raises(ValueError, match="square images"):
            get_model(name, input_shape=list(shape), **({"num_classes": 10} if "num_classes" in takes else {}))
        return
    model = get_model(name, input_shape=list(shape), **({"num_classes": 10} if "num_classes" in takes else {}))
    y = torch.arange(4) % 10 if model.conditional else None
    x = model.generate(model.latent(4), y)
    assert x.shape == (4, *shape) and torch.isfinite(x).all()
    out = model.discriminate(x, y)
    assert out.shape == (4,)
    out.mean().backward()
    for group in model.param_groups().values():
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in group.parameters())
    assert model.sample(3, y[:3] if y is not None else None).shape == (3, *shape)


@pytest.mark.parametrize("name", _family("generative"))
def test_generative_model_defaults_train_and_sample(name):
    """Every density model at its default size on binary 8×8 digits: loss, gradients, samples."""
    torch.manual_seed(0)
    model = get_model(name, input_shape=(1, 8, 8))
    x = torch.bernoulli(torch.full((3, 1, 8, 8), 0.3))
    condition = torch.tensor([0, 1, 2]) if model.conditional else None
    terms = model.nll_loss(x, condition)
    assert terms["loss"].shape == (3,) and torch.all(terms["loss"] > 0)
    terms["loss"].mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.log_prob(x, condition).shape == (3,)
    assert model.sample(2, condition=condition[:2] if condition is not None else None).shape == (2, 1, 8, 8)


# Sequence models: name -> (tiny builder kwargs, kind). Every builder takes vocab_size.
SEQUENCE_TINY = {
    "ngram": ({"order": 3}, "lm"),
    "char_lm": ({"hidden": 16, "embed_dim": 8, "num_layers": 1, "max_len": 12}, "lm"),
    "seq2seq_gru": ({"hidden": 16, "embed_dim": 8}, "seq2seq"),
    "seq2seq_transformer": ({"d_model": 16, "nhead": 2, "dim_feedforward": 32, "max_len": 12}, "seq2seq"),
    "rnn_classifier": ({"hidden": 16, "embed_dim": 8, "num_classes": 3}, "classify"),
    "transformer_classifier": (
        {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32, "max_len": 12, "num_classes": 3},
        "classify",
    ),
}


def test_every_sequence_model_has_a_tiny_build():
    assert set(SEQUENCE_TINY) == set(_family("sequence"))


@pytest.mark.parametrize("name", _family("sequence"))
def test_sequence_model_forward_backward(name):
    torch.manual_seed(0)
    kwargs, kind = SEQUENCE_TINY[name]
    V = 11
    model = get_model(name, vocab_size=V, **kwargs)
    x = torch.randint(4, V, (3, 12))
    x[0, 9:] = 0  # right padding
    if kind == "lm":
        if isinstance(model, CountingModel):  # fitted by counting: give it counts first
            model.observe(x[:, :-1], x[:, 1:])
        out = model(x)
        assert out.shape == (3, 12, V)
    elif kind == "seq2seq":
        out = model(x, x[:, :7])
        assert out.shape == (3, 7, V)
    else:
        out = model(x)
        assert out.shape == (3, 3)
    assert torch.isfinite(out).all()
    params = [p for p in model.parameters() if p.requires_grad]
    if params:  # the n-gram has none: it counts
        out.float().square().mean().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)


# Detectors at their default builds, on small images: the loss trains every part, detect answers in the contract.
@pytest.mark.parametrize("name", _family("detection"))
def test_detector_default_build_trains_and_detects(name):
    torch.manual_seed(0)
    model = get_model(name, num_classes=3)
    images = torch.rand(2, 3, 128, 128)
    targets = [
        {
            "boxes": torch.tensor([[10.0, 20.0, 50.0, 60.0]]),
            "labels": torch.tensor([2]),
            "iscrowd": torch.tensor([False]),
            "image_id": i,
        }
        for i in range(2)
    ]
    losses = model.loss(images, targets)
    assert "loss" in losses and all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    model.eval()
    for det in model(images):
        assert det["boxes"].shape[1:] == (4,) and len(det["boxes"]) == len(det["scores"]) == len(det["labels"])


# Segmenters at small builds (the paper's FCNs 16x narrower, the ResNet FCNs as they are): logits at the input's size.
SEGMENTATION_SMALL = {
    "fcn32s": {"width_mult": 1 / 16},
    "fcn16s": {"width_mult": 1 / 16},
    "fcn8s": {"width_mult": 1 / 16},
    "fcn_resnet50": {"aux_loss": True},
    "fcn_resnet101": {},
}


def test_every_segmenter_has_a_small_build():
    assert set(SEGMENTATION_SMALL) == set(_family("segmentation"))


@pytest.mark.parametrize("name", _family("segmentation"))
def test_segmenter_trains_and_answers_at_the_input_size(name):
    torch.manual_seed(0)
    model = get_model(name, num_classes=3, **SEGMENTATION_SMALL[name])
    out = model(torch.rand(2, 3, 37, 45))
    outputs = list(out.values()) if isinstance(out, dict) else [out]
    assert all(o.shape == (2, 3, 37, 45) and torch.isfinite(o).all() for o in outputs)
    sum(o.square().mean() for o in outputs).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
