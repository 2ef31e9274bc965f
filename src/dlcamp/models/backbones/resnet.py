"""The classification family's ResNets (He et al. 2016, arXiv:1512.03385) as backbones.

The stem and the stages of ``dlcamp.models.classification.resnet``: maps C3, C4, C5 at
strides 8, 16, 32 (the outputs of ``layer2``, ``layer3``, ``layer4``), kept under their
own names in ``body``, so a torchvision ImageNet ResNet's state dict loads into
``backbone.body`` (``strict=False``: the stages not used and the classifier are left out).
Only the stages up to the last map used are kept: a deeper one would be computed for
nothing (the full network is built first, so the same seed gives the same weights). Levels past C5 (SSD's coarse
scales) are extra stride-2 ``conv_bn_relu`` stages of ``extra_width``.

Legend: B batch, C channels, H, W height and width.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dlcamp.errors import UsageError
from dlcamp.models.backbones import register_backbone
from dlcamp.models.backbones.base import Backbone, extra_stages
from dlcamp.models.classification import resnet as classification
from dlcamp.registry import forwards


class ResNetBackbone(Backbone):
    """A classification ``ResNet``'s stem and stages; maps from ``first_stride`` (8, 16 or 32) on, then extras."""

    def __init__(
        self, net: classification.ResNet, *, num_levels: int = 1, first_stride: int = 8, extra_width: int = 256
    ) -> None:
        super().__init__()
        if first_stride not in (8, 16, 32) or num_levels < 1:
            raise UsageError(
                f"backbone resnet: first_stride must be 8, 16 or 32 and num_levels >= 1, "
                f"got {first_stride} and {num_levels}"
            )
        # stage widths at strides 4, 8, 16, 32
        widths = [getattr(net, s)[-1].last_norm().num_features for s in net._stage_names]
        self.first = {8: 1, 16: 2, 32: 3}[first_stride]
        stages = net._stage_names[: min(len(net._stage_names), self.first + num_levels)]
        self.body = nn.ModuleDict({k: getattr(net, k) for k in net._stem_names + stages})
        self._order = list(net._stem_names + stages)
        widths = widths[: len(stages)]
        self.in_channels = net.conv1.in_channels
        self.out_channels = widths[self.first :][:num_levels]
        num_extra = max(0, num_levels - len(self.out_channels))
        self.extras = extra_stages(widths[-1], extra_width, num_extra)
        self.out_channels += [extra_width] * num_extra
        self.strides = [first_stride * 2**i for i in range(num_levels)]
        self.num_levels = num_levels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        stage = -1
        for name in self._order:
            x = self.body[name](x)
            if name.startswith("layer"):
                stage += 1  # layer1 at stride 4, layer2 at 8, ...
                if stage >= self.first:
                    out.append(x)
        for extra in self.extras:
            x = extra(x)  # (B, extra_width, H_prev / 2, W_prev / 2)
            out.append(x)
        return out[: self.num_levels]


@register_backbone("resnet18")
@forwards(ResNetBackbone, drop=("net",))
def resnet18(*, in_channels: int = 3, **kwargs) -> ResNetBackbone:
    """ResNet-18's stages (BasicBlocks, C3..C5 of 128, 256, 512 channels)."""
    return ResNetBackbone(classification.resnet18(num_classes=1, in_channels=in_channels), **kwargs)


@register_backbone("resnet34")
@forwards(ResNetBackbone, drop=("net",))
def resnet34(*, in_channels: int = 3, **kwargs) -> ResNetBackbone:
    """ResNet-34's stages (BasicBlocks, C3..C5 of 128, 256, 512 channels)."""
    return ResNetBackbone(classification.resnet34(num_classes=1, in_channels=in_channels), **kwargs)


@register_backbone("resnet50")
@forwards(ResNetBackbone, drop=("net",))
def resnet50(*, in_channels: int = 3, **kwargs) -> ResNetBackbone:
    """ResNet-50's stages (Bottlenecks, C3..C5 of 512, 1024, 2048 channels)."""
    return ResNetBackbone(classification.resnet50(num_classes=1, in_channels=in_channels), **kwargs)


@register_backbone("resnet101")
@forwards(ResNetBackbone, drop=("net",))
def resnet101(*, in_channels: int = 3, **kwargs) -> ResNetBackbone:
    """ResNet-101's stages (Bottlenecks, C3..C5 of 512, 1024, 2048 channels)."""
    return ResNetBackbone(classification.resnet101(num_classes=1, in_channels=in_channels), **kwargs)


@register_backbone("resnet152")
@forwards(ResNetBackbone, drop=("net",))
def resnet152(*, in_channels: int = 3, **kwargs) -> ResNetBackbone:
    """ResNet-152's stages (Bottlenecks, C3..C5 of 512, 1024, 2048 channels)."""
    return ResNetBackbone(classification.resnet152(num_classes=1, in_channels=in_channels), **kwargs)
