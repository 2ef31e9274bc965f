"""AlexNet: the deep convolutional network that won ImageNet 2012.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012 (no arXiv id).

Claims: (1) ReLU, max(0, x), instead of tanh or sigmoid: it does not saturate for positive
inputs, so gradients do not vanish and a 4-layer net reached 25% CIFAR-10 error six times
faster than with tanh; (2) dropout (p = 0.5) in the two 4096-wide fully connected layers,
which hold almost all of the 61M weights and overfit without it; (3) overlapping 3x3/2
max-pooling, data augmentation and training on two GPUs. Five convolutions (11x11/4,
5x5, 3x3, 3x3, 3x3) extract features, three fully connected layers classify.

``alexnet`` is torchvision's single-GPU version (64/192/384/256/256 channels, no local
response normalisation), with its layer names and order: torchvision's state dicts load
with ``strict=True``. It needs inputs of at least 63x63 (three 3x3/2 pools after a stride-4
conv); the adaptive pool makes the head size-independent. ``alexnet_small`` is for 32x32
images: 3x3 convs at stride 1 instead of 11x11/4 and 5x5, 2x2 pools after the first, second
and fifth conv (32 -> 16 -> 8 -> 4), and a narrower head (``hidden`` = 1024 instead of 4096).

Legend: B batch, C channels, H, W height and width, K classes.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from dlcamp import nn as dnn
from dlcamp.models import register_model
from dlcamp.models.classification._common import check_input_shape


class AlexNet(nn.Module):
    """Conv features, adaptive average pool to ``pool_size`` squared, dropout-Linear-ReLU x2, Linear.

    ``forward_features``: (B, C_in, H, W) -> (B, num_features, h, w): (B, 256, 6, 6) for the
    ImageNet net on 224x224 images, (B, 256, 4, 4) for the small one on 32x32.
    """

    def __init__(
        self,
        features: nn.Sequential,
        num_features: int,
        *,
        num_classes: int = 1000,
        pool_size: int = 6,
        hidden: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = features
        self.num_features = num_features
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            dnn.Dropout(dropout),
            nn.Linear(num_features * pool_size * pool_size, hidden),
            nn.ReLU(inplace=True),
            dnn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        # Initialisation: PyTorch's layer defaults, as torchvision. The paper's N(0, 0.01)
        # weights with biases of 1 (to start the ReLUs in their active region) need its
        # exact learning-rate schedule to get going.

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, num_features, h, w)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        pooled = self.avgpool(features).flatten(1)  # (B, num_features * pool_size^2)
        return self.classifier(pooled)  # (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("alexnet")
def alexnet(*, num_classes: int = 1000, in_channels: int = 3, hidden: int = 4096, dropout: float = 0.5) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012), torchvision's one-GPU layout; 61.1M params, inputs >= 63x63."""
    features = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),  # (B, 64, 55, 55) on 224x224
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # overlapping pooling: (B, 64, 27, 27)
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 192, 13, 13)
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 256, 6, 6)
    )
    return AlexNet(features, 256, num_classes=num_classes, pool_size=6, hidden=hidden, dropout=dropout)


@register_model("alexnet_small")
def alexnet_small(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
    hidden: int = 1024,
    dropout: float = 0.5,
) -> AlexNet:
    """AlexNet for 32x32 images: 3x3 convs, three 2x2 pools (32 -> 4), a 1024-wide head; 7.5M params."""
    check_input_shape("alexnet_small", input_shape, in_channels)
    if min(input_shape[1:]) < 8:
        raise ValueError(f"alexnet_small halves the image 3 times and needs at least 8x8, got {tuple(input_shape)}")
    features = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=3, padding=1),  # (B, 64, 32, 32)
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2),  # (B, 64, 16, 16)
        nn.Conv2d(64, 192, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2),  # (B, 192, 8, 8)
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2),  # (B, 256, 4, 4)
    )
    model = AlexNet(features, 256, num_classes=num_classes, pool_size=4, hidden=hidden, dropout=dropout)
    # PyTorch's default init scales each layer's output variance down by about 3 through a
    # ReLU; eight layers with no normalisation then start almost silent and SGD never gets
    # going (measured: chance accuracy after 15 epochs on digits32). He et al. 2015's init
    # (arXiv:1502.01852) keeps the variance through ReLUs.
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return model
