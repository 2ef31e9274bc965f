"""DenseNet: every layer sees the feature maps of all layers before it.

Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017, arXiv:1608.06993.

Claim: inside a dense block, layer l receives the *concatenation* of the block input and
the outputs of layers 1..l-1 (ResNet adds, DenseNet concatenates), and adds only k new
channels (the growth rate, k = 12 to 48). Features are reused instead of re-learned, so
the network is narrow and parameter-efficient, and every layer has a short path to the
loss. Each layer is BN -> ReLU -> 1x1 conv to ``bn_size * k`` channels (the bottleneck,
"B") -> BN -> ReLU -> 3x3 conv to k channels. Between blocks, a transition layer
(BN -> ReLU -> 1x1 conv -> 2x2 average pool) halves the resolution and multiplies the
channels by the compression factor theta = 0.5 ("C"). With both, the paper calls it
DenseNet-BC.

A block of L layers on C_0 input channels outputs C_0 + L*k channels.

``densenet121`` ... ``densenet201`` use torchvision's names and order (``features.conv0``,
``features.denseblock1.denselayer1.norm1``, ``features.transition1.conv``, ``features.norm5``,
``classifier``); torchvision's state dicts load with ``strict=True`` (its *published* weight
files use an older key spelling, ``norm.1``, which ``weights.load_torchvision_weights``
renames). ``densenet_bc_100_k12`` is the paper's CIFAR net: a 3x3 conv to 2k = 24 channels,
three dense blocks of 16 bottleneck layers ((100 - 4) / 6), transitions with theta = 0.5.

Legend: B batch, C channels, H, W height and width, K classes, k growth rate.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import torch
import torch.nn as nn

from dlcamp import nn as dnn
from dlcamp.models import register_model
from dlcamp.models.classification._common import check_input_shape

NormLayer = Callable[..., nn.Module]


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bn_size*k) -> BN-ReLU-3x3 conv (k): list of (B, C_i, H, W) -> (B, k, H, W)."""

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bn_size: int,
        *,
        drop_rate: float = 0.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        bottleneck = bn_size * growth_rate
        self.norm1 = norm_layer(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bottleneck, kernel_size=1, bias=False)
        self.norm2 = norm_layer(bottleneck)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bottleneck, growth_rate, kernel_size=3, padding=1, bias=False)
        self.dropout = dnn.Dropout(drop_rate)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, dim=1)  # (B, sum C_i, H, W): everything before this layer
        x = self.conv1(self.relu1(self.norm1(x)))  # (B, bn_size * k, H, W)
        x = self.conv2(self.relu2(self.norm2(x)))  # (B, k, H, W)
        return self.dropout(x)


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers: (B, C, H, W) -> (B, C + num_layers * k, H, W)."""

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        growth_rate: int,
        bn_size: int,
        *,
        drop_rate: float = 0.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(
                in_channels + i * growth_rate, growth_rate, bn_size, drop_rate=drop_rate, norm_layer=norm_layer
            )
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))  # each new layer reads all earlier maps
        return torch.cat(features, dim=1)  # (B, C + L*k, H, W)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv-2x2 avg-pool: (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int, *, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.norm = norm_layer(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


def imagenet_stem(in_channels: int, width: int, norm_layer: NormLayer) -> OrderedDict[str, nn.Module]:
    """7x7/2 conv, BN, ReLU, 3x3/2 max-pool: (B, C_in, H, W) -> (B, width, H/4, W/4)."""
    return OrderedDict(
        conv0=nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False),
        norm0=norm_layer(width),
        relu0=nn.ReLU(inplace=True),
        pool0=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


def cifar_stem(in_channels: int, width: int, norm_layer: NormLayer) -> OrderedDict[str, nn.Module]:
    """One 3x3 conv (BN-ReLU comes first in the next dense layer): (B, C_in, H, W) -> (B, width, H, W)."""
    return OrderedDict(conv0=nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False))


class DenseNet(nn.Module):
    """Stem, dense blocks with transitions between them, a final BN, ReLU, global pool, fc.

    ``features`` holds the stem (its names as given), ``denseblock1``, ``transition1``, ...,
    and ``norm5`` (torchvision's name, kept whatever the number of blocks).

    ``forward_features``: (B, C_in, H, W) -> (B, num_features, H/s, W/s), after the final
    BN and ReLU; s = 32 for the ImageNet nets (num_features 1024 for DenseNet-121), 4 for
    DenseNet-BC-100 (342 channels, 8x8 on 32x32 images).
    """

    def __init__(
        self,
        stem: OrderedDict[str, nn.Module],
        num_init_features: int,
        block_config: Sequence[int],
        *,
        growth_rate: int = 32,
        bn_size: int = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression (theta) must be in (0, 1], got {compression}")
        self.features = nn.Sequential(stem)
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate=drop_rate, norm_layer=norm_layer)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels = block.out_channels
            if i != len(block_config) - 1:
                out_channels = int(channels * compression)  # floor, as the paper's code
                self.features.add_module(
                    f"transition{i + 1}", Transition(channels, out_channels, norm_layer=norm_layer)
                )
                channels = out_channels
        self.features.add_module("norm5", norm_layer(channels))
        self.relu = nn.ReLU(inplace=True)
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He-normal convs with fan_out (the paper's Torch code, fb.resnet.torch); norms start
        # at weight 1, bias 0 by themselves; zero classifier bias as torchvision.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # The final BN is inside ``features`` (torchvision's layout); its ReLU is applied here so
        # that a backbone gets the activated map.
        return self.relu(self.features(x))  # (B, num_features, H/s, W/s)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        pooled = self.avgpool(features).flatten(1)  # (B, num_features)
        return self.classifier(pooled)  # (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# -- ImageNet builders (torchvision-compatible) ------------------------------------------


def _imagenet_densenet(
    growth_rate: int,
    block_config: Sequence[int],
    num_init_features: int,
    *,
    num_classes: int,
    in_channels: int,
    bn_size: int,
    drop_rate: float,
    norm_layer: NormLayer,
) -> DenseNet:
    return DenseNet(
        imagenet_stem(in_channels, num_init_features, norm_layer),
        num_init_features,
        block_config,
        growth_rate=growth_rate,
        bn_size=bn_size,
        drop_rate=drop_rate,
        num_classes=num_classes,
        norm_layer=norm_layer,
    )


@register_model("densenet121")
def densenet121(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    bn_size: int = 4,
    drop_rate: float = 0.0,
    norm_layer: NormLayer = nn.BatchNorm2d,
) -> DenseNet:
    """DenseNet-121 (Huang et al. 2017), k=32, blocks (6, 12, 24, 16), torchvision-compatible; 8.0M params."""
    return _imagenet_densenet(
        32,
        (6, 12, 24, 16),
        64,
        num_classes=num_classes,
        in_channels=in_channels,
        bn_size=bn_size,
        drop_rate=drop_rate,
        norm_layer=norm_layer,
    )


@register_model("densenet161")
def densenet161(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    bn_size: int = 4,
    drop_rate: float = 0.0,
    norm_layer: NormLayer = nn.BatchNorm2d,
) -> DenseNet:
    """DenseNet-161 (Huang et al. 2017), k=48, blocks (6, 12, 36, 24), torchvision-compatible; 28.7M params."""
    return _imagenet_densenet(
        48,
        (6, 12, 36, 24),
        96,
        num_classes=num_classes,
        in_channels=in_channels,
        bn_size=bn_size,
        drop_rate=drop_rate,
        norm_layer=norm_layer,
    )


@register_model("densenet169")
def densenet169(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    bn_size: int = 4,
    drop_rate: float = 0.0,
    norm_layer: NormLayer = nn.BatchNorm2d,
) -> DenseNet:
    """DenseNet-169 (Huang et al. 2017), k=32, blocks (6, 12, 32, 32), torchvision-compatible; 14.1M params."""
    return _imagenet_densenet(
        32,
        (6, 12, 32, 32),
        64,
        num_classes=num_classes,
        in_channels=in_channels,
        bn_size=bn_size,
        drop_rate=drop_rate,
        norm_layer=norm_layer,
    )


@register_model("densenet201")
def densenet201(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    bn_size: int = 4,
    drop_rate: float = 0.0,
    norm_layer: NormLayer = nn.BatchNorm2d,
) -> DenseNet:
    """DenseNet-201 (Huang et al. 2017), k=32, blocks (6, 12, 48, 32), torchvision-compatible; 20.0M params."""
    return _imagenet_densenet(
        32,
        (6, 12, 48, 32),
        64,
        num_classes=num_classes,
        in_channels=in_channels,
        bn_size=bn_size,
        drop_rate=drop_rate,
        norm_layer=norm_layer,
    )


# -- CIFAR builder ---------------------------------------------------------------------------


@register_model("densenet_bc_100_k12")
def densenet_bc_100_k12(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
    growth_rate: int = 12,
    compression: float = 0.5,
    drop_rate: float = 0.0,
    norm_layer: NormLayer = nn.BatchNorm2d,
) -> DenseNet:
    """DenseNet-BC (L=100, k=12) for 32x32 images (Huang et al. 2017): 3 blocks of 16 layers; 0.8M params."""
    check_input_shape("densenet_bc_100_k12", input_shape, in_channels)
    depth = 100
    # Weighted layers: the stem conv, 2 convs per bottleneck layer, 2 transition convs, the fc.
    layers_per_block = (depth - 4) // 6  # 16
    init = 2 * growth_rate  # the paper's first conv: twice the growth rate for DenseNet-BC
    return DenseNet(
        cifar_stem(in_channels, init, norm_layer),
        init,
        (layers_per_block,) * 3,
        growth_rate=growth_rate,
        bn_size=4,
        compression=compression,
        drop_rate=drop_rate,
        num_classes=num_classes,
        norm_layer=norm_layer,
    )
