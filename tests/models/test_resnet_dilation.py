"""Our ResNet with ``replace_stride_with_dilation`` against torchvision's: same convs, keys and outputs.

torchvision's dilated ResNet-50 (seeded random weights, randomised batch-norm statistics
and affine parameters) is loaded into ours with ``strict=True``; logits and the stride-8
feature map agree to rtol = atol = 1e-5 on a 75x90 input (not a multiple of 32, so the
rounding of every stride and padding is exercised).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from tests.conftest import randomise_norms

from dlcamp.models import get_model

RTOL = ATOL = 1e-5


def _conv_geometry(model: nn.Module) -> dict[str, tuple]:
    return {
        name: (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    }


@pytest.mark.parametrize("dilate", [[False, False, False], [False, False, True], [False, True, True], [True] * 3])
@pytest.mark.parametrize("name", ["resnet50", "resnet101"])
def test_dilated_convs_have_torchvision_strides_paddings_and_dilations(name, dilate):
    with torch.device("meta"):  # structure only
        reference = tvm.get_model(name, weights=None, replace_stride_with_dilation=dilate)
        ours = get_model(name, replace_stride_with_dilation=dilate)
    assert _conv_geometry(ours) == _conv_geometry(reference)


def test_dilated_resnet50_matches_torchvision_logits_and_stride8_features():
    torch.manual_seed(0)
    reference = tvm.resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
    randomise_norms(reference)
    reference.eval()
    with torch.device("meta"):
        ours = get_model("resnet50", replace_stride_with_dilation=[False, True, True])
    ours.load_state_dict(reference.state_dict(), strict=True, assign=True)
    ours.eval()
    assert list(ours.state_dict()) == list(reference.state_dict())  # same names, same order

    x = torch.randn(1, 3, 75, 90, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        t = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))  # (1, 64, 19, 23)
        expected_features = reference.layer4(reference.layer3(reference.layer2(reference.layer1(t))))
        features = ours.forward_features(x)
        assert features.shape == (1, 2048, 10, 12)  # 75 -> 38 -> 19 -> 10, 90 -> 45 -> 23 -> 12: stride 8
        torch.testing.assert_close(features, expected_features, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(ours(x), reference(x), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_basic_block_resnets_refuse_dilation_as_torchvision_does(name):
    with torch.device("meta"):
        with pytest.raises(NotImplementedError):
            tvm.get_model(name, weights=None, replace_stride_with_dilation=[False, False, True])
        with pytest.raises(ValueError, match="BasicBlock does not support dilation > 1"):
            get_model(name, replace_stride_with_dilation=[False, False, True])
        get_model(name, replace_stride_with_dilation=[False, False, False])  # all False is the plain net


def test_replace_stride_with_dilation_needs_one_flag_per_stage_after_the_first():
    with pytest.raises(ValueError, match=r"one flag per stage after the first \(3 here"):
        get_model("resnet50", replace_stride_with_dilation=[True, True])
