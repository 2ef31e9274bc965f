"""Backbones for the detectors: feature maps at several strides, and an FPN on top.

A detector needs more than a classifier's last feature map: SSD predicts from several
scales at once, Faster R-CNN from one map (or, with an FPN, from several). A backbone here
is an ``nn.Module`` whose ``forward(x)`` returns a list of feature maps, finest first, and
which says what it returns: ``out_channels`` and ``strides`` (one per map).

- ``TinyBackbone``: a small conv-BN-ReLU network written for 2 CPU cores and the shapes
  world (about 45 M multiply-adds at 128x128 up to stride 16). Each stage halves the
  resolution with a strided 3x3 conv, then refines with a second 3x3 conv.
- ``ResNetBackbone``: the stages of the classification family's ResNets (``resnet18``,
  ``resnet34``, ``resnet50``), C3..C5 at strides 8, 16, 32, plus optional extra
  downsampling stages for SSD's coarse scales.
- ``FPN`` (Lin et al. 2017): a top-down pathway with lateral 1x1 connections, so the fine
  maps get the coarse maps' semantics; every output has the same width.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.errors import UsageError


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class TinyBackbone(nn.Module):
    """Stride-2 stem, then stages at strides 4, 8, 16, ...; returns the maps from ``first_stride`` on.

    ``widths[i]`` is the width of the stage at stride 2^(i+2); ``num_levels`` maps are
    returned, the first at ``first_stride`` (8 by default), each next one at twice the stride
    (stages beyond ``widths`` repeat its last width).
    """

    def __init__(self, *, in_channels: int = 3, stem_width: int = 16, widths: Sequence[int] = (32, 64, 128, 128),
                 first_stride: int = 8, num_levels: int = 1) -> None:
        super().__init__()
        if first_stride not in (4, 8, 16, 32) or num_levels < 1:
            raise UsageError(f"backbone: first_stride must be 4, 8, 16 or 32 and num_levels >= 1, "
                             f"got {first_stride} and {num_levels}")
        self.stem = conv_bn_relu(in_channels, stem_width, 2)
        first = {4: 0, 8: 1, 16: 2, 32: 3}[first_stride]
        n_stages = first + num_levels
        widths = list(widths) + [widths[-1]] * max(0, n_stages - len(widths))
        stages, c = [], stem_width
        for w in widths[:n_stages]:
            stages.append(nn.Sequential(conv_bn_relu(c, w, 2), conv_bn_relu(w, w)))
            c = w
        self.stages = nn.ModuleList(stages)
        self.first = first
        self.out_channels = list(widths[first:n_stages])
        self.strides = [first_stride * 2 ** i for i in range(num_levels)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= self.first:
                out.append(x)
        return out


class ResNetBackbone(nn.Module):
    """A classification ResNet's stem and stages; maps C3, C4, C5 (strides 8, 16, 32) and extras."""

    def __init__(self, name: str, *, num_levels: int = 1, first_stride: int = 8, extra_width: int = 256) -> None:
        super().__init__()
        from dlcamp.models import get_model

        if first_stride not in (8, 16, 32):
            raise UsageError(f"backbone {name}: first_stride must be 8, 16 or 32, got {first_stride}")
        net = get_model(name, num_classes=1)
        # stage widths at strides 4, 8, 16, 32
        widths = [getattr(net, s)[-1].last_norm().num_features for s in net._stage_names]
        level_of_stride = {8: 1, 16: 2, 32: 3}
        self.first = level_of_stride[first_stride]
        # keep the stages up to the last level used: a deeper one would be computed for nothing
        stages = net._stage_names[: min(len(net._stage_names), self.first + num_levels)]
        self.body = nn.ModuleDict({k: getattr(net, k) for k in net._stem_names + stages})
        self._order = list(net._stem_names + stages)
        widths = widths[: len(stages)]
        own = widths[self.first:]
        self.out_channels = own[:num_levels]
        extras, c = [], widths[-1]
        for _ in range(max(0, num_levels - len(own))):
            extras.append(conv_bn_relu(c, extra_width, 2))
            c = extra_width
            self.out_channels.append(extra_width)
        self.extras = nn.ModuleList(extras)
        self.strides = [first_stride * 2 ** i for i in range(num_levels)]
        self.num_levels = num_levels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        stage = -1
        for name in self._order:
            x = self.body[name](x)
            if name.startswith("layer"):
                stage += 1
                if stage >= self.first:
                    out.append(x)
        for extra in self.extras:
            x = extra(x)
            out.append(x)
        return out[: self.num_levels]


class FPN(nn.Module):
    """Feature pyramid (Lin et al. 2017): lateral 1x1 convs, top-down nearest upsampling and sum, 3x3 smoothing."""

    def __init__(self, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        for i in range(len(laterals) - 2, -1, -1):  # coarse to fine
            laterals[i] = laterals[i] + F.interpolate(laterals[i + 1], size=laterals[i].shape[-2:], mode="nearest")
        return [conv(f) for conv, f in zip(self.output, laterals)]


def build_backbone(name: str, *, num_levels: int, first_stride: int = 8, widths: Sequence[int] | None = None,
                   in_channels: int = 3) -> nn.Module:
    """``tiny`` (built here) or a classification ResNet (``resnet18``, ``resnet34``, ``resnet50``)."""
    if name == "tiny":
        kwargs = {"widths": tuple(widths)} if widths else {}
        return TinyBackbone(in_channels=in_channels, first_stride=first_stride, num_levels=num_levels, **kwargs)
    if name in ("resnet18", "resnet34", "resnet50", "resnet101"):
        if in_channels != 3:
            raise UsageError(f"backbone {name} takes 3-channel images, got in_channels={in_channels}")
        return ResNetBackbone(name, num_levels=num_levels, first_stride=first_stride)
    raise UsageError(f"unknown backbone {name!r}; choose tiny, resnet18, resnet34, resnet50 or resnet101")


class Normalize(nn.Module):
    """Images in [0, 1] -> standardised with fixed channel statistics (ImageNet's)."""

    def __init__(self, mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
