"""Fully convolutional networks: FCN-32s, FCN-16s and FCN-8s.

Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015, arXiv:1411.4038 (and Shelhamer et al., PAMI 2016, arXiv:1605.06211).

Claims, as built here:

1. Convolutionalization. A classifier's dense layers are convolutions whose kernel covers
   the whole input map: VGG16's fc6 (25,088 -> 4,096 on a 7x7x512 map) is a 7x7 conv with
   the same weights, fc7 a 1x1 conv. The network then takes any input size and outputs a
   map of class scores, one per 7x7 window of pool5 cells (``convolutionalize``; its test:
   every cell equals the dense layer applied to that window).
2. Upsampling is a convolution too: a transposed ("de-")convolution of stride f, whose
   kernel, initialised bilinear, interpolates (``dlcamp.nn.bilinear_upsampling``). The
   intermediate ones learn; the last stays bilinear (the paper fixes it).
3. Skips. The stride-32 scores are coarse: FCN-16s adds scores from pool4 (stride 16)
   after a 2x upsampling, FCN-8s also pool3's (stride 8). The new score layers start at
   zero, so a skip net starts as the coarser one. Deep and coarse says what, shallow and
   fine says where.
4. Any input size. conv1_1 pads by 100 so that even a small image leaves a fc6 map, and the
   maps are then cropped onto each other. The crops are not magic numbers: every map knows
   its ``Grid`` (cell i is centred on input pixel stride * i + offset), each layer moves the
   grid by its kernel, stride and padding, and a crop is the difference of two grids. For
   VGG16 they come out as the paper's Caffe offsets (19 for FCN-32s; 5 and 27 for 16s; 5, 9
   and 31 for 8s), which a test checks.

Two trunks carry the same heads. ``fcn32s``/``fcn16s``/``fcn8s`` with ``backbone="vgg16"``
(default) are the paper's: VGG16's conv stacks (Caffe's ceil-mode pools) and its fc6/fc7
convolutionalized (``FCN.from_vgg`` carries a classification VGG16's weights over, e.g.
torchvision's ImageNet weights loaded into our ``vgg16`` from a file). With any other
registered backbone (``backbone="tiny"``, ``resnet18``, ...) the trunk is that backbone's
maps at strides 8, 16 and 32 and a small fc6/fc7 of ``head_width`` channels (``head_kernel``
x ``head_kernel``, then 1x1): the variant sized for 128 x 128 scenes on 2 CPU cores.

Training all at once, not in stages (the PAMI version shows it as good): FCN-8s is trained
from scratch here rather than from a trained FCN-16s.

Legend: B batch, C channels, K classes, H, W height and width.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp import nn as dnn
from dlcamp.errors import UsageError
from dlcamp.models import register_model
from dlcamp.models.backbones import get_backbone
from dlcamp.models.classification.vgg import STAGES, VGG, make_features
from dlcamp.registry import forwards

PAPER_PADDING = 100  # conv1_1's padding in the paper: any input of at least 1 pixel leaves a fc6 map


@dataclass(frozen=True)
class Grid:
    """Where a map's cells sit in the input image: cell i is centred on input pixel ``stride * i + offset``."""

    stride: float = 1.0
    offset: float = 0.0

    def conv(self, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> Grid:
        """After a convolution or pooling: output i is centred on input i * stride - padding + dilation * (k - 1) / 2."""
        return Grid(self.stride * stride, self.offset + self.stride * (dilation * (kernel - 1) / 2 - padding))

    def up(self, kernel: int, factor: int, padding: int = 0) -> Grid:
        """After a transposed convolution: output o is centred on input (o + padding - (kernel - 1) / 2) / factor."""
        return Grid(self.stride / factor, self.offset + self.stride * (padding - (kernel - 1) / 2) / factor)

    def cells_to(self, other: Grid) -> float:
        """How many of this grid's cells precede the first cell of ``other`` (the crop that aligns them)."""
        return (other.offset - self.offset) / self.stride


def _pair(v: Any) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def grid_after(layers: nn.Module, grid: Grid) -> Grid:
    """The grid after a sequence of convolutions and poolings (other layers keep it)."""
    for m in layers.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            grid = grid.conv(_pair(m.kernel_size), _pair(m.stride), _pair(m.padding), _pair(getattr(m, "dilation", 1)))
    return grid


def convolutionalize(classifier: nn.Sequential, window: int) -> nn.Sequential:
    """A classifier head over a flattened (C, window, window) map, as convolutions with the same weights.

    The first ``nn.Linear`` becomes a ``window`` x ``window`` conv over C channels (its weight
    reshaped: flattening ordered (C, y, x)), every later one a 1x1 conv; ReLUs and dropouts
    are kept. On a window-sized map the output is the classifier's, as a 1x1 map; on a larger
    map, one classifier output per window position.
    """
    layers: list[nn.Module] = []
    first = True
    for m in classifier:
        if isinstance(m, nn.Linear):
            k = window if first else 1
            if m.in_features % (k * k):
                raise ValueError(f"a Linear of {m.in_features} inputs is not a {k}x{k} window of channels")
            c_in = m.in_features // (k * k)
            conv = nn.Conv2d(c_in, m.out_features, k, bias=m.bias is not None)
            with torch.no_grad():
                conv.weight.copy_(m.weight.reshape(m.out_features, c_in, k, k))
                if m.bias is not None:
                    conv.bias.copy_(m.bias)
            layers.append(conv)
            first = False
        else:
            layers.append(copy.deepcopy(m))
    return nn.Sequential(*layers)


class VGGTrunk(nn.Module):
    """The paper's trunk: VGG conv stacks (conv1_1 padded 100, ceil-mode pools) and fc6/fc7 as convolutions.

    ``forward``: (B, C_in, H, W) -> [pool3 (B, 256, ...), pool4 (B, 512, ...), fc7 (B, 4096, ...)].
    """

    def __init__(self, vgg: VGG, padding: int = PAPER_PADDING) -> None:
        super().__init__()
        self.features = copy.deepcopy(vgg.features)
        first = self.features[0]
        first.padding = (padding, padding)
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        if len(pools) != 5:
            raise ValueError(f"an FCN trunk needs VGG's five pools, got {len(pools)}")
        for i in pools:
            self.features[i].ceil_mode = True  # Caffe's pooling: a last partial window is kept
        self._taps = pools[2:4]  # pool3, pool4
        window = vgg.avgpool.output_size
        window = window if isinstance(window, int) else window[0]
        self.fc = convolutionalize(vgg.classifier[:-1], window)  # fc6, relu, dropout, fc7, relu, dropout; no fc8
        widths = [m.out_channels for m in self.features if isinstance(m, nn.Conv2d)]
        convs_before = [sum(isinstance(m, nn.Conv2d) for m in self.features[:i]) for i in self._taps]
        self.out_channels = [widths[n - 1] for n in convs_before] + [self.fc[-3].out_channels]
        g3 = grid_after(self.features[: pools[2] + 1], Grid())
        g4 = grid_after(self.features[pools[2] + 1 : pools[3] + 1], g3)
        g5 = grid_after(self.features[pools[3] + 1 :], g4)
        self.grids = [g3, g4, grid_after(self.fc, g5)]
        # conv1_1's 100 pixels of padding leave score cells beyond the borders, and the paper
        # repeats none; its FCN-32s still fades over its first ~12 pixels (one cell covers them)
        self.edge = 0

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                taps.append(x)
        return taps + [self.fc(x)]  # fc7: (B, 4096, H', W'), one cell per 7x7 window of pool5


class BackboneTrunk(nn.Module):
    """A registered backbone's maps at strides 8, 16, 32, and a small fc6/fc7 on the last one.

    fc6 is a ``head_kernel`` x ``head_kernel`` conv of ``head_width`` channels (padded, so the
    grid stays put), fc7 a 1x1 conv; each followed by ReLU and dropout, as in the paper.
    """

    def __init__(
        self, backbone: str, *, in_channels: int, head_width: int, head_kernel: int, dropout: float, **options: Any
    ) -> None:
        super().__init__()
        self.backbone = get_backbone(backbone, in_channels=in_channels, first_stride=8, num_levels=3, **options)
        if list(self.backbone.strides) != [8, 16, 32]:
            raise UsageError(
                f"FCN needs maps at strides 8, 16, 32; backbone {backbone!r} gives {self.backbone.strides}"
            )
        c5 = self.backbone.out_channels[-1]
        if head_kernel < 1 or head_kernel % 2 == 0:
            raise UsageError(f"model.head_kernel must be odd (padded by k // 2, it keeps the grid), got {head_kernel}")
        pad = head_kernel // 2
        self.fc = nn.Sequential(
            nn.Conv2d(c5, head_width, head_kernel, padding=pad),
            nn.ReLU(inplace=True),
            dnn.Dropout(dropout),
            nn.Conv2d(head_width, head_width, 1),
            nn.ReLU(inplace=True),
            dnn.Dropout(dropout),
        )
        self.out_channels = list(self.backbone.out_channels[:2]) + [head_width]
        grids = [Grid(s, o) for s, o in zip(self.backbone.strides, self.backbone.cell_offsets())]
        self.grids = grids[:2] + [grid_after(self.fc, grids[2])]
        self.edge = 1  # score maps end at the image's border: repeat their edge cells before upsampling

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Pad the bottom and right up to a multiple of 32: a backbone that pools by flooring
        # (VGG's 2x2 pools) would otherwise drop the last rows; padding there moves no cell.
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % 32, 0, -h % 32))
        c3, c4, c5 = self.backbone(x)
        return [c3, c4, self.fc(c5)]


def crop(x: torch.Tensor, s: int, size: tuple[int, int]) -> torch.Tensor:
    """``x[..., s : s + h, s : s + w]``, or an error saying what did not fit."""
    if s < 0 or s + size[0] > x.shape[-2] or s + size[1] > x.shape[-1]:
        raise RuntimeError(f"cannot crop {tuple(size)} at {s} from a {tuple(x.shape[-2:])} map")
    return x[..., s : s + size[0], s : s + size[1]]


def overlap(a: torch.Tensor, b: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The parts of two maps on one grid that cover the same cells; b's cell 0 is a's cell ``start``."""
    if start >= 0:
        a = a[..., start:, start:]
    else:
        b = b[..., -start:, -start:]
    h, w = min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1])
    return a[..., :h, :w], b[..., :h, :w]


class Upsample(nn.Module):
    """A bilinear-initialised transposed conv of stride ``factor``, and where its output lands on ``target``'s grid.

    The kernel is 2f or 2f - 1 wide, whichever puts the output cells on ``target``'s grid (a
    whole number of cells apart): 2f when the cells sit mid-stride (VGG's pools), 2f - 1 when
    they sit on stride multiples (stride-2 3x3 convs). ``start``: the output cell under
    ``target``'s cell 0 (negative when the output begins later than ``target``).

    ``edge`` cells of the input's own border are repeated around it first (replicate
    padding): past its last cell a transposed conv would blend the scores with zeros, and
    the outer pixels would fade towards "no class" (the paper's trunk, padded by 100 pixels,
    has cells well beyond the image and needs none).
    """

    def __init__(self, channels: int, factor: int, source: Grid, target: Grid, *, trainable: bool, edge: int) -> None:
        super().__init__()
        self.edge = edge
        source = Grid(source.stride, source.offset - edge * source.stride)  # the padded map's cell 0
        for kernel in (2 * factor - factor % 2, 2 * factor - 1 + factor % 2):
            self.grid = source.up(kernel, factor)
            self.start = self.grid.cells_to(target)
            if abs(self.start - round(self.start)) < 1e-6:
                break
        else:
            raise ValueError(f"no {factor}x upsampling kernel puts {source} onto {target}: their cells are misaligned")
        self.start = round(self.start)
        self.conv = dnn.bilinear_upsampling(channels, factor, padding=0, trainable=trainable, kernel_size=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.edge:
            x = F.pad(x, (self.edge,) * 4, mode="replicate")
        return self.conv(x)


class FCN(nn.Module):
    """Score layers on a trunk's three maps, fused coarse to fine (``skips`` 0, 1 or 2), upsampled to the input.

    ``edge``: border cells repeated before each upsampling (``Upsample``); by default the
    trunk's (0 for the paper's, whose crops are then Caffe's; 1 on a backbone).
    ``forward``: (B, C_in, H, W) -> logits (B, K, H, W).
    """

    def __init__(
        self, trunk: VGGTrunk | BackboneTrunk, num_classes: int, skips: int = 2, edge: int | None = None
    ) -> None:
        super().__init__()
        edge = trunk.edge if edge is None else edge
        if skips not in (0, 1, 2):
            raise UsageError(f"FCN skips must be 0 (32s), 1 (16s) or 2 (8s), got {skips}")
        self.trunk, self.skips, self.num_classes = trunk, skips, num_classes
        c3, c4, c7 = trunk.out_channels
        g3, g4, g7 = trunk.grids
        self.score_fr = nn.Conv2d(c7, num_classes, 1)
        self.score_pool4 = nn.Conv2d(c4, num_classes, 1) if skips >= 1 else None
        self.score_pool3 = nn.Conv2d(c3, num_classes, 1) if skips >= 2 else None
        for score in (self.score_fr, self.score_pool4, self.score_pool3):
            if score is not None:  # zero: a skip net starts as the coarser net (and scores start at chance)
                nn.init.zeros_(score.weight)
                nn.init.zeros_(score.bias)
        # Coarse to fine: upsample the scores 2x, fuse them with the next skip's scores where
        # both cover the same cells; the fused map lives on whichever grid starts later.
        grid, ups = g7, []
        for side in [g4, g3][:skips]:
            up = Upsample(num_classes, 2, grid, side, trainable=True, edge=edge)
            ups.append(up)
            grid = side if up.start >= 0 else up.grid
        self.up2 = nn.ModuleList(ups)
        factor = int(round(grid.stride))
        # the paper fixes the last one: bilinear interpolation, not learned
        self.up_final = Upsample(num_classes, factor, grid, Grid(), trainable=False, edge=edge)

    @classmethod
    def from_vgg(
        cls, vgg: VGG, num_classes: int, skips: int = 2, padding: int = PAPER_PADDING, edge: int | None = None
    ) -> FCN:
        """FCN on a classification VGG: its conv stacks and fc6/fc7 (weights carried over); fc8 replaced."""
        return cls(VGGTrunk(vgg, padding), num_classes, skips, edge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c3, c4, c7 = self.trunk(x)
        score = self.score_fr(c7)  # (B, K, H/32-ish, W/32-ish)
        for up, skip, layer in zip(self.up2, (c4, c3), (self.score_pool4, self.score_pool3)):
            side = layer(skip)  # (B, K, ...) at stride 16, then 8
            a, b = overlap(up(score), side, up.start)
            score = a + b
        return crop(self.up_final(score), self.up_final.start, tuple(x.shape[-2:]))  # (B, K, H, W)


def _paper_vgg(in_channels: int, width_mult: float, hidden: int, dropout: float) -> VGG:
    features, channels = make_features(STAGES["D"], in_channels=in_channels, width_mult=width_mult)
    return VGG(features, channels, num_classes=1000, hidden=hidden, dropout=dropout)


def build_fcn(
    *,
    skips: int,
    num_classes: int = 21,
    in_channels: int = 3,
    backbone: str = "vgg16",
    vgg_weights: str | None = None,
    width_mult: float = 1.0,
    head_width: int | None = None,
    head_kernel: int | None = None,
    dropout: float = 0.5,
    backbone_options: dict[str, Any] | None = None,
) -> FCN:
    """The paper's FCN on VGG16 (``backbone="vgg16"``), or the same heads on a registered backbone.

    VGG16: ``width_mult`` scales its widths (1 is the paper's), ``head_width`` its fc6/fc7
    (default 4096 x ``width_mult``), ``vgg_weights`` a state-dict file of a classification
    VGG16 (ours or torchvision's, loaded as tensors only) to start from. Another backbone:
    ``head_width`` (default 256) and ``head_kernel`` (default 3) size the small fc6/fc7, and
    ``backbone_options`` go to the backbone's builder (e.g. ``widths`` of ``tiny``).
    ``backbone="vgg16"`` is the paper's trunk (pool5, then fc6/fc7), not the registered
    ``vgg16`` backbone (its maps up to stride 16). Pre-trained weights expect the inputs
    they were trained on: torchvision's ImageNet VGG16 wants images normalised with
    ImageNet's mean and std, which the segmentation data modules do not do.
    """
    if backbone == "vgg16":
        if head_kernel is not None or backbone_options:
            raise UsageError("head_kernel and backbone_options apply to a registered backbone, not the paper's vgg16")
        vgg = _paper_vgg(in_channels, width_mult, head_width or max(1, round(4096 * width_mult)), dropout)
        if vgg_weights is not None:
            path = Path(vgg_weights)
            if not path.is_file():
                raise UsageError(f"vgg_weights: {str(path)!r} is not a file")
            try:  # weights_only: tensors and plain containers, so a file handed to us cannot run code
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # an unpickling error names what the file tried to build
                raise UsageError(
                    f"vgg_weights {str(path)!r} is not a file of tensors: {str(e).splitlines()[0]}"
                ) from None
            try:
                vgg.load_state_dict(state, strict=True)
            except (RuntimeError, TypeError, AttributeError) as e:
                raise UsageError(
                    f"vgg_weights {str(path)!r} is not a VGG16 state dict: {str(e).splitlines()[0]}"
                ) from None
        return FCN.from_vgg(vgg, num_classes, skips)
    if vgg_weights is not None or width_mult != 1.0:
        raise UsageError("vgg_weights and width_mult apply to backbone vgg16 (the paper's trunk) only")
    trunk = BackboneTrunk(
        backbone,
        in_channels=in_channels,
        head_width=head_width or 256,
        head_kernel=3 if head_kernel is None else head_kernel,
        dropout=dropout,
        **(backbone_options or {}),
    )
    return FCN(trunk, num_classes, skips)


@register_model("fcn32s")
@forwards(build_fcn, drop=("skips",))
def fcn32s(**options: Any) -> FCN:
    """FCN-32s (Long et al. 2015): VGG16 convolutionalized, one 32x upsampling; or the same on a backbone."""
    return build_fcn(skips=0, **options)


@register_model("fcn16s")
@forwards(build_fcn, drop=("skips",))
def fcn16s(**options: Any) -> FCN:
    """FCN-16s: FCN-32s plus scores from pool4 (stride 16), fused after a learned 2x upsampling."""
    return build_fcn(skips=1, **options)


@register_model("fcn8s")
@forwards(build_fcn, drop=("skips",))
def fcn8s(**options: Any) -> FCN:
    """FCN-8s: FCN-16s plus scores from pool3 (stride 8): the finest of the three."""
    return build_fcn(skips=2, **options)


__all__ = [
    "BackboneTrunk",
    "FCN",
    "Grid",
    "Upsample",
    "VGGTrunk",
    "build_fcn",
    "convolutionalize",
    "crop",
    "fcn16s",
    "fcn32s",
    "fcn8s",
    "grid_after",
]
