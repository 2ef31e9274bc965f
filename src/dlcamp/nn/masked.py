"""Masked convolutions: a convolution that sees only the pixels before the centre.

PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks",
ICML 2016, section 3.4) makes a convolution autoregressive by zeroing the kernel weights
that would read pixels at or after the current one in raster order (row by row, left to
right):

- mask **A** (first layer) hides the centre too: output (i, j) depends on pixels strictly
  before (i, j). Applied to the image, it keeps pixel x_ij from predicting itself.
- mask **B** (later layers) lets the centre through: a feature at (i, j) already depends
  only on pixels before (i, j), so reading it keeps the property.

With several colour channels the paper also orders the channels (R before G before B);
the images of this curriculum's likelihood week are single-channel binary, so the mask
here is spatial only and applies to every (input channel, output channel) pair.

Kernels of any shape are accepted (7×7, 3×3, and 1×k rows for the Row LSTM's
input-to-state convolution); the centre is at (kh // 2, kw // 2), so kernels must be odd.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F


def raster_mask(kernel_size: tuple[int, int], mask_type: Literal["A", "B"]) -> torch.Tensor:
    """Float Tensor[kh, kw]: 1 where the kernel may read (rows above; the centre row left of
    the centre; the centre itself for type B), 0 elsewhere."""
    kh, kw = kernel_size
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"masked convolutions need odd kernel sizes, got {kernel_size}")
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    mask = torch.zeros(kh, kw)
    mask[: kh // 2] = 1
    mask[kh // 2, : kw // 2 + (mask_type == "B")] = 1
    return mask


class MaskedConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose kernel is multiplied by a raster-order mask at every forward.

    The weights under the mask stay in the state dict (and at zero gradient), so the
    module loads into and out of a plain ``nn.Conv2d`` with the same keys. Padding
    defaults to "same" so that output (i, j) sits on input (i, j).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: Literal["A", "B"],
        *,
        bias: bool = True,
    ) -> None:
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        self.mask_type = mask_type
        self.register_buffer("mask", raster_mask((kh, kw), mask_type), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mask_type={self.mask_type}"


__all__ = ["MaskedConv2d", "raster_mask"]
