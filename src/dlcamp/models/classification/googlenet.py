"""GoogLeNet (Inception v1): wide blocks made cheap by 1x1 bottlenecks.

Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke & Rabinovich, "Going Deeper
with Convolutions", CVPR 2015, arXiv:1409.4842.

Claim: an Inception module looks at its input at several scales at once (1x1, 3x3 and 5x5
convs and a 3x3 max-pool, concatenated along channels), and 1x1 convs placed *before* the
3x3 and 5x5 convs (and after the pool) cut the channels first, so the cost stays small:
22 layers deep with 12x fewer parameters than AlexNet (6.6M against 61M). Two auxiliary
classifiers on intermediate layers (after inception 4a and 4d) add their loss, weighted
0.3, during training, to push gradient into the middle of the deep net; they are dropped
at test time.

Torchvision compatibility: ``googlenet`` uses torchvision's names and order (``conv1``,
``inception3a.branch2.1.conv``, ``aux1.fc1``, ...), batch norm (eps 0.001) after every conv
as in torchvision (the paper had none), and a 3x3 conv in the "5x5" branch, a known
difference of torchvision's port that its weights depend on (``branch3_kernel_size=5``
builds the paper's 5x5). ``transform_input=True`` maps inputs normalised with the ImageNet
mean and std to the [-1, 1] scaling the original weights expect.

The auxiliary classifiers (design choice). ``forward(x)`` always returns the logits
(B, K), in training and in eval mode, so the model is a plain tensor -> tensor classifier
for every caller (tasks, metrics, ``dlcamp params``, ``torch.compile``). Training code that
wants the auxiliary losses calls ``forward_with_aux(x)`` instead: it returns
``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` (torchvision's names and order; the
aux are None when built with ``aux_logits=False``), computing the aux heads in either mode,
and the loss adds ``AUX_LOSS_WEIGHT * (loss(aux_logits1) + loss(aux_logits2))``. Torchvision instead changes ``forward``'s
return type with ``.train()``/``.eval()``, which breaks every caller that expects a tensor;
storing the aux logits in an attribute would make ``forward`` impure (stale values, memory
kept between steps, wrong under data-parallel replicas). Note that when only ``forward`` is
used in training, the aux heads get no gradient: build with ``aux_logits=False`` then (and
for DistributedDataParallel, which rejects unused parameters by default).

``googlenet_small`` is for 32x32 images: a 3x3 stride-1 first conv, one 3x3/2 pool in the
stem instead of two plus the stride-2 conv, so inception 3 runs at 16x16, 4 at 8x8 and 5 at
4x4 (the ImageNet net: 28, 14, 7); ``width_mult`` scales every channel count.

Legend: B batch, C channels, H, W height and width, K classes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, NamedTuple, Sequence

import torch
import torch.nn as nn

from dlcamp import nn as dnn
from dlcamp.models import register_model
from dlcamp.models.classification._common import check_input_shape
from dlcamp.models.contracts import AuxiliaryClassifier

NormLayer = Callable[..., nn.Module]

AUX_LOSS_WEIGHT = 0.3  # the paper's weight of each auxiliary classifier's loss

# Table 1 of the paper: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) per module;
# the module's output channels are #1x1 + #3x3 + #5x5 + pool proj.
INCEPTION: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),  # 192 -> 256
    "inception3b": (128, 128, 192, 32, 96, 64),  # 256 -> 480
    "inception4a": (192, 96, 208, 16, 48, 64),  # 480 -> 512
    "inception4b": (160, 112, 224, 24, 64, 64),  # 512 -> 512
    "inception4c": (128, 128, 256, 24, 64, 64),  # 512 -> 512
    "inception4d": (112, 144, 288, 32, 64, 64),  # 512 -> 528
    "inception4e": (256, 160, 320, 32, 128, 128),  # 528 -> 832
    "inception5a": (256, 160, 320, 32, 128, 128),  # 832 -> 832
    "inception5b": (384, 192, 384, 48, 128, 128),  # 832 -> 1024
}


class GoogLeNetOutputs(NamedTuple):
    logits: torch.Tensor  # (B, K)
    aux_logits2: torch.Tensor | None  # (B, K), from inception 4d
    aux_logits1: torch.Tensor | None  # (B, K), from inception 4a


class BasicConv2d(nn.Module):
    """Conv (no bias) -> norm (eps 0.001) -> ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, *, norm_layer: NormLayer = nn.BatchNorm2d, **conv_kwargs: Any
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = norm_layer(out_channels, eps=0.001)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches concatenated: (B, C_in, H, W) -> (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        *,
        norm_layer: NormLayer = nn.BatchNorm2d,
        branch3_kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1, norm_layer=norm_layer)
        # The 1x1 "reduce" convs shrink the channels before the expensive spatial convs.
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1, norm_layer=norm_layer),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1, norm_layer=norm_layer),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1, norm_layer=norm_layer),
            BasicConv2d(
                ch5x5red,
                ch5x5,
                kernel_size=branch3_kernel_size,
                padding=branch3_kernel_size // 2,
                norm_layer=norm_layer,
            ),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1, norm_layer=norm_layer),  # the pool keeps C_in: project
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, dim=1)  # (B, out_channels, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier: avg-pool to 4x4, 1x1 conv, Linear -> ReLU -> dropout -> Linear, (B, C, H, W) -> (B, K)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        norm_layer: NormLayer = nn.BatchNorm2d,
        conv_channels: int = 128,
        hidden: int = 1024,
        dropout: float = 0.7,
    ) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, conv_channels, kernel_size=1, norm_layer=norm_layer)
        self.fc1 = nn.Linear(conv_channels * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.dropout = dnn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(x, (4, 4))  # (B, C, 4, 4): 14x14 / 5x5-stride-3 in the paper
        x = self.conv(x).flatten(1)  # (B, conv_channels * 16)
        x = self.dropout(torch.relu(self.fc1(x)))  # (B, hidden)
        return self.fc2(x)  # (B, K)


def imagenet_stem(in_channels: int, norm_layer: NormLayer) -> OrderedDict[str, nn.Module]:
    """7x7/2 conv, 3x3/2 pool, 1x1 conv, 3x3 conv, 3x3/2 pool: (B, C_in, H, W) -> (B, 192, H/8, W/8)."""
    return OrderedDict(
        conv1=BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, norm_layer=norm_layer),
        maxpool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
        conv2=BasicConv2d(64, 64, kernel_size=1, norm_layer=norm_layer),
        conv3=BasicConv2d(64, 192, kernel_size=3, padding=1, norm_layer=norm_layer),
        maxpool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),
    )


def small_stem(in_channels: int, norm_layer: NormLayer, width_mult: float = 1.0) -> OrderedDict[str, nn.Module]:
    """3x3 conv, 3x3/2 pool, 1x1 conv, 3x3 conv: (B, C_in, 32, 32) -> (B, 192 * width_mult, 16, 16)."""
    c64, c192 = _scaled(64, width_mult), _scaled(192, width_mult)
    return OrderedDict(
        conv1=BasicConv2d(in_channels, c64, kernel_size=3, padding=1, norm_layer=norm_layer),
        maxpool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
        conv2=BasicConv2d(c64, c64, kernel_size=1, norm_layer=norm_layer),
        conv3=BasicConv2d(c64, c192, kernel_size=3, padding=1, norm_layer=norm_layer),
    )


def _scaled(channels: int, width_mult: float) -> int:
    return max(1, round(channels * width_mult))


class GoogLeNet(nn.Module, AuxiliaryClassifier):
    """Stem, inception 3a-3b, pool, 4a-4e, pool, 5a-5b, global pool, dropout, fc; aux heads on 4a and 4d.

    ``stem`` maps a name to a module, each registered at the top level (torchvision's keys)
    and run in order; it must output ``stem_channels`` channels.

    ``forward_features``: (B, C_in, H, W) -> (B, 1024 * width_mult, H/s, W/s), s = 32 for the
    ImageNet stem (7x7 on 224x224 images), 8 for the small stem (4x4 on 32x32).
    """

    aux_loss_weight = AUX_LOSS_WEIGHT  # the AuxiliaryClassifier contract: read by the classification task

    def __init__(
        self,
        stem: OrderedDict[str, nn.Module],
        stem_channels: int,
        *,
        num_classes: int = 1000,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
        norm_layer: NormLayer = nn.BatchNorm2d,
        width_mult: float = 1.0,
        branch3_kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.transform_input = transform_input
        for name, module in stem.items():
            self.add_module(name, module)
        self._stem_names = tuple(stem)

        channels = stem_channels
        blocks: dict[str, Inception] = {}
        for name, config in INCEPTION.items():
            block = Inception(
                channels,
                *(_scaled(c, width_mult) for c in config),
                norm_layer=norm_layer,
                branch3_kernel_size=branch3_kernel_size,
            )
            blocks[name] = block
            channels = block.out_channels
        self.inception3a, self.inception3b = blocks["inception3a"], blocks["inception3b"]
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a, self.inception4b = blocks["inception4a"], blocks["inception4b"]
        self.inception4c, self.inception4d = blocks["inception4c"], blocks["inception4d"]
        self.inception4e = blocks["inception4e"]
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a, self.inception5b = blocks["inception5a"], blocks["inception5b"]

        self.aux_logits = aux_logits
        if aux_logits:
            aux_kwargs = dict(
                norm_layer=norm_layer,
                conv_channels=_scaled(128, width_mult),
                hidden=_scaled(1024, width_mult),
                dropout=dropout_aux,
            )
            self.aux1 = InceptionAux(self.inception4a.out_channels, num_classes, **aux_kwargs)
            self.aux2 = InceptionAux(self.inception4d.out_channels, num_classes, **aux_kwargs)
        else:
            self.aux1 = self.aux2 = None

        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = dnn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # Torchvision's scheme: small truncated normal weights; the batch norms set the scale.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        # (x * std + mean - 0.5) / 0.5: undo the ImageNet normalisation, rescale [0, 1] to [-1, 1].
        scale = x.new_tensor([0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5]).view(1, 3, 1, 1)
        shift = x.new_tensor([(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5]).view(1, 3, 1, 1)
        return x * scale + shift

    def _features_and_taps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The final feature map and the inputs of the two auxiliary heads (after 4a and 4d)."""
        if self.transform_input:
            x = self._transform_input(x)
        for name in self._stem_names:
            x = getattr(self, name)(x)  # (B, 192, H/8, W/8) for the ImageNet stem
        x = self.maxpool3(self.inception3b(self.inception3a(x)))  # (B, 480, H/16, W/16)
        tap1 = self.inception4a(x)  # (B, 512, H/16, W/16)
        tap2 = self.inception4d(self.inception4c(self.inception4b(tap1)))  # (B, 528, H/16, W/16)
        x = self.maxpool4(self.inception4e(tap2))  # (B, 832, H/32, W/32)
        x = self.inception5b(self.inception5a(x))  # (B, 1024, H/32, W/32)
        return x, tap1, tap2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features_and_taps(x)[0]  # (B, num_features, H/s, W/s)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        pooled = self.avgpool(features).flatten(1)  # (B, num_features)
        return self.fc(self.dropout(pooled))  # (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_with_aux(self, x: torch.Tensor) -> GoogLeNetOutputs:
        """Logits and both auxiliary logits, each (B, K); the aux are None without aux heads.

        Training loss (the paper's): ``loss(logits) + AUX_LOSS_WEIGHT * (loss(aux_logits1) + loss(aux_logits2))``.
        """
        features, tap1, tap2 = self._features_and_taps(x)
        logits = self.forward_head(features)
        aux1 = self.aux1(tap1) if self.aux1 is not None else None
        aux2 = self.aux2(tap2) if self.aux2 is not None else None
        return GoogLeNetOutputs(logits, aux2, aux1)


@register_model("googlenet")
def googlenet(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    aux_logits: bool = True,
    transform_input: bool = False,
    dropout: float = 0.2,
    dropout_aux: float = 0.7,
    norm_layer: NormLayer = nn.BatchNorm2d,
    branch3_kernel_size: int = 3,
) -> GoogLeNet:
    """GoogLeNet / Inception v1 (Szegedy et al. 2015), torchvision-compatible; 6.6M params without aux heads."""
    if transform_input and in_channels != 3:
        raise ValueError(f"transform_input re-normalises RGB images and needs in_channels=3, got {in_channels}")
    return GoogLeNet(
        imagenet_stem(in_channels, norm_layer),
        192,
        num_classes=num_classes,
        aux_logits=aux_logits,
        transform_input=transform_input,
        dropout=dropout,
        dropout_aux=dropout_aux,
        norm_layer=norm_layer,
        branch3_kernel_size=branch3_kernel_size,
    )


@register_model("googlenet_small")
def googlenet_small(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
    width_mult: float = 1.0,
    aux_logits: bool = False,
    dropout: float = 0.2,
    dropout_aux: float = 0.7,
    norm_layer: NormLayer = nn.BatchNorm2d,
    branch3_kernel_size: int = 3,
) -> GoogLeNet:
    """GoogLeNet for 32x32 images: 3x3 stride-1 stem, one stem pool (inception at 16/8/4 px); 5.6M params."""
    check_input_shape("googlenet_small", input_shape, in_channels)
    return GoogLeNet(
        small_stem(in_channels, norm_layer, width_mult),
        _scaled(192, width_mult),
        num_classes=num_classes,
        aux_logits=aux_logits,
        dropout=dropout,
        dropout_aux=dropout_aux,
        norm_layer=norm_layer,
        width_mult=width_mult,
        branch3_kernel_size=branch3_kernel_size,
    )
