"""Greedy non-maximum suppression, in blocks, in plain torch.

A detector proposes many overlapping boxes for one object. Greedy NMS keeps the best of
each cluster: walk the boxes from the highest score down, keep a box unless a box
already kept overlaps it with IoU > ``iou_threshold``, and discard it otherwise. The
rule goes back to the sliding-window detectors (Felzenszwalb et al. 2010, "Object
Detection with Discriminatively Trained Part-Based Models"; Dalal and Triggs 2005) and
is the last step of R-CNN, SSD and YOLO.

The walk is sequential by nature: whether box j survives depends on which of the boxes
before it survived. Done naively in Python it is one step per box; done with an N x N
IoU matrix it needs N^2 memory (10 GB of IoUs at N = 50,000). Here it runs in blocks of
``BLOCK`` boxes, in score order:

1. *Against earlier blocks.* Every box kept so far comes before the whole block, so it
   suppresses a box of the block exactly when their IoU exceeds the threshold; one
   vectorised comparison, in chunks of kept boxes, settles that for the whole block.
   Boxes knocked out here are dropped before the next chunk, so later chunks compare
   fewer pairs.
2. *Within the block.* For the c survivors, build the c x c matrix S[i, j] = "i comes
   before j and IoU(i, j) > threshold". The kept set is the unique solution of
   keep[j] = not any_i (keep[i] and S[i, j]): a triangular system, since keep[j] only
   depends on earlier boxes. Start from keep = all and iterate the equation (one
   matrix-vector product per sweep): after sweep t the first t boxes are certainly
   right, and in practice the iteration settles after a handful of sweeps (it needs as
   many as the longest chain "a suppresses b, which would have suppressed c, ...").

Memory is O(N + BLOCK^2 + CHUNK_PAIRS) (about 4 MB for the in-block matrix at the
default 1024), never N x N; time is O(N * K) comparisons for K kept boxes, the same
order as torchvision's CPU kernel, which loops over the same pairs one at a time in C++.
On one CPU thread the two run about equally fast from 10,000 boxes up; with few boxes
the fixed cost of launching torch operations dominates ours.

Agreement with ``torchvision.ops.nms`` is exact, not approximate: scores are sorted
descending with a *stable* sort (equal scores keep their input order, as in
torchvision's CPU kernel), the IoU is computed with the same float operations in the
boxes' dtype (inter / (area_i + area_j - inter)), and suppression is strict
(IoU > threshold: with threshold 1 even identical boxes survive). Zero-area boxes give
0 / 0 = NaN, which is never > threshold, so they are never suppressed, as in torchvision.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlcamp.errors import UsageError

__all__ = ["batched_nms", "nms"]

BLOCK = 1024  # boxes settled together
CHUNK_PAIRS = 1 << 18  # kept-vs-block pairs compared per step (~1 MB per temporary)


def _strict_threshold(iou_threshold: float, dtype: torch.dtype) -> float:
    """The largest value t' of ``dtype`` with t' <= t, so that "iou > t'" in dtype means iou > t.

    torch compares a float32 tensor with a Python float after rounding the float to
    float32; if t rounds up (0.7 -> 0.70000002), an IoU equal to the rounded value
    would be > t in exact arithmetic (torchvision's comparison) but not > the rounded t.
    """
    rounded = torch.tensor(iou_threshold, dtype=torch.float64).to(dtype)
    if rounded.double().item() > iou_threshold:
        rounded = torch.nextafter(rounded, torch.tensor(float("-inf"), dtype=dtype))
    return rounded.item()


def _overlaps(coords1: Tensor, areas1: Tensor, coords2: Tensor, areas2: Tensor, threshold: float) -> Tensor:
    """(N, M) bool: IoU(box1[i], box2[j]) > threshold, with torchvision's float operations.

    Boxes come as columns, coords (4, N) = (x1, y1, x2, y2) rows, each contiguous, which
    broadcasts faster than the columns of an (N, 4) tensor.
    """
    x1, y1, x2, y2 = coords1[:, :, None]  # (N, 1) each
    xx1, yy1, xx2, yy2 = coords2[:, None, :]  # (1, M) each
    # The same arithmetic, in the same order, as torchvision's kernel, so ties at the
    # threshold round the same way: inter = max(0, xx2 - xx1) * max(0, yy2 - yy1).
    width = torch.minimum(x2, xx2).sub_(torch.maximum(x1, xx1)).clamp_(min=0)  # (N, M)
    height = torch.minimum(y2, yy2).sub_(torch.maximum(y1, yy1)).clamp_(min=0)  # (N, M)
    inter = width.mul_(height)
    union = torch.add(areas1[:, None], areas2[None, :]).sub_(inter)
    return inter.div_(union) > threshold


def _keep_mask_sorted(boxes: Tensor, threshold: float) -> Tensor:
    """Greedy NMS of boxes (N, 4) already in decreasing score order -> keep mask (N,)."""
    num_boxes = boxes.shape[0]
    coords = boxes.T.contiguous()  # (4, N)
    areas = (coords[2] - coords[0]) * (coords[3] - coords[1])  # (N,)
    keep = torch.zeros(num_boxes, dtype=torch.bool, device=boxes.device)
    kept_coords = coords[:, :0]  # (4, K)
    kept_areas = areas[:0]  # (K,)
    for start in range(0, num_boxes, BLOCK):
        # (1) Suppression by the boxes kept in earlier blocks.
        candidates = torch.arange(start, min(start + BLOCK, num_boxes), device=boxes.device)
        chunk = max(1, CHUNK_PAIRS // candidates.numel())
        for k in range(0, kept_areas.shape[0], chunk):
            suppressed = _overlaps(
                kept_coords[:, k : k + chunk],
                kept_areas[k : k + chunk],
                coords[:, candidates],
                areas[candidates],
                threshold,
            ).any(dim=0)
            candidates = candidates[~suppressed]
            if candidates.numel() == 0:
                break
            chunk = max(1, CHUNK_PAIRS // candidates.numel())
        if candidates.numel() == 0:
            continue
        # (2) Greedy NMS among the survivors, as a fixed point of the triangular system.
        block_coords, block_areas = coords[:, candidates], areas[candidates]
        beats = _overlaps(block_coords, block_areas, block_coords, block_areas, threshold).triu_(diagonal=1).float()
        block_keep = torch.ones(candidates.numel(), dtype=torch.bool, device=boxes.device)
        while True:
            # beats[i, j] = 1 when i is earlier and overlaps j; j falls if a kept i beats it.
            updated = (block_keep.float() @ beats) == 0  # (c,)
            if torch.equal(updated, block_keep):
                break
            block_keep = updated
        kept = candidates[block_keep]
        keep[kept] = True
        kept_coords = torch.cat((kept_coords, coords[:, kept]), dim=1)
        kept_areas = torch.cat((kept_areas, areas[kept]))
    return keep


def _check_inputs(boxes: Tensor, scores: Tensor) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise UsageError(f"boxes must be a (N, 4) tensor of (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise UsageError(f"scores must have shape ({boxes.shape[0]},) to match the boxes, got {tuple(scores.shape)}")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: indices (K,) int64 of the boxes kept, in decreasing score order.

    Args:
        boxes: (N, 4) boxes (x1, y1, x2, y2).
        scores: (N,) their scores.
        iou_threshold: a box is discarded when it overlaps a kept, higher-scoring box with
            IoU > iou_threshold.
    """
    _check_inputs(boxes, scores)
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    boxes = boxes if boxes.is_floating_point() else boxes.float()
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = _keep_mask_sorted(boxes[order], _strict_threshold(iou_threshold, boxes.dtype))
    return order[keep]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category: indices (K,) int64 of the boxes kept, in decreasing score order.

    Args:
        boxes: (N, 4) boxes (x1, y1, x2, y2).
        scores: (N,) their scores.
        idxs: (N,) the category of each box; boxes of different categories never
            suppress one another.
        iou_threshold: as in :func:`nms`.

    Two strategies, chosen by size exactly as torchvision chooses them, so that the kept
    indices agree with ``torchvision.ops.batched_nms`` bit for bit:

    - few boxes (at most 1000 on CPU, 25,000 on GPU): one NMS over all boxes, each
      shifted by (category * (largest coordinate + 1)) so that boxes of different
      categories cannot overlap (the "coordinate trick"). The shift costs a little float
      precision at large offsets, which torchvision accepts too.
    - more boxes: one NMS per category, merged and sorted by score. Equal scores of
      different categories come out in ``torch.sort``'s (unstable but deterministic)
      order, as in torchvision.
    """
    _check_inputs(boxes, scores)
    if idxs.shape != scores.shape:
        raise UsageError(f"idxs must have shape ({boxes.shape[0]},) to match the boxes, got {tuple(idxs.shape)}")
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 100_000):
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for category in torch.unique(idxs):
            members = torch.where(idxs == category)[0]
            keep_mask[members[nms(boxes[members], scores[members], iou_threshold)]] = True
        kept = torch.where(keep_mask)[0]
        # torchvision's (unstable) sort, so equal scores of different categories come out
        # in the same order as there.
        return kept[torch.sort(scores[kept], descending=True).indices]
    offsets = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)
