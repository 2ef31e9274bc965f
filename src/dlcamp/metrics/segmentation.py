"""Semantic segmentation metrics: one confusion matrix over the whole dataset, and what it gives.

Every score is read from a K x K confusion matrix accumulated over all pixels of all images
(rows: true class, columns: predicted class), pixels labelled ``ignore_index`` left out:

- IoU of class k = TP / (TP + FP + FN), the Jaccard index of its predicted and true pixels;
- mIoU = the mean of the per-class IoUs over the classes that occur at all (in the labels or
  in the predictions), the PASCAL VOC / Cityscapes convention, equal to torchmetrics'
  ``MulticlassJaccardIndex(average="macro", ignore_index=...)``. Not torchmetrics'
  ``MeanIoU``, which averages per image: a class absent from an image then weighs as much
  as one that covers it;
- pixel accuracy = trace / total, and mean class accuracy = the mean of per-class recalls.

Boundary mIoU (the "trimap" evaluation of Kohli et al. 2009, used by DeepLab, Chen et al.
2015, to show where upsampling loses detail): the same mIoU over only the pixels within
``band`` pixels (Euclidean) of a class boundary in the labels. FCN-32s's one coarse
upsampling should lose most there; the skips of 16s and 8s should win it back.

Legend: B batch, K classes, H, W height and width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """Counts [K, K] (true class, predicted class) over the pixels whose label is not ``ignore_index``."""
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"label ids must be in 0..{num_classes - 1} or {ignore_index}, got {int(t.max())}")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores(cm: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """mIoU, pixel accuracy, mean class accuracy and per-class IoU (``iou/<k>``, NaN when absent) from counts."""
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
    support = cm.sum(1)
    recall = tp[support > 0] / support[support > 0]
    total = cm.sum()
    out = {
        f"{prefix}miou": float(iou[present].mean()) if present.any() else math.nan,
        f"{prefix}pixel_acc": float(tp.sum() / total) if total > 0 else math.nan,
        f"{prefix}mean_acc": float(recall.mean()) if recall.numel() else math.nan,
    }
    out.update({f"{prefix}iou/{k}": float(v) for k, v in enumerate(iou)})
    return out


def boundary_band(target: torch.Tensor, band: int, ignore_index: int) -> torch.Tensor:
    """bool [B, H, W]: pixels within ``band`` px (Euclidean) of a pixel whose 4-neighbour has another label.

    A label next to an ignored pixel is not a boundary (VOC outlines every object with 255:
    the object's edge is then the ignored band's edge, found from the other side too).
    """
    t = target.long()
    edge = torch.zeros_like(t, dtype=torch.bool)
    valid = t != ignore_index
    for dy, dx in ((0, 1), (1, 0)):
        a = t[:, : t.shape[1] - dy, : t.shape[2] - dx]
        b = t[:, dy:, dx:]
        ok = valid[:, : t.shape[1] - dy, : t.shape[2] - dx] & valid[:, dy:, dx:]
        differ = (a != b) & ok
        edge[:, : t.shape[1] - dy, : t.shape[2] - dx] |= differ
        edge[:, dy:, dx:] |= differ
    if band <= 0:
        return edge
    r = torch.arange(-band, band + 1, dtype=torch.float32)
    disk = ((r[:, None] ** 2 + r[None, :] ** 2) <= band**2).float()[None, None]  # (1, 1, 2b+1, 2b+1)
    near = F.conv2d(edge[:, None].float(), disk, padding=band)[:, 0] > 0.5
    return near


class SegmentationMeter:
    """Accumulates the confusion matrix of all pixels, and of the pixels near class boundaries."""

    def __init__(self, num_classes: int, ignore_index: int = 255, band: int = 3) -> None:
        self.num_classes, self.ignore_index, self.band = num_classes, ignore_index, band
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.band_cm = torch.zeros_like(self.cm)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred``: class ids [B, H, W] (or logits [B, K, H, W]); ``target``: labels [B, H, W]."""
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(1)
        pred, target = pred.cpu(), target.cpu()
        self.cm += confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        near = boundary_band(target, self.band, self.ignore_index)
        banded = torch.where(near, target, torch.full_like(target, self.ignore_index))
        self.band_cm += confusion_matrix(pred, banded, self.num_classes, self.ignore_index)

    def compute(self, prefix: str = "") -> dict[str, float]:
        """``{prefix}miou``, ``pixel_acc``, ``mean_acc``, ``iou/<k>``, and ``boundary_miou`` (within ``band`` px)."""
        out = scores(self.cm, prefix)
        out[f"{prefix}boundary_miou"] = scores(self.band_cm)["miou"]
        out[f"{prefix}boundary_pixels"] = float(self.band_cm.sum())
        return out


__all__ = ["SegmentationMeter", "boundary_band", "confusion_matrix", "scores"]
