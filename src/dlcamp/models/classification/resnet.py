"""ResNet: residual learning with identity shortcuts.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
arXiv:1512.03385.

Claim: a deep plain network is *harder to optimise* than a shallower one (its training
error is higher, so this is not overfitting). If each block learns a residual F(x) and
outputs F(x) + x, a block that should do nothing only has to push F to zero, and the
identity shortcut carries the signal (and the gradient) straight through. With it,
152 layers train better than 34.

Two residual blocks:

* ``BasicBlock`` (ResNet-18/34 and the CIFAR nets): 3x3 conv -> BN -> ReLU -> 3x3 conv -> BN,
  add the shortcut, ReLU.
* ``Bottleneck`` (ResNet-50/101/152): 1x1 conv reduces the channels 4x, a 3x3 conv works
  on the narrow tensor, a 1x1 conv expands them back: cheaper than two wide 3x3 convs.
  The stride sits on the 3x3 conv (torchvision's "ResNet v1.5"; the paper strides the
  first 1x1, which throws away 3/4 of the positions before looking at them).

Dilation instead of stride (``replace_stride_with_dilation``, one flag per stage after the
first, as torchvision's): a stage whose stride is replaced keeps the resolution it gets, and
its 3x3 convs spread their taps ``d`` pixels apart instead (dilation ``d``, padding ``d``,
doubling at each replaced stage), so every later conv still sees as wide a context as it
would have after the stride: the receptive field grows and the map stays fine. This is
how a classifier becomes a dense predictor at output stride 8 or 16 (Yu & Koltun,
"Multi-Scale Context Aggregation by Dilated Convolutions", ICLR 2016, arXiv:1511.07122;
Chen et al., DeepLab, arXiv:1606.00915). The first block of such a stage still uses the
previous dilation (it plays the role of the stride it replaces), and its projection
shortcut is a stride-1 1x1 conv. Only Bottleneck nets: torchvision refuses dilation in a
BasicBlock, and so do we.

Shortcuts where the shape changes (stride 2 or more channels):

* option B, ``projection_shortcut``: 1x1 conv with stride + BN (ImageNet nets);
* option A, ``zero_pad_shortcut``: take every second pixel and append zero channels,
  no parameters (the CIFAR nets of section 4.2).

ImageNet builders (``resnet18`` ... ``resnet152``) use torchvision's layer names and order,
so ``model.load_state_dict(torchvision.models.resnet50().state_dict())`` works. CIFAR
builders (``resnet20`` ... ``resnet110``) are the 6n+2-layer nets of section 4.2: a 3x3
stem, three stages of n BasicBlocks with 16/32/64 channels, global pooling and a linear
classifier.

Legend: B batch, C channels, H, W height and width, K classes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.models import register_model
from dlcamp.models.classification._common import check_input_shape
from dlcamp.registry import forwards

NormLayer = Callable[..., nn.Module]
# (in_channels, out_channels, stride, norm_layer) -> the module on the shortcut path
ShortcutFactory = Callable[[int, int, int, NormLayer], nn.Module]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    # No bias: the BatchNorm right after re-centres anyway. Padding = dilation keeps H, W at
    # stride 1: a dilated 3x3 spans 2 * dilation + 1 pixels.
    return nn.Conv2d(
        in_channels, out_channels, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


# -- shortcuts ---------------------------------------------------------------------------


def projection_shortcut(in_channels: int, out_channels: int, stride: int, norm_layer: NormLayer) -> nn.Sequential:
    """Option B: a strided 1x1 convolution and a norm, (B, C_in, H, W) -> (B, C_out, H/s, W/s)."""
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), norm_layer(out_channels))


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and append zero channels; no parameters.

    The first ``in_channels`` output channels are the input itself (every ``stride``-th
    pixel), so the shortcut stays an identity on what it carries: nothing to learn.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"a zero-pad shortcut cannot shrink {in_channels} channels to {out_channels}")
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (B, C_in, ceil(H/s), ceil(W/s)), as the strided 3x3 conv
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))  # (B, C_out, H/s, W/s), zeros appended

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra_channels}, stride={self.stride}"


def zero_pad_shortcut(in_channels: int, out_channels: int, stride: int, norm_layer: NormLayer) -> ZeroPadShortcut:
    """Option A (a ``ShortcutFactory``; ``norm_layer`` is unused: there is nothing to normalise)."""
    return ZeroPadShortcut(in_channels, out_channels, stride)


# -- blocks ------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut: (B, C_in, H, W) -> (B, channels, H/stride, W/stride)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: NormLayer = nn.BatchNorm2d,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        if dilation > 1:
            # As torchvision (which raises NotImplementedError): the dilated nets are Bottleneck nets.
            raise ValueError(
                f"BasicBlock does not support dilation > 1 (got {dilation}): replace_stride_with_dilation "
                "needs a Bottleneck ResNet (resnet50, resnet101, resnet152); leave it all False for resnet18/34"
            )
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = norm_layer(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = norm_layer(channels)
        self.downsample = downsample  # None: the shapes already match, the shortcut is x itself

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        residual = self.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        return self.relu(residual + shortcut)

    def last_norm(self) -> nn.Module:
        return self.bn2


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided or dilated), 1x1 expand x4: (B, C_in, H, W) -> (B, 4*channels, H/s, W/s)."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: NormLayer = nn.BatchNorm2d,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = norm_layer(channels)
        self.conv2 = conv3x3(channels, channels, stride, dilation)
        self.bn2 = norm_layer(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)
        self.bn3 = norm_layer(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        residual = self.relu(self.bn1(self.conv1(x)))  # (B, channels, H, W)
        residual = self.relu(self.bn2(self.conv2(residual)))  # (B, channels, H/s, W/s)
        residual = self.bn3(self.conv3(residual))  # (B, 4*channels, H/s, W/s)
        return self.relu(residual + shortcut)

    def last_norm(self) -> nn.Module:
        return self.bn3


Block = type[BasicBlock] | type[Bottleneck]


# -- stems -------------------------------------------------------------------------------


def imagenet_stem(in_channels: int, width: int, norm_layer: NormLayer) -> OrderedDict[str, nn.Module]:
    """7x7/2 conv and 3x3/2 max-pool: (B, C_in, H, W) -> (B, width, H/4, W/4)."""
    return OrderedDict(
        conv1=nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False),
        bn1=norm_layer(width),
        relu=nn.ReLU(inplace=True),
        maxpool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


def cifar_stem(in_channels: int, width: int, norm_layer: NormLayer) -> OrderedDict[str, nn.Module]:
    """One 3x3 conv, no pooling (32x32 images are small already): (B, C_in, H, W) -> (B, width, H, W)."""
    return OrderedDict(conv1=conv3x3(in_channels, width), bn1=norm_layer(width), relu=nn.ReLU(inplace=True))


# -- the network -------------------------------------------------------------------------


class ResNet(nn.Module):
    """Stem, then one stage per entry of ``layers`` (the first at stride 1, the others at 2 or dilated).

    ``stem`` maps a name to a module; each is registered at the top level under its name
    (``conv1``, ``bn1``, ...) so the state-dict keys match torchvision's, and must output
    ``widths[0]`` channels. Stages are ``layer1``, ``layer2``, ...

    ``replace_stride_with_dilation``: one flag per stage after the first (``layer2`` ...);
    a stage flagged keeps stride 1 and dilates its 3x3 convs instead (see the module docstring).

    ``forward_features``: (B, C_in, H, W) -> (B, widths[-1] * expansion, H/s, W/s), s the
    total stride (32 for the ImageNet stem and four stages, 4 for the CIFAR stem and three;
    each stage whose stride is replaced halves it: 8 with ``[False, True, True]``).
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        *,
        stem: OrderedDict[str, nn.Module],
        widths: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = 1000,
        shortcut: ShortcutFactory = projection_shortcut,
        norm_layer: NormLayer = nn.BatchNorm2d,
        zero_init_residual: bool = False,
        replace_stride_with_dilation: Sequence[bool] | None = None,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"one width per stage: got layers={list(layers)} and widths={list(widths)}")
        dilate = [False] * (len(layers) - 1) if replace_stride_with_dilation is None else replace_stride_with_dilation
        if len(dilate) != len(layers) - 1:
            raise ValueError(
                f"replace_stride_with_dilation takes one flag per stage after the first ({len(layers) - 1} here; "
                f"[False, True, True] gives an ImageNet ResNet output stride 8), got {list(dilate)}"
            )
        for name, module in stem.items():
            self.add_module(name, module)
        self._stem_names = tuple(stem)

        in_channels = widths[0]
        dilation = 1
        self._stage_names: tuple[str, ...] = ()
        for i, (num_blocks, channels) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            previous_dilation = dilation
            if i > 0 and dilate[i - 1]:
                dilation, stride = dilation * stride, 1
            out_channels = channels * block.expansion
            downsample = None
            if stride != 1 or in_channels != out_channels:
                downsample = shortcut(in_channels, out_channels, stride, norm_layer)
            # The first block stands where the stride was: it still samples at the previous
            # dilation; the rest sample at the new one.
            blocks = [block(in_channels, channels, stride, downsample, norm_layer, previous_dilation)]
            blocks += [block(out_channels, channels, 1, None, norm_layer, dilation) for _ in range(1, num_blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self._stage_names += (f"layer{i + 1}",)
            in_channels = out_channels

        self.num_features = in_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # He et al. 2015 ("Delving deep into rectifiers"): variance 2/fan keeps the signal's
        # scale through ReLUs; fan_out (as the paper's code and torchvision) preserves the
        # backward pass's. Norm layers start at weight 1, bias 0 by themselves.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            # Goyal et al. 2017: each block then starts as the identity (F(x) = 0).
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)) and getattr(m.last_norm(), "weight", None) is not None:
                    nn.init.zeros_(m.last_norm().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._stem_names + self._stage_names:
            x = getattr(self, name)(x)
        return x  # (B, num_features, H/s, W/s)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        pooled = self.avgpool(features).flatten(1)  # (B, num_features)
        return self.fc(pooled)  # (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# -- ImageNet builders (torchvision-compatible) ------------------------------------------


def _imagenet_resnet(
    block: Block,
    layers: Sequence[int],
    *,
    num_classes: int,
    in_channels: int,
    norm_layer: NormLayer,
    zero_init_residual: bool,
    replace_stride_with_dilation: Sequence[bool],
) -> ResNet:
    return ResNet(
        block,
        layers,
        stem=imagenet_stem(in_channels, 64, norm_layer),
        num_classes=num_classes,
        norm_layer=norm_layer,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


@register_model("resnet18")
def resnet18(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] = (False, False, False),
) -> ResNet:
    """ResNet-18 (He et al. 2016), BasicBlocks (2, 2, 2, 2), torchvision-compatible; 11.7M params."""
    return _imagenet_resnet(
        BasicBlock,
        (2, 2, 2, 2),
        num_classes=num_classes,
        in_channels=in_channels,
        norm_layer=norm_layer,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


@register_model("resnet34")
def resnet34(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] = (False, False, False),
) -> ResNet:
    """ResNet-34 (He et al. 2016), BasicBlocks (3, 4, 6, 3), torchvision-compatible; 21.8M params."""
    return _imagenet_resnet(
        BasicBlock,
        (3, 4, 6, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        norm_layer=norm_layer,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


@register_model("resnet50")
def resnet50(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] = (False, False, False),
) -> ResNet:
    """ResNet-50 (He et al. 2016), Bottlenecks (3, 4, 6, 3), torchvision-compatible (v1.5); 25.6M params."""
    return _imagenet_resnet(
        Bottleneck,
        (3, 4, 6, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        norm_layer=norm_layer,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


@register_model("resnet101")
def resnet101(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] = (False, False, False),
) -> ResNet:
    """ResNet-101 (He et al. 2016), Bottlenecks (3, 4, 23, 3), torchvision-compatible (v1.5); 44.5M params."""
    return _imagenet_resnet(
        Bottleneck,
        (3, 4, 23, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        norm_layer=norm_layer,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


@register_model("resnet152")
def resnet152(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    norm_layer: NormLayer = nn.BatchNorm2d,
    zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] = (False, False, False),
) -> ResNet:
    """ResNet-152 (He et al. 2016), Bottlenecks (3, 8, 36, 3), torchvision-compatible (v1.5); 60.2M params."""
    return _imagenet_resnet(
        Bottleneck,
        (3, 8, 36, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        norm_layer=norm_layer,
        zero_init_residual=zero_init_residual,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


# -- CIFAR builders (section 4.2) ----------------------------------------------------------


def cifar_resnet(
    depth: int,
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
    base_width: int = 16,
    norm_layer: NormLayer = nn.BatchNorm2d,
    shortcut: ShortcutFactory = zero_pad_shortcut,
    zero_init_residual: bool = False,
) -> ResNet:
    """The 6n+2-layer CIFAR ResNet: 3x3 stem, 3 stages of n BasicBlocks (w, 2w, 4w channels), pool, fc.

    Weighted layers: the stem conv, 2 convs in each of the 3n blocks, the classifier: 6n + 2.
    ``forward_features``: (B, C_in, H, W) -> (B, 4w, H/4, W/4), (B, 64, 8, 8) on 32x32 images.
    """
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(f"a CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
    check_input_shape(f"resnet{depth}", input_shape, in_channels)
    n = (depth - 2) // 6
    widths = (base_width, 2 * base_width, 4 * base_width)
    return ResNet(
        BasicBlock,
        (n, n, n),
        stem=cifar_stem(in_channels, base_width, norm_layer),
        widths=widths,
        num_classes=num_classes,
        shortcut=shortcut,
        norm_layer=norm_layer,
        zero_init_residual=zero_init_residual,
    )


@register_model("resnet20")
@forwards(cifar_resnet, drop=("depth",))
def resnet20(**kwargs) -> ResNet:
    """ResNet-20 for 32x32 images (He et al. 2016, sec. 4.2): n=3, option-A shortcuts; 0.27M params."""
    return cifar_resnet(20, **kwargs)


@register_model("resnet32")
@forwards(cifar_resnet, drop=("depth",))
def resnet32(**kwargs) -> ResNet:
    """ResNet-32 for 32x32 images (He et al. 2016, sec. 4.2): n=5, option-A shortcuts; 0.46M params."""
    return cifar_resnet(32, **kwargs)


@register_model("resnet44")
@forwards(cifar_resnet, drop=("depth",))
def resnet44(**kwargs) -> ResNet:
    """ResNet-44 for 32x32 images (He et al. 2016, sec. 4.2): n=7, option-A shortcuts; 0.66M params."""
    return cifar_resnet(44, **kwargs)


@register_model("resnet56")
@forwards(cifar_resnet, drop=("depth",))
def resnet56(**kwargs) -> ResNet:
    """ResNet-56 for 32x32 images (He et al. 2016, sec. 4.2): n=9, option-A shortcuts; 0.85M params."""
    return cifar_resnet(56, **kwargs)


@register_model("resnet110")
@forwards(cifar_resnet, drop=("depth",))
def resnet110(**kwargs) -> ResNet:
    """ResNet-110 for 32x32 images (He et al. 2016, sec. 4.2): n=18, option-A shortcuts; 1.7M params."""
    return cifar_resnet(110, **kwargs)
