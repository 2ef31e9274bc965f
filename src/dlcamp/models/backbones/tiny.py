"""``tiny``: a small conv-BN-ReLU backbone written for 2 CPU cores and the shapes world.

About 45 M multiply-adds at 128x128 up to stride 16. A stride-2 stem, then one stage per
stride (4, 8, 16, ...): each halves the resolution with a strided 3x3 conv, then refines
with a second 3x3 conv. Nothing pre-trained; He-initialised (fan_out), as the ResNets.

Legend: B batch, C channels, H, W height and width.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from dlcamp.errors import UsageError
from dlcamp.models.backbones import register_backbone
from dlcamp.models.backbones.base import Backbone, conv_bn_relu
from dlcamp.registry import forwards


class TinyBackbone(Backbone):
    """Stride-2 stem, then stages at strides 4, 8, 16, ...; returns the maps from ``first_stride`` on.

    ``widths[i]`` is the width of the stage at stride 2^(i+2); ``num_levels`` maps are
    returned, the first at ``first_stride`` (8 by default), each next one at twice the stride
    (stages beyond ``widths`` repeat its last width).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        stem_width: int = 16,
        widths: Sequence[int] = (32, 64, 128, 128),
        first_stride: int = 8,
        num_levels: int = 1,
    ) -> None:
        super().__init__()
        if first_stride not in (4, 8, 16, 32) or num_levels < 1:
            raise UsageError(
                f"backbone tiny: first_stride must be 4, 8, 16 or 32 and num_levels >= 1, "
                f"got {first_stride} and {num_levels}"
            )
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
        self.in_channels = in_channels
        self.out_channels = list(widths[first:n_stages])
        self.strides = [first_stride * 2**i for i in range(num_levels)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (B, stem_width, H/2, W/2)
        out = []
        for i, stage in enumerate(self.stages):
            x = stage(x)  # (B, widths[i], H / 2^(i+2), W / 2^(i+2))
            if i >= self.first:
                out.append(x)
        return out


@register_backbone("tiny")
@forwards(TinyBackbone)
def tiny(**kwargs) -> TinyBackbone:
    """Small conv-BN-ReLU backbone for CPUs (~45 M multiply-adds at 128x128), maps from stride 8 on."""
    return TinyBackbone(**kwargs)
