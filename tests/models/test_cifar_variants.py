"""The 32x32 networks: CIFAR ResNets (He et al. 2016 sec. 4.2), DenseNet-BC-100 (Huang et al.
2017) and the small AlexNet, VGG and GoogLeNet builds."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from dlcamp.models import get_model
from dlcamp.models.classification.googlenet import GoogLeNetOutputs
from dlcamp.models.classification.resnet import BasicBlock, ZeroPadShortcut

CIFAR_RESNETS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}  # name: n


def _weighted_layers(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


@pytest.mark.parametrize("name, n", CIFAR_RESNETS.items())
def test_cifar_resnet_has_6n_plus_2_weighted_layers(name, n):
    with torch.device("meta"):
        model = get_model(name)
    depth = int(name.removeprefix("resnet"))
    assert _weighted_layers(model) == 6 * n + 2 == depth
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 3 * n
    assert [len(getattr(model, f"layer{i}")) for i in (1, 2, 3)] == [n, n, n]
    assert [getattr(model, f"layer{i}")[0].conv2.out_channels for i in (1, 2, 3)] == [16, 32, 64]


def test_option_a_shortcut_has_no_parameters_and_is_the_identity_on_the_first_channels():
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    assert sum(p.numel() for p in shortcut.parameters()) == 0
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2], rtol=0, atol=0)
    assert (y[:, 16:] == 0).all()


def test_cifar_resnet_parameters_all_sit_in_convs_norms_and_the_classifier():
    model = get_model("resnet20")
    shortcuts = [m.downsample for m in model.modules() if isinstance(m, BasicBlock) and m.downsample is not None]
    assert len(shortcuts) == 2 and all(isinstance(s, ZeroPadShortcut) for s in shortcuts)
    assert all(sum(p.numel() for p in s.parameters()) == 0 for s in shortcuts)


@pytest.mark.parametrize("name", CIFAR_RESNETS)
def test_cifar_resnet_classifies_32px_rgb_and_grayscale(name):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    model = get_model(name).eval()
    assert model(x).shape == (2, 10)
    assert model.forward_features(x).shape == (2, 64, 8, 8)
    gray = get_model(name, in_channels=1, input_shape=(1, 32, 32)).eval()
    assert gray(x[:, :1]).shape == (2, 10)


def test_cifar_builders_reject_an_input_shape_that_disagrees_with_in_channels():
    for name in ("resnet20", "densenet_bc_100_k12", "alexnet_small", "vgg11_small", "googlenet_small"):
        with pytest.raises(ValueError, match="in_channels=1"):
            get_model(name, input_shape=(1, 32, 32))


def test_densenet_bc_100_k12_channels_after_each_block_and_transition():
    model = get_model("densenet_bc_100_k12").eval()
    features = model.features
    assert [len(getattr(features, f"denseblock{i}")) for i in (1, 2, 3)] == [16, 16, 16]
    assert _weighted_layers(model) == 100  # 1 stem conv + 48 * 2 + 2 transition convs + 1 fc
    x = torch.randn(2, 3, 32, 32)
    shapes = {}
    with torch.no_grad():
        for name, module in features.named_children():
            x = module(x)
            shapes[name] = tuple(x.shape[1:])
    # 2k = 24 in; each block adds 16 * 12 = 192; each transition halves (compression 0.5).
    assert shapes == {
        "conv0": (24, 32, 32),
        "denseblock1": (216, 32, 32),
        "transition1": (108, 16, 16),
        "denseblock2": (300, 16, 16),
        "transition2": (150, 8, 8),
        "denseblock3": (342, 8, 8),
        "norm5": (342, 8, 8),
    }
    assert model.num_features == 342
    gray = get_model("densenet_bc_100_k12", in_channels=1, input_shape=(1, 32, 32)).eval()
    assert gray(torch.randn(2, 1, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(
    "name, features_shape",
    [
        ("alexnet_small", (256, 4, 4)),
        ("vgg11_small", (512, 1, 1)),
        ("vgg16_small", (512, 1, 1)),
        ("googlenet_small", (1024, 4, 4)),
    ],
)
def test_small_builds_classify_32px_rgb_and_grayscale(name, features_shape):
    torch.manual_seed(0)
    model = get_model(name).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, *features_shape)
        assert model(x).shape == (2, 10)
        gray = get_model(name, in_channels=1, input_shape=(1, 32, 32)).eval()
        assert gray(x[:, :1]).shape == (2, 10)


def test_googlenet_small_aux_heads_train_through_forward_with_aux():
    torch.manual_seed(0)
    model = get_model("googlenet_small", aux_logits=True, width_mult=0.25).train()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    out = model.forward_with_aux(x)
    assert isinstance(out, GoogLeNetOutputs) and all(t.shape == (4, 10) for t in out)
    ce = nn.functional.cross_entropy
    loss = ce(out.logits, y) + 0.3 * (ce(out.aux_logits1, y) + ce(out.aux_logits2, y))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert isinstance(model(x), torch.Tensor)  # plain forward: logits only, in training too
    assert get_model("googlenet_small").forward_with_aux(x).aux_logits1 is None  # no aux heads by default


def test_alexnet_small_starts_with_signal_through_its_layers():
    # with PyTorch's default init the logits of an 8-layer ReLU net without normalisation
    # come out almost constant; He init keeps them apart, so SGD can start
    import torch

    from dlcamp.models import get_model

    torch.manual_seed(0)
    model = get_model("alexnet_small", in_channels=1, input_shape=(1, 32, 32), dropout=0.0).eval()
    logits = model(torch.rand(16, 1, 32, 32))
    assert logits.std(dim=0).mean() > 0.05
