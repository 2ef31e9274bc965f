"""PixelCNN: the chain rule over pixels computed by masked convolutions.

van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016
(section 3.4, "PixelCNN"); residual blocks as in its figure 5.

A 7×7 convolution with mask A reads only the pixels strictly before each position; the
layers after it use mask B (the centre is allowed, because the features there already
depend only on earlier pixels). Stacking masked convolutions keeps every output pixel's
logit a function of x_<i, so a single forward pass gives all D conditionals at once:
training is parallel over pixels, sampling is one pass per pixel.

The stack's receptive field is a growing window above and to the left of each pixel with
a "blind spot" to the upper right (the Gated PixelCNN, van den Oord et al. 2016b, removes
it with separate vertical and horizontal stacks); the model is still an exact density.

Legend: B batch, h hidden features (a residual block runs 2h -> h -> h -> 2h).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from dlcamp.models import register_model
from dlcamp.models.generative.base import BinaryAutoregressive
from dlcamp.nn import MaskedConv2d


class ResidualBlock(nn.Module):
    """ReLU -> 1×1 (2h -> h) -> ReLU -> k×k mask B (h -> h) -> ReLU -> 1×1 (h -> 2h), plus the input."""

    def __init__(self, h: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(2 * h, h, 1),  # a 1×1 kernel's mask B is all ones
            nn.ReLU(),
            MaskedConv2d(h, h, kernel_size, "B"),
            nn.ReLU(),
            nn.Conv2d(h, 2 * h, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def output_head(channels: int, hidden: int) -> nn.Sequential:
    """ReLU -> 1×1 -> ReLU -> 1×1 to one logit per pixel (PixelCNN's and PixelRNN's output stack)."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1))


class PixelCNN(BinaryAutoregressive):
    def __init__(
        self,
        input_shape: Sequence[int],
        hidden: int = 32,
        blocks: int = 7,
        first_kernel: int = 7,
        kernel_size: int = 3,
        head_hidden: int = 64,
    ) -> None:
        super().__init__(input_shape)
        if hidden < 1 or blocks < 0 or head_hidden < 1:
            raise ValueError(
                f"hidden and head_hidden must be >= 1 and blocks >= 0, got {hidden}, {head_hidden}, {blocks}"
            )
        self.first = MaskedConv2d(self.input_shape[0], 2 * hidden, first_kernel, "A")
        self.blocks = nn.Sequential(*[ResidualBlock(hidden, kernel_size) for _ in range(blocks)])
        self.head = output_head(2 * hidden, head_hidden)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.first(x)))  # (B, 1, H, W)


@register_model("pixelcnn")
def pixelcnn(
    *,
    input_shape: Sequence[int] = (1, 8, 8),
    hidden: int = 32,
    blocks: int = 7,
    first_kernel: int = 7,
    kernel_size: int = 3,
    head_hidden: int = 64,
) -> PixelCNN:
    """PixelCNN (van den Oord et al. 2016): 7×7 mask-A conv, residual mask-B blocks, Bernoulli pixels."""
    return PixelCNN(input_shape, hidden, blocks, first_kernel, kernel_size, head_hidden)
