"""Feature Pyramid Networks (Lin et al., "Feature Pyramid Networks for Object Detection", 2017, arXiv:1612.03144).

A backbone's fine maps are precise about where but weak about what; its coarse maps the
other way round. The FPN gives every level both: a 1x1 lateral conv brings each map to
one width, a top-down pathway adds each coarser result (upsampled, nearest) to the next
finer one, and a 3x3 conv smooths each sum (and the aliasing of the upsampling). All
outputs have the same width, so one head can be shared by every level.

Legend: B batch, C channels, H, W height and width.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.models.backbones.base import Backbone


class FPN(nn.Module):
    """Lateral 1x1 convs, top-down nearest upsampling and sum, 3x3 smoothing; every map -> ``out_channels``."""

    def __init__(self, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]  # each (B, out_channels, H_k, W_k)
        for i in range(len(laterals) - 2, -1, -1):  # coarse to fine
            laterals[i] = laterals[i] + F.interpolate(laterals[i + 1], size=laterals[i].shape[-2:], mode="nearest")
        return [conv(f) for conv, f in zip(self.output, laterals)]


class FeatureBody(Backbone):
    """A backbone with an FPN on top: a backbone itself, every map ``fpn``'s width."""

    def __init__(self, backbone: Backbone, fpn: FPN) -> None:
        super().__init__()
        self.backbone, self.fpn = backbone, fpn
        self.in_channels = backbone.in_channels
        self.out_channels = [fpn.output[0].out_channels] * len(backbone.out_channels)
        self.strides = list(backbone.strides)

    def cell_offsets(self) -> list[float]:
        return self.backbone.cell_offsets()  # laterals and 3x3 smoothing keep each map's grid

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.fpn(self.backbone(x))
