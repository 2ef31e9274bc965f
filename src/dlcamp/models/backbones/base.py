"""What every backbone is (``Backbone``), and the layers several of them share.

A backbone is an ``nn.Module`` whose ``forward(x)`` maps images (B, in_channels, H, W) to
a list of feature maps, finest first: map k is (B, out_channels[k], ~H / strides[k],
~W / strides[k]). A head built on it reads ``out_channels`` and ``strides`` instead of
knowing which network it sits on.

Legend: B batch, C channels, H, W height and width.
"""

from __future__ import annotations

import abc

import torch
import torch.nn as nn


class Backbone(nn.Module, abc.ABC):
    """Images -> feature maps at ``strides`` (finest first) with ``out_channels`` channels each."""

    in_channels: int
    out_channels: list[int]
    strides: list[int]

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, in_channels, H, W) -> one map per stride, finest first."""

    def cell_offsets(self) -> list[float]:
        """Where the cells of each map sit: cell i of map k is centred on input pixel ``strides[k] * i + offset``.

        Zero for networks that downsample with odd kernels padded ``k // 2`` (``tiny``, the
        ResNets): output i of such a layer is centred on input ``stride * i``. Dense heads that
        upsample and fuse maps (FCN) read it to crop each map onto the next one exactly.
        """
        return [0.0] * len(self.strides)


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias: the BatchNorm re-centres), BatchNorm, ReLU; (B, C_in, H, W) -> (B, C_out, H/s, W/s)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def extra_stages(in_channels: int, width: int, count: int) -> nn.ModuleList:
    """``count`` stride-2 ``conv_bn_relu`` stages of ``width``: coarser maps than a network has (SSD's scales)."""
    stages, channels = [], in_channels
    for _ in range(count):
        stages.append(conv_bn_relu(channels, width, 2))
        channels = width
    return nn.ModuleList(stages)
