"""Backbones shared by the dense-prediction families (detection, segmentation, YOLO), by name.

A backbone maps images to feature maps at several strides, finest first, and says what
it returns (``Backbone``: ``in_channels``, ``out_channels``, ``strides``). Each is built by
name with keyword options, ``get_backbone("resnet18", num_levels=3)``; ``fpn_channels``
puts a feature pyramid (Lin et al. 2017) of that width on top of any of them.

- ``tiny``: a small conv-BN-ReLU network for 2 CPU cores and the shapes world;
- ``resnet18`` ... ``resnet152``: the classification family's ResNets, only the stages used;
- ``vgg11`` ... ``vgg19`` and ``vgg11_bn`` ... ``vgg19_bn``: the classification family's VGG conv stacks.

Every backbone takes ``num_levels`` (how many maps), ``first_stride`` (the finest map's
stride) and ``in_channels``. Modules under this package register themselves when imported.
"""

from __future__ import annotations

from typing import Any

from dlcamp.models.backbones.base import Backbone
from dlcamp.models.backbones.fpn import FPN, FeatureBody
from dlcamp.registry import Registry, import_package

BACKBONES: Registry = Registry("backbone")
register_backbone = BACKBONES.register


def get_backbone(name: str, *, fpn_channels: int | None = None, **options: Any) -> Backbone:
    """Backbone ``name`` built with ``options``; with ``fpn_channels``, an FPN of that width on top."""
    import_package("dlcamp.models.backbones")
    backbone = BACKBONES.build(name, **options)
    if fpn_channels is None:
        return backbone
    return FeatureBody(backbone, FPN(backbone.out_channels, fpn_channels))


def list_backbones() -> dict[str, str]:
    import_package("dlcamp.models.backbones")
    return BACKBONES.describe()


__all__ = ["BACKBONES", "Backbone", "FPN", "FeatureBody", "get_backbone", "list_backbones", "register_backbone"]
