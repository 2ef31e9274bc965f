"""Box geometry: formats, areas, overlaps (IoU and generalised IoU), clipping and filtering.

Every detector compares boxes by their intersection over union,

    IoU(a, b) = |a ∩ b| / |a ∪ b|,

which is 1 for identical boxes and 0 for disjoint ones, whatever their scale. Its flaw as
a training signal is that it is flat (zero) for every pair of disjoint boxes, so it says
nothing about how far apart they are. The generalised IoU of Rezatofighi et al.
("Generalized Intersection over Union: A Metric and A Loss for Bounding Box Regression",
2019, arXiv:1902.09630) subtracts the fraction of the smallest enclosing box C that the
union leaves empty,

    GIoU(a, b) = IoU(a, b) - |C \\ (a ∪ b)| / |C|,   in [-1, 1],

which keeps falling as disjoint boxes move apart, so ``1 - GIoU`` is a usable loss.

Boxes are float tensors (..., 4) in (x1, y1, x2, y2) ("xyxy") unless a format says
otherwise; "xywh" is (x1, y1, width, height) and "cxcywh" is (centre x, centre y, width,
height). Degenerate boxes (zero width or height) are allowed: where a union (or an
enclosing box) has zero area, the overlap is defined as 0 rather than the 0 / 0 = NaN a
plain division would give.

Shapes: N, M numbers of boxes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlcamp.errors import UsageError

__all__ = [
    "BOX_FORMATS",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes_to_image",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "remove_small_boxes",
]

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(boxes: Tensor, name: str = "boxes") -> None:
    if boxes.shape[-1:] != (4,):
        raise UsageError(f"{name} must have 4 numbers in their last dimension, got shape {tuple(boxes.shape)}")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes (..., 4) between the "xyxy", "xywh" and "cxcywh" formats."""
    for fmt in (in_fmt, out_fmt):
        if fmt not in BOX_FORMATS:
            raise UsageError(f"unknown box format {fmt!r}; expected one of {', '.join(BOX_FORMATS)}")
    _check_boxes(boxes)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    # Go through xyxy, the one format every other converts to and from.
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """Areas (...) of xyxy boxes (..., 4): (x2 - x1) * (y2 - y1)."""
    _check_boxes(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _upcast(boxes: Tensor) -> Tensor:
    # Integer boxes would overflow or truncate in the products and quotients below.
    return boxes if boxes.is_floating_point() else boxes.float()


def _pairwise_inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Intersection and union areas of every pair, both (N, M)."""
    area1, area2 = box_area(boxes1), box_area(boxes2)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)  # (N, M, 2)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    union = area1[:, None] + area2[None, :] - inter
    return inter, union


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, and 0 where the denominator is 0 (a degenerate box)."""
    zero = denominator == 0
    return torch.where(zero, torch.zeros_like(numerator), numerator / torch.where(zero, 1, denominator))


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of every pair: boxes1 (N, 4), boxes2 (M, 4) xyxy -> (N, M), 0 where the union is empty."""
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    inter, union = _pairwise_inter_union(_upcast(boxes1), _upcast(boxes2))
    return _safe_divide(inter, union)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """GIoU of every pair: boxes1 (N, 4), boxes2 (M, 4) xyxy -> (N, M), in [-1, 1].

    Where both boxes collapse onto the same point or line, so the enclosing box is empty
    too, the GIoU is 0 (its IoU) rather than NaN.
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    inter, union = _pairwise_inter_union(boxes1, boxes2)
    iou = _safe_divide(inter, union)
    top_left = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]  # (N, M)
    return iou - _safe_divide(enclosing - union, enclosing)


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - GIoU of matched pairs: boxes1[i] against boxes2[i], both (..., 4) xyxy.

    As in torchvision, ``eps`` is added to both denominators so that the loss (and its
    gradient) stays finite for degenerate boxes. ``reduction`` is "none", "mean" or "sum".
    """
    if reduction not in ("none", "mean", "sum"):
        raise UsageError(f"unknown reduction {reduction!r}; expected 'none', 'mean' or 'sum'")
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    inter = (torch.min(x2, x2g) - torch.max(x1, x1g)).clamp(min=0) * (torch.min(y2, y2g) - torch.max(y1, y1g)).clamp(
        min=0
    )
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + eps)
    enclosing = (torch.max(x2, x2g) - torch.min(x1, x1g)) * (torch.max(y2, y2g) - torch.min(y1, y1g))
    loss = 1 - (iou - (enclosing - union) / (enclosing + eps))
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clamp xyxy boxes (..., 4) into an image of ``size`` = (H, W): x into [0, W], y into [0, H]."""
    _check_boxes(boxes)
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices (K,) of the boxes (N, 4) whose width and height are both at least ``min_size``."""
    _check_boxes(boxes)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.where((widths >= min_size) & (heights >= min_size))[0]
