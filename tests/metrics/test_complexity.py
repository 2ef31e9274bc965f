from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from dlcamp.metrics.complexity import profile
from dlcamp.models import get_model


def test_conv_stack_params_macs_and_receptive_field():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )
    r = profile(model, (3, 8, 8))
    conv1, _, pool, conv2, _, fc = r["layers"]
    assert conv1["params"] == 3 * 8 * 9 + 8 and conv1["macs"] == 3 * 9 * 8 * 8 * 8
    assert conv2["output"] == [16, 4, 4] and conv2["macs"] == 8 * 9 * 16 * 4 * 4
    assert fc["macs"] == 256 * 10
    # 3x3 -> rf 3; pool 2/2 -> rf 4, jump 2; 3x3 at jump 2 -> rf 8
    assert (conv1["rf"], pool["rf"], pool["jump"], conv2["rf"]) == (3, 4, 2, 8)
    # flatten and linear pass the final feature map's field through to the totals
    assert (r["receptive_field"], r["jump"], r["output"]) == (8, 2, [10])
    assert r["total_params"] == sum(p.numel() for p in model.parameters())
    assert r["params_not_run"] == 0


def test_two_3x3_see_what_one_5x5_sees_with_fewer_parameters():
    five = profile(nn.Conv2d(16, 16, 5), (16, 9, 9))
    three = profile(nn.Sequential(nn.Conv2d(16, 16, 3), nn.Conv2d(16, 16, 3)), (16, 9, 9))
    assert five["layers"][-1]["rf"] == three["layers"][-1]["rf"] == 5
    assert five["receptive_field"] == three["receptive_field"] == 5
    assert three["total_params"] < five["total_params"]


class _Residual(nn.Module):
    """3x3/2 -> 3x3 on the main path, a 1x1/2 conv on the shortcut, summed."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.downsample = nn.Conv2d(4, 4, 1, stride=2)  # runs after the main path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + self.downsample(x)


def test_residual_shortcut_does_not_compound_the_stride():
    r = profile(_Residual(), (4, 16, 16))
    rows = {row["layer"]: row for row in r["layers"]}
    # main path: 3x3/2 -> rf 3, jump 2; 3x3 at jump 2 -> rf 7. Shortcut: 1x1/2 on the input -> rf 1, jump 2.
    assert (rows["conv2"]["rf"], rows["conv2"]["jump"]) == (7, 2)
    assert (rows["downsample"]["rf"], rows["downsample"]["jump"]) == (1, 2)
    assert (r["receptive_field"], r["jump"]) == (7, 2)  # the sum sees the wider field; jump stays 2, not 4


class _TwoBranches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1))
        self.point = nn.Conv2d(4, 4, 1)  # runs after the wide branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.wide(x), self.point(x)], dim=1)


def test_concatenated_branches_take_the_widest_field():
    r = profile(_TwoBranches(), (4, 8, 8))
    assert r["layers"][-1]["layer"] == "point" and r["layers"][-1]["rf"] == 1  # its own branch only
    assert (r["receptive_field"], r["jump"], r["output"]) == (5, 1, [8, 8, 8])


# Derived by hand along the widest path (k - 1)·jump at a time:
# alexnet: 11/4 -> 11 (j 4), pool 3/2 -> 19 (j 8), 5x5 -> 51, pool -> 67 (j 16), three 3x3 -> 163, pool -> 195 (j 32)
# vgg16: 13 3x3 convs and 5 pools 2/2: 1 + 2·(2+2·2+3·4+3·8+3·16) + (1+2+4+8+16) = 212 (j 32)
# resnet18: 7/2 -> 7, pool 3/2 -> 11 (j 4), layer1 4x 3x3 -> 43, layer2 -> 99 (j 8), layer3 -> 211 (j 16),
#           layer4 -> 435 (j 32); resnet50 (v1.5, stride in the 3x3): 427
# googlenet: stem -> 27 (j 8), 3a, 3b (+16 each) -> 59, pool -> 75 (j 16), 4a-4e (+32 each) -> 235,
#            pool 2/2 -> 251 (j 32), 5a, 5b (+64 each) -> 379
@pytest.mark.parametrize(
    "name, rf", [("alexnet", 195), ("vgg16", 212), ("resnet18", 435), ("resnet50", 427), ("googlenet", 379)]
)
def test_final_feature_map_receptive_field_of_imagenet_nets(name, rf):
    with torch.device("meta"):  # shapes are all a field needs
        model = get_model(name)
    r = profile(model, (3, 224, 224))
    assert (r["receptive_field"], r["jump"]) == (rf, 32)


def test_googlenet_aux_heads_are_counted_as_params_not_run():
    with torch.device("meta"):
        model = get_model("googlenet")
    r = profile(model, (3, 224, 224))
    aux = sum(p.numel() for head in (model.aux1, model.aux2) for p in head.parameters())
    assert r["params_not_run"] == aux > 0
    assert not any(row["layer"].startswith("aux") for row in r["layers"])


def test_profile_on_meta_counts_what_a_real_run_counts():
    def build() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 5),
        )

    real = profile(build(), (3, 17, 17))
    with torch.device("meta"):
        meta = profile(build(), (3, 17, 17))
    assert meta == real
