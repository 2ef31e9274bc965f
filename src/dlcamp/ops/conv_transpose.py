"""Transposed convolution ("deconvolution") written out two ways, and the bilinear kernel.

Papers: Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016,
arXiv:1603.07285 (the arithmetic below, chapter 4); Long, Shelhamer & Darrell, "Fully
Convolutional Networks for Semantic Segmentation", CVPR 2015, arXiv:1411.4038 (upsampling
by a transposed convolution initialised to bilinear interpolation).

A convolution with stride s is a linear map y = W x, W a sparse matrix. Its *transpose*
x' = W^T y goes back to x's shape: every input pixel y[i] scatters one copy of the kernel,
scaled by y[i], at position i*s of the output, and overlapping copies add up. It is not
an inverse (W^T W is not the identity; the values do not come back, only the shape), which
is why "deconvolution" is a misnomer. Two ways to compute it, both written out here:

- zero insertion (``method="zero_insertion"``): put s - 1 zeros between neighbouring
  input pixels, pad every side by d*(k - 1) - p zeros (crop where that is negative), add
  ``output_padding`` rows and columns at the bottom and right, and run an ordinary stride-1
  convolution with the kernel flipped and its input and output channels swapped. Gathering
  with a flipped kernel over the spread-out pixels reads exactly the scattered copies that
  land on each output pixel: a transposed convolution is a convolution with more padding.
- adjoint (``method="gradient"``): W^T y is the gradient of <W x, y> with respect to x,
  so it is what autograd computes in the backward pass of ``F.conv2d``: run the
  convolution on a zero input of the output's size and ask for its input gradient with y
  as the output gradient.

Output size per axis (what both methods produce, as does ``F.conv_transpose2d``):

    H_out = (H - 1)*s - 2p + d*(k - 1) + output_padding + 1

A stride-s convolution maps s consecutive input sizes to the same output size; the
``output_padding`` (< max(s, d)) picks which one the transpose goes back to.

Bilinear kernel. Upsampling by an integer factor f with ``F.interpolate(mode="bilinear",
align_corners=False)`` puts output pixel o at input coordinate u = (o + 1/2)/f - 1/2 and
weighs input pixel i by the hat 1 - |u - i| where that is positive, which is

    1 - |o - f*i - (f - 1)/2| / f.

A transposed convolution with stride f and padding p weighs input i at output o by
w[o + p - f*i]. With w[t] = 1 - |t - c|/f the two agree when c - p = (f - 1)/2. The
smallest kernel holding the whole hat, k = 2f - f % 2, centred at c = (k - 1)/2 (c = f - 1
for odd f, c = f - 1/2 for even f), gives p = f // 2 and output size exactly f*H. This is
Caffe's "bilinear" filler and FCN's ``upsample_filt``. Near the border interpolate clamps
to the edge pixel while the transposed convolution sees zero padding, so the two differ on
the outer f // 2 rows and columns.

Shapes: B batch, C_in / C_out channels, g groups, H, W input, H_out, W_out output, kH, kW
kernel; weights are ``F.conv_transpose2d``'s [C_in, C_out/g, kH, kW].
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["bilinear_kernel", "bilinear_weight", "conv_transpose2d"]

IntPair = int | tuple[int, int]
Method = Literal["zero_insertion", "gradient"]


def as_pair(value: IntPair, name: str) -> tuple[int, int]:
    """(height, width) from an int or a pair."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def check_conv_transpose_args(
    in_channels: int,
    out_channels_per_group: int,
    stride: tuple[int, int],
    padding: tuple[int, int],
    output_padding: tuple[int, int],
    groups: int,
    dilation: tuple[int, int],
) -> None:
    """Raise ValueError, in one line, for arguments ``F.conv_transpose2d`` would refuse."""
    if groups < 1 or in_channels % groups:
        raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
    if out_channels_per_group < 1:
        raise ValueError(f"out_channels per group must be at least 1, got {out_channels_per_group}")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(output_padding) < 0:
        raise ValueError(
            f"need stride >= 1, dilation >= 1, padding >= 0 and output_padding >= 0, got stride={stride}, "
            f"dilation={dilation}, padding={padding}, output_padding={output_padding}"
        )
    for op, s, d in zip(output_padding, stride, dilation):
        # It picks one of the s sizes that a stride-s conv maps back to H (torch also allows up to d - 1).
        if op >= max(s, d):
            raise ValueError(
                f"output_padding {output_padding} must be smaller than stride {stride} or dilation {dilation} "
                "on each axis"
            )


def _output_size(size: int, kernel: int, stride: int, padding: int, output_padding: int, dilation: int) -> int:
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def _zero_insertion(
    x: Tensor,
    weight: Tensor,
    stride: tuple[int, int],
    padding: tuple[int, int],
    output_padding: tuple[int, int],
    groups: int,
    dilation: tuple[int, int],
) -> Tensor:
    batch, in_channels, height, width = x.shape
    _, out_per_group, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    spread = x.new_zeros(batch, in_channels, (height - 1) * sh + 1, (width - 1) * sw + 1)
    spread[:, :, ::sh, ::sw] = x  # s - 1 zeros between neighbours, (B, C_in, (H-1)s+1, (W-1)s+1)
    # A full convolution (every partial overlap) needs d*(k - 1) zeros per side; the
    # transposed conv's padding p removes p of them (F.pad crops where that goes negative).
    pad_h, pad_w = dh * (kh - 1) - padding[0], dw * (kw - 1) - padding[1]
    spread = F.pad(spread, (pad_w, pad_w + output_padding[1], pad_h, pad_h + output_padding[0]))
    # Scatter with w[t] is gather with w[k-1-t]: flip the kernel. Per group, the transposed
    # weight's input channels become the convolution's inputs: swap the channel axes, to (C_out, C_in/g, kH, kW).
    kernel = weight.reshape(groups, in_channels // groups, out_per_group, kh, kw)  # (g, C_in/g, C_out/g, kH, kW)
    kernel = kernel.transpose(1, 2).reshape(groups * out_per_group, in_channels // groups, kh, kw)
    return F.conv2d(spread, kernel.flip(-2, -1), dilation=dilation, groups=groups)


def _adjoint(
    x: Tensor,
    weight: Tensor,
    stride: tuple[int, int],
    padding: tuple[int, int],
    output_padding: tuple[int, int],
    groups: int,
    dilation: tuple[int, int],
) -> Tensor:
    args = (stride, padding, output_padding, groups, dilation)
    if torch.is_inference_mode_enabled():
        # Inference mode records no graph, not even under enable_grad, and autograd may not
        # save inference tensors: step out of it for this call, on plain copies.
        with torch.inference_mode(False):
            return _conv2d_input_gradient(x.clone(), weight.detach().clone(), *args, create_graph=False)
    # Keep the graph (double backward through x and weight) only where autograd is on.
    return _conv2d_input_gradient(x, weight, *args, create_graph=torch.is_grad_enabled())


def _conv2d_input_gradient(
    x: Tensor,
    weight: Tensor,
    stride: tuple[int, int],
    padding: tuple[int, int],
    output_padding: tuple[int, int],
    groups: int,
    dilation: tuple[int, int],
    *,
    create_graph: bool,
) -> Tensor:
    """The gradient of <conv2d(z, weight), x> with respect to z, z of the transposed output's size."""
    batch, _, height, width = x.shape
    _, out_per_group, kh, kw = weight.shape
    out_h = _output_size(height, kh, stride[0], padding[0], output_padding[0], dilation[0])
    out_w = _output_size(width, kw, stride[1], padding[1], output_padding[1], dilation[1])
    with torch.enable_grad():  # under no_grad too: the gradient is the computation
        probe = x.new_zeros(batch, groups * out_per_group, out_h, out_w, requires_grad=True)
        image = F.conv2d(probe, weight, stride=stride, padding=padding, dilation=dilation, groups=groups)
        # With output_padding >= stride (allowed when dilation > stride) the forward conv
        # has extra rows past x; they are not part of the transpose: their gradient is 0.
        extra_h, extra_w = image.shape[-2] - height, image.shape[-1] - width
        grad_image = F.pad(x, (0, extra_w, 0, extra_h))
        (result,) = torch.autograd.grad(image, probe, grad_outputs=grad_image, create_graph=create_graph)
    return result


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    groups: int = 1,
    dilation: IntPair = 1,
    *,
    method: Method = "zero_insertion",
) -> Tensor:
    """``F.conv_transpose2d`` written out: (B, C_out, H_out, W_out), or unbatched (C_out, H_out, W_out).

    Args:
        x: (B, C_in, H, W) or (C_in, H, W).
        weight: [C_in, C_out/g, kH, kW].
        bias: (C_out,) or None.
        stride, padding, output_padding, dilation: ints or (height, width) pairs, as in torch.
        groups: g; C_in must be divisible by it.
        method: "zero_insertion" (a stride-1 convolution of the zero-spread input) or
            "gradient" (the adjoint of ``F.conv2d``, through autograd); see the module docstring.
    """
    if method not in ("zero_insertion", "gradient"):
        raise ValueError(f"method must be 'zero_insertion' or 'gradient', got {method!r}")
    if x.dim() == 3:  # unbatched, as torch accepts
        return conv_transpose2d(
            x[None], weight, bias, stride, padding, output_padding, groups, dilation, method=method
        )[0]
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(
            f"need x (B, C_in, H, W) and weight [C_in, C_out/groups, kH, kW], got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    stride, padding = as_pair(stride, "stride"), as_pair(padding, "padding")
    output_padding, dilation = as_pair(output_padding, "output_padding"), as_pair(dilation, "dilation")
    check_conv_transpose_args(x.shape[1], weight.shape[1], stride, padding, output_padding, groups, dilation)
    if weight.shape[0] != x.shape[1]:
        raise ValueError(f"weight has {weight.shape[0]} input channels (its first axis), x has {x.shape[1]}")
    sizes = [
        _output_size(*axis) for axis in zip(x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation)
    ]
    if min(sizes) < 1:
        raise ValueError(f"padding {padding} is too large for input {tuple(x.shape[-2:])}: output would be {sizes}")
    compute = _zero_insertion if method == "zero_insertion" else _adjoint
    out = compute(x, weight, stride, padding, output_padding, groups, dilation)
    if bias is not None:
        out = out + bias[None, :, None, None]
    return out


def bilinear_kernel(factor: int, kernel_size: int | None = None) -> Tensor:
    """Tensor[k, k], k = 2f - f % 2: the separable hat (1 - |t - c|/f) on each axis, c = (k - 1)/2.

    Upsamples by ``factor`` as ``F.interpolate(mode="bilinear", align_corners=False)`` does,
    when used with stride f and padding f // 2 (derived in the module docstring).
    ``kernel_size`` k = 2f - 1 or 2f chooses where the hat is centred (on a tap, or between
    two): 2f - 1 suits maps whose cells sit on stride multiples (stride-2 3x3 convs), 2f
    maps whose cells sit mid-stride (2x2 pools); the FCN picks whichever lands on its grid.
    """
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"the upsampling factor must be a positive int, got {factor!r}")
    size = 2 * factor - factor % 2 if kernel_size is None else kernel_size
    if size not in (2 * factor - 1, 2 * factor):
        raise ValueError(f"a bilinear kernel for factor {factor} is {2 * factor - 1} or {2 * factor} wide, got {size}")
    centre = (size - 1) / 2
    taps = 1 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor  # (k,)
    return (taps[:, None] * taps[None, :]).to(torch.get_default_dtype())  # (k, k)


def bilinear_weight(channels: int, factor: int, kernel_size: int | None = None) -> Tensor:
    """Tensor[C, C, k, k] for a transposed convolution: ``bilinear_kernel`` on the channel
    diagonal and zeros off it, so that each channel is upsampled on its own."""
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    kernel = bilinear_kernel(factor, kernel_size)
    weight = torch.zeros(channels, channels, *kernel.shape)
    weight[range(channels), range(channels)] = kernel
    return weight
