"""Transposed convolution as a layer, and FCN's bilinear upsampling layer.

Papers: Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016,
arXiv:1603.07285; Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015, arXiv:1411.4038.

A segmentation network downsamples to see context and must upsample back to label every
pixel. FCN upsamples with transposed convolutions of stride f ("deconvolution" layers)
initialised to bilinear interpolation: training may then learn a better upsampling, or,
for its last layer, keep it frozen. ``dlcamp.ops.conv_transpose`` writes the operation out
and derives the bilinear kernel and its padding; this file wraps them as modules.

``ConvTranspose2d`` keeps the constructor, parameter names and shapes, attributes and
default initialisation of ``torch.nn.ConvTranspose2d``, so state dicts move both ways.
``method="native"`` runs ``F.conv_transpose2d`` (the fast path, used in training, as
``MultiheadAttention`` keeps PyTorch's fused attention); "zero_insertion" and "gradient"
run the written-out forms, to check them or to look inside.

Shapes: B batch, C_in / C_out channels, g groups, H, W input, H_out, W_out output (see
``dlcamp.ops.conv_transpose`` for H_out), kH, kW kernel.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcamp.ops.conv_transpose import (
    IntPair,
    as_pair,
    bilinear_weight,
    check_conv_transpose_args,
    conv_transpose2d,
)

__all__ = ["ConvTranspose2d", "bilinear_upsampling"]

METHODS = ("native", "zero_insertion", "gradient")


class ConvTranspose2d(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H_out, W_out); weight [C_in, C_out/g, kH, kW], bias (C_out,)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        output_padding: IntPair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntPair = 1,
        *,
        method: Literal["native", "zero_insertion", "gradient"] = "native",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if groups < 1 or out_channels % groups:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.stride, self.padding = as_pair(stride, "stride"), as_pair(padding, "padding")
        self.output_padding, self.dilation = as_pair(output_padding, "output_padding"), as_pair(dilation, "dilation")
        check_conv_transpose_args(
            in_channels, out_channels // groups, self.stride, self.padding, self.output_padding, groups, self.dilation
        )
        self.method = method
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels // groups, *self.kernel_size, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch's default, kept for state-dict and seed parity: U(-1/sqrt(fan), 1/sqrt(fan))
        # for weight and bias (kaiming_uniform_ with a=sqrt(5) is that bound). torch takes the
        # fan from the weight's second axis, which for a transposed conv is C_out/g * kH * kW.
        fan = self.weight.shape[1] * math.prod(self.kernel_size)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(fan) if fan > 0 else 0.0
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        args = (self.stride, self.padding, self.output_padding, self.groups, self.dilation)
        if self.method == "native":
            return F.conv_transpose2d(x, self.weight, self.bias, *args)
        return conv_transpose2d(x, self.weight, self.bias, *args, method=self.method)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        for name, default in (("padding", (0, 0)), ("output_padding", (0, 0)), ("dilation", (1, 1))):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.method != "native":
            s += f", method={self.method}"
        return s


def bilinear_upsampling(
    channels: int,
    factor: int,
    *,
    bias: bool = False,
    padding: int | None = None,
    trainable: bool = True,
    kernel_size: int | None = None,
) -> ConvTranspose2d:
    """FCN's upsampling layer: stride ``factor``, kernel k = 2f - f % 2, bilinear weights.

    With ``padding=None`` (f // 2) the output is (B, C, f*H, f*W) and equals
    ``F.interpolate(x, scale_factor=f, mode="bilinear", align_corners=False)`` except on the
    outer f // 2 rows and columns (interpolate clamps to the edge pixel there; the transposed
    convolution sees zeros), so no crop is needed. Any other ``padding`` q gives
    f*H + 2(f // 2 - q) rows, the same map with f // 2 - q extra rows on each side: crop
    that many to get back the f*H grid. ``kernel_size`` 2f - 1 or 2f chooses where the
    hat is centred (``dlcamp.ops.bilinear_kernel``). ``bias`` starts at zero.

    A trainable layer has a full C x C kernel, channel-diagonal at first (it may learn to mix
    channels). ``trainable=False`` (FCN's last upsampling) is one kernel per channel
    (``groups=C``, 1/C of the work) kept as a buffer, not a parameter: no optimizer and no
    ``requires_grad_(True)`` (a training phase unfreezing the model) can make it learn.
    """
    weight = bilinear_weight(channels, factor, kernel_size)  # (C, C, k, k); checks channels and factor
    k = weight.shape[-1]
    layer = ConvTranspose2d(
        channels,
        channels,
        k,
        stride=factor,
        padding=factor // 2 if padding is None else padding,
        groups=1 if trainable else channels,
        bias=bias,
    )
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias.zero_()
    if trainable:
        with torch.no_grad():
            layer.weight.copy_(weight)
        return layer
    del layer.weight  # a constant of the layer, saved in its state dict under the same name
    layer.register_buffer("weight", weight[0, :1].expand(channels, 1, k, k).clone())
    if layer.bias is not None:
        bias_value = layer.bias.detach().clone()
        del layer.bias
        layer.register_buffer("bias", bias_value)
    return layer
