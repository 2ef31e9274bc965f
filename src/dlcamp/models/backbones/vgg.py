"""The classification family's VGG conv stacks (Simonyan & Zisserman 2015, arXiv:1409.1556) as backbones.

VGG stage k (of 5) convolves at stride 2^(k-1) and ends with a 2x2 max-pool; a map at
stride s is the last ReLU of the stage at that stride, before its pool (SSD's conv4_3 is
the stride-8 map). The convs are ``dlcamp.models.classification.vgg``'s ``make_features``
under the same ``features.N`` names, so a torchvision ImageNet VGG's state dict loads
into them (``strict=False``); only the stages up to the last map used are built. Levels
past stride 16 (SSD's coarse scales) are extra stride-2 ``conv_bn_relu`` stages of
``extra_width`` (SSD300's dilated fc6/fc7 are not reproduced).

Legend: B batch, C channels, H, W height and width.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from dlcamp.errors import UsageError
from dlcamp.models.backbones import register_backbone
from dlcamp.models.backbones.base import Backbone, extra_stages
from dlcamp.models.classification.vgg import STAGES, make_features
from dlcamp.registry import forwards


class VGGBackbone(Backbone):
    """VGG configuration ``config`` (A, B, D, E); maps from ``first_stride`` (1..16) on, then extras."""

    def __init__(
        self,
        config: str = "D",
        *,
        norm_layer: Callable[..., nn.Module] | None = None,
        num_levels: int = 1,
        first_stride: int = 8,
        in_channels: int = 3,
        extra_width: int = 256,
    ) -> None:
        super().__init__()
        if config not in STAGES:
            raise UsageError(f"backbone vgg: config must be one of {', '.join(STAGES)}, got {config!r}")
        if first_stride not in (1, 2, 4, 8, 16) or num_levels < 1:
            raise UsageError(
                f"backbone vgg: first_stride must be 1, 2, 4, 8 or 16 and num_levels >= 1, "
                f"got {first_stride} and {num_levels}"
            )
        first = int(math.log2(first_stride))  # the stage (from 0) at that stride
        used = STAGES[config][: min(len(STAGES[config]), first + num_levels)]
        features, _ = make_features(used, in_channels=in_channels, norm_layer=norm_layer)
        self.features = features[:-1]  # the last stage's pool leads to no map
        # index in ``features`` of each used stage's last ReLU: the map at that stage's stride
        relus = [i for i, m in enumerate(self.features) if isinstance(m, nn.ReLU)]
        ends, count = [], 0
        for widths in used:
            count += len(widths)
            ends.append(relus[count - 1])
        self._taps = ends[first:]
        self.in_channels = in_channels
        self.out_channels = [widths[-1] for widths in used[first:]]
        num_extra = num_levels - len(self.out_channels)
        self.extras = extra_stages(self.out_channels[-1], extra_width, num_extra)
        self.out_channels += [extra_width] * num_extra
        self.strides = [first_stride * 2**i for i in range(num_levels)]
        for m in self.features.modules():  # the classification VGG's init (He, fan_out; zero bias)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def cell_offsets(self) -> list[float]:
        """A 2x2 pool's output i covers inputs 2i and 2i + 1: cells at stride s sit at s * i + (s - 1) / 2.

        The extras (stride-2, 3x3 convs padded 1) keep the offset of the map they start from.
        """
        last = (self.strides[0] * 2 ** (len(self.out_channels) - len(self.extras) - 1) - 1) / 2
        return [min((s - 1) / 2, last) for s in self.strides]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                out.append(x)  # (B, C_k, H / 2^k, W / 2^k)
        for extra in self.extras:
            x = extra(x)  # (B, extra_width, H_prev / 2, W_prev / 2)
            out.append(x)
        return out


@register_backbone("vgg11")
@forwards(VGGBackbone, drop=("config", "norm_layer"))
def vgg11(**kwargs) -> VGGBackbone:
    """VGG-11's conv stacks (configuration A)."""
    return VGGBackbone("A", **kwargs)


@register_backbone("vgg11_bn")
@forwards(VGGBackbone, drop=("config",))
def vgg11_bn(*, norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d, **kwargs) -> VGGBackbone:
    """VGG-11's conv stacks (configuration A) with batch norm after every conv."""
    return VGGBackbone("A", norm_layer=norm_layer, **kwargs)


@register_backbone("vgg13")
@forwards(VGGBackbone, drop=("config", "norm_layer"))
def vgg13(**kwargs) -> VGGBackbone:
    """VGG-13's conv stacks (configuration B)."""
    return VGGBackbone("B", **kwargs)


@register_backbone("vgg13_bn")
@forwards(VGGBackbone, drop=("config",))
def vgg13_bn(*, norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d, **kwargs) -> VGGBackbone:
    """VGG-13's conv stacks (configuration B) with batch norm after every conv."""
    return VGGBackbone("B", norm_layer=norm_layer, **kwargs)


@register_backbone("vgg16")
@forwards(VGGBackbone, drop=("config", "norm_layer"))
def vgg16(**kwargs) -> VGGBackbone:
    """VGG-16's conv stacks (configuration D), SSD's original backbone."""
    return VGGBackbone("D", **kwargs)


@register_backbone("vgg16_bn")
@forwards(VGGBackbone, drop=("config",))
def vgg16_bn(*, norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d, **kwargs) -> VGGBackbone:
    """VGG-16's conv stacks (configuration D) with batch norm after every conv."""
    return VGGBackbone("D", norm_layer=norm_layer, **kwargs)


@register_backbone("vgg19")
@forwards(VGGBackbone, drop=("config", "norm_layer"))
def vgg19(**kwargs) -> VGGBackbone:
    """VGG-19's conv stacks (configuration E)."""
    return VGGBackbone("E", **kwargs)


@register_backbone("vgg19_bn")
@forwards(VGGBackbone, drop=("config",))
def vgg19_bn(*, norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d, **kwargs) -> VGGBackbone:
    """VGG-19's conv stacks (configuration E) with batch norm after every conv."""
    return VGGBackbone("E", norm_layer=norm_layer, **kwargs)
