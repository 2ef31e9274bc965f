"""Box coding: a box as an offset from an anchor, the regression target of a detector.

A detector does not regress box corners in pixels; it regresses how far a box is from a
reference box (an anchor, a default box, a proposal). With the anchor's centre
(xa, ya), width wa and height ha, and the box's (x, y, w, h), the "log" parametrisation
of R-CNN (Girshick et al., "Rich feature hierarchies for accurate object detection and
semantic segmentation", 2014, arXiv:1311.2524; kept by Fast/Faster R-CNN and SSD) is

    dx = wx (x - xa) / wa,      dy = wy (y - ya) / ha,
    dw = ww log(w / wa),        dh = wh log(h / ha).

Why divide by the anchor's size: a 10-pixel shift matters for a 20-pixel box and not for
a 500-pixel one, so offsets are measured in anchor widths, which makes the targets of
small and large anchors comparable. Why the logarithm: a box twice as wide and a box
half as wide are equally far from the anchor (+log 2, -log 2), and any real dw decodes
to a positive width exp(dw) * wa. The weights (wx, wy, ww, wh), e.g. (10, 10, 5, 5) in
Faster R-CNN's box head, scale the targets to roughly unit variance so that the
regression loss weighs the four numbers alike.

On decoding, dw and dh are clamped at ``clip`` (log(1000 / 16) by default, a box at most
62.5 times its anchor) before the exponential, so an untrained head cannot produce
infinite boxes.

The "linear" scale is the ablation: dw = ww (w - wa) / wa and decoded w = wa (1 + dw / ww),
clamped at 0; it treats growing and shrinking asymmetrically and can decode negative
sizes, which is what the logarithm avoids.

Boxes are (..., 4) (x1, y1, x2, y2); deltas are (..., 4) (dx, dy, dw, dh). Leading
dimensions broadcast between boxes and anchors.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from dlcamp.errors import UsageError

__all__ = ["BoxCoder"]

SCALES = ("log", "linear")


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * widths, boxes[..., 1] + 0.5 * heights, widths, heights


class BoxCoder:
    """Encode boxes as deltas from anchors, and decode deltas back to boxes."""

    def __init__(
        self,
        weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        scale: str = "log",
        clip: float = math.log(1000.0 / 16),
    ) -> None:
        if scale not in SCALES:
            raise UsageError(f"unknown box coding scale {scale!r}; expected 'log' or 'linear'")
        if len(weights) != 4:
            raise UsageError(f"BoxCoder needs 4 weights (wx, wy, ww, wh), got {tuple(weights)}")
        self.weights = tuple(float(w) for w in weights)
        self.scale = scale
        self.clip = clip

    def __repr__(self) -> str:
        return f"BoxCoder(weights={self.weights}, scale={self.scale!r}, clip={self.clip:.4g})"

    def encode(self, boxes: Tensor, anchors: Tensor) -> Tensor:
        """Deltas (..., 4) that take ``anchors`` (..., 4) to ``boxes`` (..., 4)."""
        anchors = anchors.to(boxes.dtype)
        wx, wy, ww, wh = self.weights
        x, y, w, h = _centre_size(boxes)
        xa, ya, wa, ha = _centre_size(anchors)
        dx = wx * (x - xa) / wa
        dy = wy * (y - ya) / ha
        if self.scale == "log":
            dw = ww * torch.log(w / wa)
            dh = wh * torch.log(h / ha)
        else:
            dw = ww * (w - wa) / wa
            dh = wh * (h - ha) / ha
        return torch.stack((dx, dy, dw, dh), dim=-1)

    def decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        """Boxes (..., 4) given by ``deltas`` (..., 4) applied to ``anchors`` (..., 4)."""
        anchors = anchors.to(deltas.dtype)
        wx, wy, ww, wh = self.weights
        xa, ya, wa, ha = _centre_size(anchors)
        dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
        dw, dh = deltas[..., 2] / ww, deltas[..., 3] / wh
        x = dx * wa + xa
        y = dy * ha + ya
        if self.scale == "log":
            w = torch.exp(dw.clamp(max=self.clip)) * wa
            h = torch.exp(dh.clamp(max=self.clip)) * ha
        else:
            w = (wa * (1 + dw)).clamp(min=0)
            h = (ha * (1 + dh)).clamp(min=0)
        return torch.stack((x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h), dim=-1)
