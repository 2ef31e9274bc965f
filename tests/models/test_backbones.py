"""Every registered backbone returns the maps it announces; an FPN goes on any of them; options are checked."""

from __future__ import annotations

import pytest
import torch

from dlcamp.errors import UsageError
from dlcamp.models.backbones import BACKBONES, Backbone, get_backbone, list_backbones
from dlcamp.models.backbones.fpn import FPN, FeatureBody
from dlcamp.models.backbones.resnet import ResNetBackbone
from dlcamp.models.backbones.tiny import TinyBackbone
from dlcamp.models.backbones.vgg import VGGBackbone


def _maps_match_announcement(backbone: Backbone, size: int = 64) -> None:
    feats = backbone(torch.rand(2, backbone.in_channels, size, size))
    assert [f.shape[1] for f in feats] == backbone.out_channels
    assert [-(-size // s) for s in backbone.strides] == [f.shape[-1] for f in feats]  # ceil(size / stride)


@pytest.mark.parametrize("name", sorted(list_backbones()))
def test_every_backbone_returns_the_maps_it_announces(name):
    torch.manual_seed(0)
    backbone = get_backbone(name, num_levels=3)
    assert isinstance(backbone, Backbone)
    assert backbone.strides == [8, 16, 32] and len(backbone.out_channels) == 3
    _maps_match_announcement(backbone)


def test_the_registry_holds_tiny_the_resnets_and_the_vggs():
    assert {"tiny", "resnet18", "resnet50", "vgg16", "vgg16_bn"} <= set(BACKBONES.names())
    assert isinstance(get_backbone("tiny"), TinyBackbone)
    assert isinstance(get_backbone("resnet18"), ResNetBackbone)
    assert isinstance(get_backbone("vgg11"), VGGBackbone)


@pytest.mark.parametrize("name", ["tiny", "resnet18", "vgg11"])
def test_an_fpn_goes_on_any_backbone_and_gives_every_level_its_width(name):
    body = get_backbone(name, num_levels=3, fpn_channels=16)
    assert isinstance(body, FeatureBody) and isinstance(body.fpn, FPN)
    assert body.out_channels == [16, 16, 16] and body.strides == [8, 16, 32]
    _maps_match_announcement(body)


def test_levels_past_the_network_are_extra_stages_and_unused_stages_are_not_built():
    resnet = get_backbone("resnet18", num_levels=1)
    assert "layer2" in resnet.body and "layer3" not in resnet.body and len(resnet.extras) == 0
    deep = get_backbone("resnet18", num_levels=5, extra_width=32)
    assert deep.strides[-1] == 128 and deep.out_channels[-2:] == [32, 32] and len(deep.extras) == 2
    _maps_match_announcement(deep, size=128)
    vgg = get_backbone("vgg16_bn", num_levels=3, first_stride=4)
    assert vgg.out_channels == [256, 512, 512] and any(isinstance(m, torch.nn.BatchNorm2d) for m in vgg.modules())
    _maps_match_announcement(vgg)


def test_backbone_options_are_checked_by_name():
    with pytest.raises(UsageError, match="widths"):
        get_backbone("resnet18", widths=(8, 8))
    with pytest.raises(UsageError, match="did you mean"):
        get_backbone("resnet81")
    with pytest.raises(UsageError, match="first_stride"):
        get_backbone("tiny", first_stride=3)
    assert get_backbone("tiny", in_channels=1, widths=(8, 8)).in_channels == 1


def test_detectors_take_their_backbone_from_the_registry():
    from dlcamp.models import get_model

    ssd = get_model("ssd", num_classes=2, backbone="vgg11", input_shape=(3, 64, 64), num_levels=3)
    assert isinstance(ssd.backbone, VGGBackbone)
    frcnn = get_model(
        "fasterrcnn",
        num_classes=2,
        backbone="tiny",
        backbone_options={"stem_width": 8},
        widths=(8, 8),
        representation=16,
    )
    assert isinstance(frcnn.body, TinyBackbone) and frcnn.body.stem[0].out_channels == 8
