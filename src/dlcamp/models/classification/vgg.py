"""VGG: depth from stacks of small 3x3 convolutions.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015, arXiv:1409.1556.

Claim: a stack of three 3x3 convs sees a 7x7 window (two see 5x5), like one big conv, but
with three ReLUs instead of one (a more discriminative function) and fewer weights:
3 * (3*3*C*C) = 27 C^2 against 7*7*C*C = 49 C^2 (18 C^2 against 25 C^2 for 5x5). So the
whole network uses only 3x3 convs (stride 1, padding 1: the size is kept) and 2x2 max-
pools (the size halves, and the next stage doubles the channels, up to 512). Depth is the
only knob: configurations A (11 weighted layers), B (13), D (16) and E (19). The ``_bn``
variants add batch norm after every conv (Ioffe & Szegedy 2015, not in the paper).

ImageNet builders (``vgg11`` ... ``vgg19_bn``) follow torchvision's layer order and names
(``features.N``, ``classifier.N``): its state dicts load with ``strict=True``. The adaptive
average pool before the classifier lets any input of at least 32x32 through (torchvision
does the same). ``vgg11_small`` and ``vgg16_small`` are for 32x32 images: the same conv
stacks (with batch norm by default), then global average pooling over the 1x1 map and a
512-wide classifier instead of 7x7x512 -> 4096 -> 4096, which holds 90% of VGG-16's
weights for an ImageNet-sized head.

Legend: B batch, C channels, H, W height and width, K classes.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from dlcamp import nn as dnn
from dlcamp.models import register_model
from dlcamp.models.classification._common import check_input_shape

NormLayer = Callable[..., nn.Module]

# Conv widths per stage; each stage ends with a 2x2 max-pool (the paper's Table 1).
STAGES: dict[str, tuple[tuple[int, ...], ...]] = {
    "A": ((64,), (128,), (256, 256), (512, 512), (512, 512)),  # VGG-11
    "B": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),  # VGG-13
    "D": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),  # VGG-16
    "E": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),  # VGG-19
}


def make_features(
    stages: Sequence[Sequence[int]],
    *,
    in_channels: int = 3,
    norm_layer: NormLayer | None = None,
    width_mult: float = 1.0,
) -> tuple[nn.Sequential, int]:
    """Conv (-> norm) -> ReLU per width, a 2x2 max-pool per stage; returns the stack and its out channels.

    (B, C_in, H, W) -> (B, C_out, H / 2^stages, W / 2^stages).
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for widths in stages:
        for width in widths:
            width = max(1, round(width * width_mult))
            # The conv keeps its bias even with a norm after it: torchvision's layout (and weights).
            layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1))
            if norm_layer is not None:
                layers.append(norm_layer(width))
            layers.append(nn.ReLU(inplace=True))
            channels = width
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers), channels


class VGG(nn.Module):
    """Conv stacks, adaptive average pool to ``pool_size`` squared, then a 3-layer MLP with dropout.

    ``forward_features``: (B, C_in, H, W) -> (B, num_features, H/32, W/32), before the pool.
    """

    def __init__(
        self,
        features: nn.Sequential,
        num_features: int,
        *,
        num_classes: int = 1000,
        pool_size: int = 7,
        hidden: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = features
        self.num_features = num_features
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Linear(num_features * pool_size * pool_size, hidden),
            nn.ReLU(inplace=True),
            dnn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            dnn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # Torchvision's scheme (the paper pre-trained the shallow net A and copied its layers
        # into the deeper ones; He-init, found later, makes that unnecessary).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, num_features, H/32, W/32)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        pooled = self.avgpool(features).flatten(1)  # (B, num_features * pool_size^2)
        return self.classifier(pooled)  # (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# -- ImageNet builders (torchvision-compatible) ------------------------------------------


def _vgg(
    config: str, *, num_classes: int, in_channels: int, norm_layer: NormLayer | None, hidden: int, dropout: float
) -> VGG:
    features, channels = make_features(STAGES[config], in_channels=in_channels, norm_layer=norm_layer)
    return VGG(features, channels, num_classes=num_classes, hidden=hidden, dropout=dropout)


@register_model("vgg11")
def vgg11(*, num_classes: int = 1000, in_channels: int = 3, hidden: int = 4096, dropout: float = 0.5) -> VGG:
    """VGG-11 (config A, Simonyan & Zisserman 2015), torchvision-compatible; 132.9M params."""
    return _vgg("A", num_classes=num_classes, in_channels=in_channels, norm_layer=None, hidden=hidden, dropout=dropout)


@register_model("vgg13")
def vgg13(*, num_classes: int = 1000, in_channels: int = 3, hidden: int = 4096, dropout: float = 0.5) -> VGG:
    """VGG-13 (config B, Simonyan & Zisserman 2015), torchvision-compatible; 133.0M params."""
    return _vgg("B", num_classes=num_classes, in_channels=in_channels, norm_layer=None, hidden=hidden, dropout=dropout)


@register_model("vgg16")
def vgg16(*, num_classes: int = 1000, in_channels: int = 3, hidden: int = 4096, dropout: float = 0.5) -> VGG:
    """VGG-16 (config D, Simonyan & Zisserman 2015), torchvision-compatible; 138.4M params."""
    return _vgg("D", num_classes=num_classes, in_channels=in_channels, norm_layer=None, hidden=hidden, dropout=dropout)


@register_model("vgg19")
def vgg19(*, num_classes: int = 1000, in_channels: int = 3, hidden: int = 4096, dropout: float = 0.5) -> VGG:
    """VGG-19 (config E, Simonyan & Zisserman 2015), torchvision-compatible; 143.7M params."""
    return _vgg("E", num_classes=num_classes, in_channels=in_channels, norm_layer=None, hidden=hidden, dropout=dropout)


@register_model("vgg11_bn")
def vgg11_bn(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    hidden: int = 4096,
    dropout: float = 0.5,
) -> VGG:
    """VGG-11 with batch norm after every conv, torchvision-compatible; 132.9M params."""
    return _vgg(
        "A", num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer, hidden=hidden, dropout=dropout
    )


@register_model("vgg13_bn")
def vgg13_bn(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    hidden: int = 4096,
    dropout: float = 0.5,
) -> VGG:
    """VGG-13 with batch norm after every conv, torchvision-compatible; 133.1M params."""
    return _vgg(
        "B", num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer, hidden=hidden, dropout=dropout
    )


@register_model("vgg16_bn")
def vgg16_bn(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    hidden: int = 4096,
    dropout: float = 0.5,
) -> VGG:
    """VGG-16 with batch norm after every conv, torchvision-compatible; 138.4M params."""
    return _vgg(
        "D", num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer, hidden=hidden, dropout=dropout
    )


@register_model("vgg19_bn")
def vgg19_bn(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    hidden: int = 4096,
    dropout: float = 0.5,
) -> VGG:
    """VGG-19 with batch norm after every conv, torchvision-compatible; 143.7M params."""
    return _vgg(
        "E", num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer, hidden=hidden, dropout=dropout
    )


# -- 32x32 builders ----------------------------------------------------------------------


def small_vgg(
    config: str,
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
    width_mult: float = 1.0,
    hidden: int = 512,
    norm_layer: NormLayer | None = nn.BatchNorm2d,
    dropout: float = 0.5,
) -> VGG:
    """A VGG conv stack for 32x32 images: 5 pools leave a 1x1 map, globally pooled, then a ``hidden``-wide MLP.

    ``forward_features``: (B, C_in, 32, 32) -> (B, 512 * width_mult, 1, 1).
    """
    check_input_shape("vgg small", input_shape, in_channels)
    if min(input_shape[1:]) < 32:
        raise ValueError(f"vgg small halves the image 5 times and needs at least 32x32, got {tuple(input_shape)}")
    features, channels = make_features(
        STAGES[config], in_channels=in_channels, norm_layer=norm_layer, width_mult=width_mult
    )
    return VGG(features, channels, num_classes=num_classes, pool_size=1, hidden=hidden, dropout=dropout)


@register_model("vgg11_small")
def vgg11_small(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
    width_mult: float = 1.0,
    hidden: int = 512,
    norm_layer: NormLayer | None = nn.BatchNorm2d,
    dropout: float = 0.5,
) -> VGG:
    """VGG-11 (config A) with batch norm for 32x32 images: global pool and a 512-wide head; 9.8M params."""
    return small_vgg(
        "A",
        in_channels=in_channels,
        num_classes=num_classes,
        input_shape=input_shape,
        width_mult=width_mult,
        hidden=hidden,
        norm_layer=norm_layer,
        dropout=dropout,
    )


@register_model("vgg16_small")
def vgg16_small(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
    width_mult: float = 1.0,
    hidden: int = 512,
    norm_layer: NormLayer | None = nn.BatchNorm2d,
    dropout: float = 0.5,
) -> VGG:
    """VGG-16 (config D) with batch norm for 32x32 images: global pool and a 512-wide head; 15.3M params."""
    return small_vgg(
        "D",
        in_channels=in_channels,
        num_classes=num_classes,
        input_shape=input_shape,
        width_mult=width_mult,
        hidden=hidden,
        norm_layer=norm_layer,
        dropout=dropout,
    )
