"""A small digits classifier whose penultimate layer measures generated samples.

Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium" (NeurIPS 2017, arXiv:1706.08500) compare generated and real images in the
features of a network trained to classify real images: Inception v3's 2048-d pool for
ImageNet-like pictures. For 8x8 handwritten digits Inception is the wrong eye (and its
weights cannot be downloaded here), so sample metrics on digits (FID, KID, precision and
recall in ``dlcamp.metrics.samples``) use this network instead: three conv stages
(32-64-128 channels, batch norm, ReLU, 2x2 max-pool), a global average pool, a 64-d
embedding (Linear + ReLU, like Inception's non-negative pool features) and a linear
classifier. Trained by ``dlcamp bench digit-features`` (recipe ``digit-features-digits32``),
its weights ship with the package (``dlcamp.metrics.features.load_digit_features``).

Any input size is accepted: the network first resizes to 32x32 with bilinear interpolation
(``align_corners=False``, no antialiasing). The training data (``digits32``) are the 8x8
digits upsampled the same way (antialiasing only changes downsampling), so an 8x8 image
and its 32x32 version give the same features up to rounding.

Legend: B batch, H, W input height and width, E embedding (64), K classes.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.models import register_model
from dlcamp.models.classification._common import check_input_shape

SIZE = 32  # the side every input is resized to
WIDTHS = (32, 64, 128)  # conv channels per stage; each stage halves the side: 32 -> 16 -> 8 -> 4


class Resize(nn.Module):
    """(B, C, H, W) -> (B, C, size, size), bilinear, no antialiasing; the identity at that size."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=False)


class DigitFeatures(nn.Module):
    """Resize -> [conv3x3 -> BN -> ReLU -> maxpool] x 3 -> global pool -> Linear -> ReLU (embedding) -> Linear.

    ``features`` (also ``forward_features``): (B, 1, H, W) in [0, 1] -> (B, E);
    ``forward_head``: (B, E) -> (B, K).
    """

    def __init__(self, *, num_classes: int = 10, embedding: int = 64, widths: Sequence[int] = WIDTHS) -> None:
        super().__init__()
        layers: list[nn.Module] = [Resize(SIZE)]
        channels = 1
        for width in widths:
            # No conv bias: the batch norm after it re-centres.
            layers += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = width
        layers += [
            nn.AdaptiveAvgPool2d(1),  # (B, widths[-1], 1, 1)
            nn.Flatten(),  # (B, widths[-1])
            nn.Linear(channels, embedding),
            nn.ReLU(inplace=True),  # (B, E)
        ]
        self.features = nn.Sequential(*layers)
        self.num_features = embedding  # torchmetrics' FID reads it to size its statistics
        self.head = nn.Linear(embedding, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 1, H, W) -> (B, E)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # (B, E) -> (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("digit_features")
def digit_features(*, num_classes: int = 10, input_shape: Sequence[int] = (1, SIZE, SIZE)) -> DigitFeatures:
    """Small digits CNN (32-64-128 convs, 64-d embedding) whose features measure generated digits (FID, KID)."""
    # Only the channel count matters: any H, W is resized to 32x32 inside.
    check_input_shape("digit_features", input_shape, 1)
    return DigitFeatures(num_classes=num_classes)
