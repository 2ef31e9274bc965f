"""Our ImageNet CNNs against torchvision's: same state-dict keys, same logits.

Each torchvision model is built with seeded random weights (``weights=None``), its batch-norm
statistics and affine parameters randomised too (so the eval-mode buffers matter), and its
state dict is loaded into ours with ``strict=True``. Tolerance: rtol = atol = 1e-5 on the
float32 logits (the two compute the same operations in the same order, so in practice they
agree to the last bit). Our copy is built on the ``meta`` device and takes torchvision's
tensors (``assign=True``): strict loading still checks every key and shape, and the suite
does not pay for initialising 140M VGG weights twice.

Inputs are as small as each architecture allows: 64x64 for AlexNet (it needs >= 63), 32x32
for VGG (five 2x2 pools, then the adaptive pool), 64x64 for the others.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from tests.conftest import randomise_norms

from dlcamp import nn as dnn
from dlcamp.errors import DataNotFoundError, UsageError
from dlcamp.models import get_model
from dlcamp.models.classification.weights import load_torchvision_weights

RTOL = ATOL = 1e-5

# name -> input side (square images, batch of 2)
IMAGENET_MODELS: dict[str, int] = {
    "alexnet": 64,
    **{f"vgg{d}{bn}": 32 for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    "googlenet": 64,
    **{f"resnet{d}": 64 for d in (18, 34, 50, 101, 152)},
    **{f"densenet{d}": 64 for d in (121, 161, 169, 201)},
}


def _torchvision(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    if name == "googlenet":
        kwargs.setdefault("init_weights", True)  # torchvision warns when left unset
    model = tvm.get_model(name, weights=None, **kwargs)
    randomise_norms(model)
    return model.eval()


def _ours_with_weights_of(reference: nn.Module, name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        model = get_model(name, **kwargs)
    model.load_state_dict(reference.state_dict(), strict=True, assign=True)
    return model.eval()


@pytest.mark.parametrize("name", list(IMAGENET_MODELS))
def test_logits_match_torchvision(name):
    reference = _torchvision(name)
    ours = _ours_with_weights_of(reference, name)
    assert list(ours.state_dict()) == list(reference.state_dict())  # same names, same order
    side = IMAGENET_MODELS[name]
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(ours.forward_head(ours.forward_features(x)), expected, rtol=RTOL, atol=ATOL)


def test_googlenet_aux_logits_match_torchvision_in_training():
    from dlcamp.models.contracts import AuxiliaryClassifier

    reference = _torchvision("googlenet").train()
    ours = _ours_with_weights_of(reference, "googlenet").train()
    for model in (reference, ours):  # dropout draws differ between the two: switch it off
        for m in model.modules():
            if isinstance(m, (nn.Dropout, dnn.Dropout)):
                m.p = 0.0
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference(x)  # torchvision's GoogLeNetOutputs in training
        got = ours.forward_with_aux(x)
    assert got._fields == expected._fields == ("logits", "aux_logits2", "aux_logits1")
    assert isinstance(ours, AuxiliaryClassifier)  # main logits first, then the aux heads': the contract's order
    for field in got._fields:
        torch.testing.assert_close(getattr(got, field), getattr(expected, field), rtol=RTOL, atol=ATOL)
    assert isinstance(ours(x), torch.Tensor)  # plain forward stays tensor -> tensor in training


def test_googlenet_transform_input_matches_torchvision():
    reference = _torchvision("googlenet", transform_input=True, aux_logits=False)
    ours = _ours_with_weights_of(reference, "googlenet", transform_input=True, aux_logits=False)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "name, features_shape",
    [
        ("alexnet", (2, 256, 6, 6)),
        ("vgg16", (2, 512, 7, 7)),
        ("googlenet", (2, 1024, 7, 7)),
        ("resnet18", (2, 512, 7, 7)),
        ("resnet50", (2, 2048, 7, 7)),
        ("densenet121", (2, 1024, 7, 7)),
        ("densenet161", (2, 2208, 7, 7)),
    ],
)
def test_forward_features_shape_on_224px(name, features_shape):
    with torch.device("meta"):  # shapes only: nothing is computed
        model = get_model(name)
        features = model.forward_features(torch.empty(2, 3, 224, 224))
        assert tuple(features.shape) == features_shape
        assert features.shape[1] == model.num_features
        assert tuple(model.forward_head(features).shape) == (2, 1000)


def test_in_channels_changes_the_first_conv_only():
    with torch.device("meta"):
        for name in ("alexnet", "vgg11", "googlenet", "resnet18", "densenet121"):
            gray, rgb = get_model(name, in_channels=1), get_model(name)
            shapes = {k: v.shape for k, v in rgb.state_dict().items()}
            differ = [k for k, v in gray.state_dict().items() if v.shape != shapes[k]]
            assert len(differ) == 1 and differ[0].endswith("weight") and gray.state_dict()[differ[0]].shape[1] == 1


def test_dlcamp_batchnorm_as_norm_layer_matches_torch_on_resnet18():
    # float64: the two batch norms round differently; in double they agree to ~1e-12.
    reference = _torchvision("resnet18").double()
    ours = get_model("resnet18", norm_layer=dnn.BatchNorm2d).double()
    assert sum(isinstance(m, dnn.BatchNorm2d) for m in ours.modules()) == 20
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x), rtol=1e-10, atol=1e-10)
        # Training mode: batch statistics, and the running statistics they update.
        torch.testing.assert_close(ours.train()(x), reference.train()(x), rtol=1e-10, atol=1e-10)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=1e-10, atol=1e-10, msg=key)


# -- load_torchvision_weights --------------------------------------------------------------


def test_load_torchvision_weights_from_a_local_file(tmp_path):
    reference = _torchvision("resnet18")
    path = tmp_path / "resnet18-f37072fd.pth"  # torchvision's file name
    torch.save(reference.state_dict(), path)
    ours = load_torchvision_weights(get_model("resnet18"), path)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference(x), rtol=RTOL, atol=ATOL)


def test_load_torchvision_weights_renames_legacy_densenet_keys(tmp_path):
    # torchvision's published DenseNet files spell "norm1" as "norm.1" (old module names).
    reference = _torchvision("densenet121")
    legacy = {
        re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v for k, v in reference.state_dict().items()
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(legacy, path)
    with torch.device("meta"):
        ours = get_model("densenet121")
    ours.to_empty(device="cpu")
    load_torchvision_weights(ours, path)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference(x), rtol=RTOL, atol=ATOL)


def test_missing_weights_file_names_the_path_and_where_torchvision_publishes_it(tmp_path):
    path = tmp_path / "resnet50-0676ba61.pth"
    with pytest.raises(DataNotFoundError) as excinfo:
        load_torchvision_weights(get_model("resnet18"), path)
    message = str(excinfo.value)
    assert str(path) in message
    assert tvm.ResNet50_Weights.IMAGENET1K_V1.url in message and tvm.ResNet50_Weights.IMAGENET1K_V2.url in message
    assert isinstance(excinfo.value, FileNotFoundError) and isinstance(excinfo.value, UsageError)


def test_missing_weights_file_with_an_unknown_name_still_says_where_to_look(tmp_path):
    path = tmp_path / "my_weights.pth"
    with pytest.raises(DataNotFoundError, match="get_model_weights") as excinfo:
        load_torchvision_weights(get_model("resnet18"), path)
    assert str(path) in str(excinfo.value)
    with pytest.raises(DataNotFoundError, match=re.escape(tvm.VGG16_BN_Weights.IMAGENET1K_V1.url)):
        load_torchvision_weights(get_model("resnet18"), path, arch="vgg16_bn")


def test_weights_for_another_model_raise_a_usage_error(tmp_path):
    with torch.device("meta"):
        reference = tvm.get_model("resnet18", weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.to_empty(device="cpu").state_dict(), path)
    with pytest.raises(UsageError, match="do not fit"):
        load_torchvision_weights(get_model("resnet34"), path)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_zero_init_residual_zeroes_the_same_norms_as_torchvision(name):
    torch.manual_seed(0)
    reference = tvm.get_model(name, weights=None, zero_init_residual=True)
    ours = get_model(name, zero_init_residual=True)
    zeroed = {k for k, v in reference.state_dict().items() if k.endswith(".weight") and not v.any()}
    assert zeroed == {k for k, v in ours.state_dict().items() if k.endswith(".weight") and not v.any()}
    assert zeroed and all(k.endswith("bn2.weight" if name == "resnet18" else "bn3.weight") for k in zeroed)
