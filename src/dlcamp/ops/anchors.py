"""Anchors: the reference boxes a detector regresses from.

A one- or two-stage detector predicts, at every cell of a feature map, a score and a box
offset for each of A fixed reference boxes centred on that cell. Those boxes tile the
image at several sizes and shapes, so every object is near some anchor.

- ``grid_anchors``: the one way to lay anchors on a feature map: A boxes around the
  origin (``cell_anchors``), shifted to every cell (i, j) of a map with stride (sy, sx).
  ``offset`` says where in the cell: 0.5 centres them on ((j + 0.5) sx, (i + 0.5) sy),
  as the detectors here do; 0 puts them on the cell's top-left pixel (j sx, i sy), as
  Detectron and torchvision do.
- ``anchor_shapes``: Faster R-CNN's anchor shapes (Ren et al., "Faster R-CNN: Towards
  Real-Time Object Detection with Region Proposal Networks", 2015, arXiv:1506.01497):
  one (width, height) per (size, aspect ratio) pair, of area size^2 and height / width =
  aspect ratio; ``centred_boxes`` turns shapes into boxes around the origin.
- ``AnchorGenerator``: torchvision's generator, for comparison: the same shapes, rounded
  to whole pixels and ordered by aspect ratio, on the cells' corners, one stride per
  level from image_size // feature_size.
- ``default_boxes``: SSD's default boxes (Liu et al., "SSD: Single Shot MultiBox
  Detector", 2016, arXiv:1512.02325), in fractions of the image: level k has scale s_k
  and boxes centred on cell centres ((j + 0.5) / w_k, (i + 0.5) / h_k); each location
  gets a square of side s_k, a square of side sqrt(s_k s_{k+1}) (between this level's
  scale and the next), and for each aspect ratio r a box s_k sqrt(r) wide and
  s_k / sqrt(r) high plus its transpose (ratio 1 / r).
- ``kmeans_anchors``: YOLOv2's learned anchor shapes (Redmon and Farhadi, "YOLO9000:
  Better, Faster, Stronger", 2017, arXiv:1612.08242): instead of hand-picking sizes,
  cluster the training boxes' (width, height) with k-means under the distance
  1 - IoU (boxes aligned at a common centre), so a big box is not "far" from a
  slightly bigger one just because their sizes differ by many pixels.

Order of the anchors: location-major (row by row, then column), then anchor within the
location, matching the (H, W, A) layout a head's output is reshaped to.

Shapes: A anchors per location, h, w a feature map's height and width, H, W the image's.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from dlcamp.errors import UsageError

__all__ = [
    "AnchorGenerator",
    "anchor_shapes",
    "best_anchor_iou",
    "centred_boxes",
    "default_boxes",
    "grid_anchors",
    "kmeans_anchors",
    "num_default_boxes",
]


def anchor_shapes(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """(w, h) (A, 2) of each size x aspect ratio (ratio = h / w, area = size^2), size-major."""
    wh = []
    for size in sizes:
        for ratio in aspect_ratios:
            wh.append((size / math.sqrt(ratio), size * math.sqrt(ratio)))
    return torch.tensor(wh, dtype=torch.float32)


def centred_boxes(wh: Tensor) -> Tensor:
    """Boxes (A, 4) xyxy of shapes ``wh`` (A, 2) centred on the origin."""
    return torch.cat((-wh / 2, wh / 2), dim=-1)


def _cell_anchors(
    sizes: Sequence[float], aspect_ratios: Sequence[float], dtype: torch.dtype, device: torch.device | None
) -> Tensor:
    """torchvision's (A, 4) anchors around (0, 0), A = len(aspect_ratios) * len(sizes), ratio-major, rounded."""
    sizes_t = torch.as_tensor(sizes, dtype=dtype, device=device)
    ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
    # height / width = r with width * height = size^2: height = size sqrt(r), width = size / sqrt(r).
    height_factor = torch.sqrt(ratios)
    width_factor = 1 / height_factor
    widths = (width_factor[:, None] * sizes_t[None, :]).reshape(-1)  # (A,)
    heights = (height_factor[:, None] * sizes_t[None, :]).reshape(-1)  # (A,)
    return centred_boxes(torch.stack((widths, heights), dim=1)).round()


def grid_anchors(
    cell_anchors: Tensor,
    feature_size: tuple[int, int],
    stride: float | tuple[float, float],
    *,
    offset: float = 0.5,
) -> Tensor:
    """Anchors (h * w * A, 4) xyxy: the A boxes ``cell_anchors`` (A, 4) around the origin, on every cell.

    ``feature_size`` is the map's (h, w), ``stride`` its (sy, sx) in pixels (one number for
    both); the boxes of cell (i, j) are shifted by ((j + offset) sx, (i + offset) sy).
    Location-major, then anchor; dtype and device are those of ``cell_anchors``.
    """
    if cell_anchors.dim() != 2 or cell_anchors.shape[1] != 4 or len(cell_anchors) == 0:
        raise UsageError(f"grid_anchors needs cell anchors (A, 4) with A >= 1, got {tuple(cell_anchors.shape)}")
    height, width = feature_size
    stride_y, stride_x = (stride, stride) if isinstance(stride, (int, float)) else stride
    dtype, device = cell_anchors.dtype, cell_anchors.device
    shift_x = (torch.arange(width, device=device, dtype=dtype) + offset) * stride_x  # (w,)
    shift_y = (torch.arange(height, device=device, dtype=dtype) + offset) * stride_y  # (h,)
    grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing="ij")  # (h, w) each
    shifts = torch.stack((grid_x, grid_y, grid_x, grid_y), dim=-1).reshape(-1, 1, 4)  # (h * w, 1, 4)
    return (shifts + cell_anchors[None]).reshape(-1, 4)  # (h * w * A, 4)


class AnchorGenerator:
    """Faster R-CNN anchors for several feature maps (one tuple of sizes per map).

    Args:
        sizes: per level, the anchor sizes (square root of the area) in pixels, e.g.
            ((32,), (64,), (128,), (256,), (512,)) for an FPN, or ((128, 256, 512),).
        aspect_ratios: height / width ratios, one tuple per level, or one tuple for all.

    ``__call__(image_size, feature_sizes)`` returns the anchors of all levels,
    concatenated level by level, each level's stride being image_size // feature_size.
    """

    def __init__(
        self,
        sizes: tuple[tuple[float, ...], ...] = ((128.0, 256.0, 512.0),),
        aspect_ratios: tuple[float, ...] | tuple[tuple[float, ...], ...] = (0.5, 1.0, 2.0),
    ) -> None:
        if not isinstance(aspect_ratios[0], (tuple, list)):
            aspect_ratios = (tuple(aspect_ratios),) * len(sizes)
        if len(aspect_ratios) != len(sizes):
            raise UsageError(
                f"AnchorGenerator got {len(sizes)} levels of sizes but {len(aspect_ratios)} of aspect ratios"
            )
        self.sizes = tuple(tuple(level) for level in sizes)
        self.aspect_ratios = tuple(tuple(level) for level in aspect_ratios)

    def __repr__(self) -> str:
        return f"AnchorGenerator(sizes={self.sizes}, aspect_ratios={self.aspect_ratios})"

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def __call__(
        self,
        image_size: tuple[int, int],
        feature_sizes: Sequence[tuple[int, int]],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        if len(feature_sizes) != len(self.sizes):
            raise UsageError(f"AnchorGenerator has {len(self.sizes)} levels but got {len(feature_sizes)} feature maps")
        image_h, image_w = image_size
        levels = [
            grid_anchors(_cell_anchors(sizes, ratios, dtype, device), (h, w), (image_h // h, image_w // w), offset=0.0)
            for (h, w), sizes, ratios in zip(feature_sizes, self.sizes, self.aspect_ratios)
        ]
        return torch.cat(levels)


def num_default_boxes(aspect_ratios: Sequence[Sequence[float]]) -> list[int]:
    """Default boxes per location of each level: 2 squares + 2 per aspect ratio (r and 1 / r)."""
    return [2 + 2 * len(ratios) for ratios in aspect_ratios]


def default_boxes(
    feature_sizes: Sequence[tuple[int, int]],
    image_size: tuple[int, int],
    scales: Sequence[float],
    aspect_ratios: Sequence[Sequence[float]],
    clip: bool = True,
) -> Tensor:
    """SSD's default boxes (N, 4) xyxy in pixels, level by level, location-major, then box.

    Args:
        feature_sizes: (h_k, w_k) of each level's feature map.
        image_size: (H, W) of the image, to scale the fractions to pixels.
        scales: s_0, ..., s_L as fractions of the image side, one more than the levels (the
            last only sets the last level's in-between square).
        aspect_ratios: per level, the ratios r (each adds r and 1 / r), e.g. [[2], [2, 3], ...].
        clip: clamp each box's width and height to at most the image (a fraction of 1),
            as torchvision's ``DefaultBoxGenerator(clip=True)`` does; the centres are
            not moved, so a clipped box can still reach past the border.

    Per location the boxes come in the order s_k, sqrt(s_k s_{k+1}), then
    (s_k sqrt(r), s_k / sqrt(r)) and its transpose for each r.
    """
    if len(scales) != len(feature_sizes) + 1:
        raise UsageError(
            f"default_boxes needs len(feature_sizes) + 1 = {len(feature_sizes) + 1} scales, got {len(scales)}"
        )
    if len(aspect_ratios) != len(feature_sizes):
        raise UsageError(
            f"default_boxes needs one list of aspect ratios per level ({len(feature_sizes)}), got {len(aspect_ratios)}"
        )
    image_h, image_w = image_size
    levels = []
    for k, (h, w) in enumerate(feature_sizes):
        s_k = scales[k]
        between = math.sqrt(scales[k] * scales[k + 1])
        sizes = [[s_k, s_k], [between, between]]
        for ratio in aspect_ratios[k]:
            root = math.sqrt(ratio)
            sizes += [[s_k * root, s_k / root], [s_k / root, s_k * root]]
        wh = torch.tensor(sizes, dtype=torch.float32)  # (A, 2) fractions of the image
        if clip:
            wh = wh.clamp(min=0, max=1)
        centre_x = ((torch.arange(w) + 0.5) / w).float()
        centre_y = ((torch.arange(h) + 0.5) / h).float()
        grid_y, grid_x = torch.meshgrid(centre_y, centre_x, indexing="ij")  # (h, w) each
        centres = torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 1, 2)  # (h * w, 1, 2)
        half = 0.5 * wh[None]  # (1, A, 2)
        levels.append(torch.cat((centres - half, centres + half), dim=-1).reshape(-1, 4))  # (h * w * A, 4)
    boxes = torch.cat(levels)
    return boxes * torch.tensor([image_w, image_h, image_w, image_h])


def _centred_iou(wh: Tensor, anchors_wh: Tensor) -> Tensor:
    """IoU (N, k) of boxes (N, 2) and anchor shapes (k, 2), both centred on the same point."""
    inter = torch.min(wh[:, None, 0], anchors_wh[None, :, 0]) * torch.min(wh[:, None, 1], anchors_wh[None, :, 1])
    union = (wh[:, 0] * wh[:, 1])[:, None] + (anchors_wh[:, 0] * anchors_wh[:, 1])[None, :] - inter
    return inter / union


def best_anchor_iou(wh: Tensor, anchors_wh: Tensor) -> Tensor:
    """Each box's IoU (N,) with the anchor shape that fits it best, centres aligned."""
    return _centred_iou(wh, anchors_wh).max(dim=1).values


def kmeans_anchors(wh: Tensor, k: int, *, iters: int = 100, seed: int = 0) -> Tensor:
    """k anchor shapes (k, 2) (width, height), sorted by area, by k-means on boxes' (N, 2) shapes.

    Distance is 1 - IoU of centre-aligned boxes; the centres start k-means++ style (each
    next one drawn with probability proportional to its squared distance from the
    nearest centre so far), from a ``torch.Generator`` seeded with ``seed``; each
    iteration assigns every box to its closest centre and moves each centre to the mean
    shape of its boxes (an emptied cluster keeps its centre), until nothing changes.
    """
    if wh.dim() != 2 or wh.shape[1] != 2:
        raise UsageError(f"kmeans_anchors needs box shapes (N, 2), got {tuple(wh.shape)}")
    if not 1 <= k <= wh.shape[0]:
        raise UsageError(f"kmeans_anchors needs 1 <= k <= N = {wh.shape[0]} boxes, got k={k}")
    if bool((wh <= 0).any()):
        raise UsageError("kmeans_anchors needs positive widths and heights")
    wh = wh.double()
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(wh.shape[0], (1,), generator=generator)
    centres = wh[first]  # (1, 2)
    while centres.shape[0] < k:
        distance = 1 - _centred_iou(wh, centres).max(dim=1).values  # (N,)
        weights = distance**2
        if float(weights.sum()) <= 0:  # fewer distinct shapes than k: draw uniformly
            weights = torch.ones_like(weights)
        pick = torch.multinomial(weights.cpu(), 1, generator=generator).to(wh.device)
        centres = torch.cat((centres, wh[pick]))
    assignment = None
    for _ in range(iters):
        new_assignment = _centred_iou(wh, centres).argmax(dim=1)  # (N,)
        if assignment is not None and torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
        counts = torch.bincount(assignment, minlength=k).to(wh.dtype)  # (k,)
        sums = torch.zeros_like(centres).index_add_(0, assignment, wh)  # (k, 2)
        filled = counts > 0
        centres = torch.where(filled[:, None], sums / counts.clamp(min=1)[:, None], centres)
    areas = centres[:, 0] * centres[:, 1]
    return centres[areas.argsort()].float()
