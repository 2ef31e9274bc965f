"""COCO mean average precision for boxes, written out, and the same number from pycocotools.

Reference: "Microsoft COCO: Common Objects in Context", Tsung-Yi Lin, Michael Maire, Serge
Belongie, Lubomir Bourdev, Ross Girshick, James Hays, Pietro Perona, Deva Ramanan, C. Lawrence
Zitnick and Piotr Dollár, 2014, arXiv:1405.0312; the protocol is the one of the COCO
detection challenge as its toolkit (pycocotools' ``COCOeval``) computes it.

Intuition: a detector hands back boxes with scores. Sweep a threshold down the scores:
every box above it is either a true positive (it covers an object no higher-scored box
has claimed, with IoU at least t) or a false positive. Precision (how many of the boxes
kept are right) falls and recall (how many objects are found) rises as the threshold
drops; average precision is the area under that precision-recall curve, and COCO's mAP
averages it over the classes and over ten IoU thresholds t = .50, .55, ..., .95, so a
detector is paid for boxes that are tight, not just roughly on the object.

The protocol, step by step (area range "all", at most ``max_dets`` boxes per image and class):

1. Per (image, class), detections sorted by score (stable: ties keep their order) and cut
   to ``max_dets``; ground truths with the crowd ones last.
2. At each IoU threshold, each detection in score order takes the unmatched ground truth
   of highest IoU >= t (on equal IoU, the later one). Ordinary objects are tried first; a
   crowd region only when no ordinary object qualifies, and a crowd region may take any
   number of detections. IoU with a crowd region is intersection over the detection's
   area (a box inside a crowd of people is on the crowd, however small it is).
3. A detection on a crowd region is ignored: neither true nor false positive. Crowd
   regions do not count as objects to find.
4. Per class, all images' detections sorted by score; cumulative true and false
   positives give recall = TP / objects and precision = TP / (TP + FP).
5. Precision is made monotone (at each recall, the best precision at that recall or
   beyond: the "interpolated" curve) and read at 101 recall points 0, .01, ..., 1 (the
   first detection reaching that recall; 0 past the last one reached); AP is their mean.
6. A class with no object in the data is left out of the mean (pycocotools writes -1);
   a class with objects but no detections has AP 0.

Boxes are compared in COCO's own (x, y, w, h) form, in float64, with no "+1" on widths, so
that the IoUs, and hence every match, are bit for bit those of pycocotools. The matching is
vectorised over the IoU thresholds and over all (image, class) pairs at once, looping only
over a detection's rank within its image (at most ``max_dets`` steps).

Shapes: T IoU thresholds (10), R recall points (101), K classes, D detections, G ground
truths, n (image, class) pairs.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["IOU_THRESHOLDS", "RECALL_THRESHOLDS", "coco_evaluate", "pycocotools_evaluate", "to_coco_results"]

# Exactly pycocotools' values: linspace, not arange (arange's .95 lands a hair above).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # (T,)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)  # (R,)
AREA_RANGE = (0.0, 1e5**2)  # COCO's "all"
_PAIR_BUDGET = 1 << 20  # padded detection x ground-truth cells matched at once (memory bound)


# --------------------------------------------------------------------------- inputs


def _xywh(boxes: torch.Tensor) -> np.ndarray:
    """(x1, y1, x2, y2) Tensor[N, 4] -> COCO's (x, y, w, h) float64 array [N, 4].

    The one conversion used both here and for the results handed to pycocotools, so both
    see the very same numbers.
    """
    b = boxes.detach().cpu().to(torch.float64).reshape(-1, 4).numpy()
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def _check_boxes(boxes: Any, where: str) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor):
        raise ValueError(f"{where}['boxes'] must be a Tensor[N, 4], got {type(boxes).__name__}")
    if boxes.numel() == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}['boxes'] must have shape [N, 4] (x1, y1, x2, y2), got {list(boxes.shape)}")
    return boxes


def _check_labels(labels: Any, n: int, num_classes: int, where: str) -> np.ndarray:
    labels = torch.as_tensor(labels).detach().cpu().reshape(-1)
    if labels.numel() != n:
        raise ValueError(f"{where}['labels'] has {labels.numel()} entries for {n} boxes")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{where}['labels'] must lie in 0..{num_classes - 1} (num_classes={num_classes}), "
            f"got values {labels.min().item()}..{labels.max().item()}"
        )
    return labels.long().numpy()


def _parse(predictions: Sequence[dict], targets: Sequence[dict], num_classes: int) -> dict[str, np.ndarray]:
    """Check the inputs and flatten them into per-box arrays (float64 xywh, labels, ...)."""
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predictions for {len(targets)} targets: pass one dict per image")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    image_ids = np.array([int(t["image_id"]) for t in targets], dtype=np.int64)
    if len(np.unique(image_ids)) != len(image_ids):
        raise ValueError("targets' image_id values must be unique (COCO merges images that share an id)")
    # pycocotools walks images in increasing id order; score ties across images follow it.
    image_rank = np.empty(len(image_ids), dtype=np.int64)
    image_rank[np.argsort(image_ids, kind="stable")] = np.arange(len(image_ids))

    gt, dt = [], []
    for i, (pred, target) in enumerate(zip(predictions, targets)):
        boxes = _check_boxes(target["boxes"], f"targets[{i}]")
        labels = _check_labels(target["labels"], len(boxes), num_classes, f"targets[{i}]")
        crowd = target.get("iscrowd")
        crowd = (
            np.zeros(len(boxes), bool)
            if crowd is None
            else torch.as_tensor(crowd).cpu().reshape(-1).numpy().astype(bool)
        )
        if len(crowd) != len(boxes):
            raise ValueError(f"targets[{i}]['iscrowd'] has {len(crowd)} entries for {len(boxes)} boxes")
        gt.append((_xywh(boxes), labels, crowd, np.full(len(boxes), image_rank[i]), np.arange(len(boxes))))

        boxes = _check_boxes(pred["boxes"], f"predictions[{i}]")
        labels = _check_labels(pred["labels"], len(boxes), num_classes, f"predictions[{i}]")
        scores = torch.as_tensor(pred["scores"]).detach().cpu().to(torch.float64).reshape(-1).numpy()
        if len(scores) != len(boxes):
            raise ValueError(f"predictions[{i}]['scores'] has {len(scores)} entries for {len(boxes)} boxes")
        dt.append((_xywh(boxes), labels, scores, np.full(len(boxes), image_rank[i]), np.arange(len(boxes))))

    def cat(parts, j, dtype, shape=(0,)):
        return np.concatenate([p[j] for p in parts]) if parts else np.zeros(shape, dtype)

    return {
        "gt_xywh": cat(gt, 0, np.float64, (0, 4)),
        "gt_label": cat(gt, 1, np.int64),
        "gt_crowd": cat(gt, 2, bool),
        "gt_image": cat(gt, 3, np.int64),
        "gt_index": cat(gt, 4, np.int64),
        "dt_xywh": cat(dt, 0, np.float64, (0, 4)),
        "dt_label": cat(dt, 1, np.int64),
        "dt_score": cat(dt, 2, np.float64),
        "dt_image": cat(dt, 3, np.int64),
        "dt_index": cat(dt, 4, np.int64),
        "image_ids": image_ids,
    }


# --------------------------------------------------------------------------- IoU and matching


def box_iou_xywh(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of detections dt [..., D, 4] with ground truths gt [..., G, 4], both (x, y, w, h): [..., D, G].

    With a crowd ground truth (crowd [..., G] True) the union is the detection's own area.
    The arithmetic is written in pycocotools' order (right edge as w + x, union as
    (area_d + area_g) - inter) so the floats agree to the last bit.
    """
    dx, dy, dw, dh = (dt[..., :, None, j] for j in range(4))  # each (..., D, 1)
    gx, gy, gw, gh = (gt[..., None, :, j] for j in range(4))  # each (..., 1, G)
    iw = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    ih = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = iw * ih
    d_area = dw * dh
    union = np.where(crowd[..., None, :], d_area, d_area + gw * gh - inter)
    overlap = (iw > 0) & (ih > 0)
    return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)  # (..., D, G)


def _last_argmax(values: np.ndarray) -> np.ndarray:
    """Index of the maximum along the last axis, the LAST one on ties (COCO's matcher keeps the later gt)."""
    return values.shape[-1] - 1 - np.argmax(values[..., ::-1], axis=-1)


def _match(
    ious: np.ndarray, dt_valid: np.ndarray, gt_valid: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching at every IoU threshold for n (image, class) pairs at once.

    ious [n, D, G] with detections in score order, dt_valid [n, D] / gt_valid [n, G] mark the
    padding. Returns matched [n, T, D] (the detection took a ground truth) and on_ignored
    [n, T, D] (the one it took is ignored, a crowd region).
    """
    n, num_dt, num_gt = ious.shape
    T = len(IOU_THRESHOLDS)
    thresholds = IOU_THRESHOLDS[None, :, None]  # (1, T, 1)
    regular = (gt_valid & ~gt_ignore)[:, None, :]  # (n, 1, G)
    ignored = (gt_valid & gt_ignore)[:, None, :]
    reusable = gt_crowd[:, None, :]
    taken = np.zeros((n, T, num_gt), dtype=bool)
    matched = np.zeros((n, T, num_dt), dtype=bool)
    on_ignored = np.zeros((n, T, num_dt), dtype=bool)
    rows, cols = np.arange(n)[:, None], np.arange(T)[None, :]
    for d in range(num_dt):  # detections must go one after another: each one changes what is left
        iou = ious[:, None, d, :]  # (n, 1, G)
        free = (iou >= thresholds) & (~taken | reusable)  # (n, T, G)
        # An ordinary object beats any crowd region, whatever their IoUs.
        cand_regular, cand_ignored = free & regular, free & ignored
        has_regular, has_ignored = cand_regular.any(-1), cand_ignored.any(-1)  # (n, T)
        best = np.where(
            has_regular,
            _last_argmax(np.where(cand_regular, iou, -1.0)),
            _last_argmax(np.where(cand_ignored, iou, -1.0)),
        )  # (n, T)
        hit = (has_regular | has_ignored) & dt_valid[:, d, None]  # (n, T)
        matched[:, :, d] = hit
        on_ignored[:, :, d] = hit & ~has_regular
        taken[rows, cols, best] |= hit
    return matched, on_ignored


def _pad_index(starts: np.ndarray, counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row i: starts[i] + 0..width-1, valid below counts[i]; (index [n, width] clipped to valid, valid)."""
    offsets = np.arange(width)[None, :]
    valid = offsets < counts[:, None]
    return starts[:, None] + np.minimum(offsets, np.maximum(counts[:, None] - 1, 0)), valid


def _match_all(data: dict[str, np.ndarray], num_classes: int, max_dets: int) -> dict[str, np.ndarray]:
    """Sort, cut to max_dets, match every (image, class) pair; per kept detection: label, score, matched, ignored."""
    # Detections by image, class, score (stable: equal scores keep the order they came in).
    order = np.lexsort((data["dt_index"], -data["dt_score"], data["dt_label"], data["dt_image"]))
    dt_key = (data["dt_image"] * num_classes + data["dt_label"])[order]
    first = np.r_[True, dt_key[1:] != dt_key[:-1]] if len(dt_key) else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(dt_key)), 0)) if len(dt_key) else dt_key
    keep = np.arange(len(dt_key)) - group_start < max_dets
    order, dt_key = order[keep], dt_key[keep]
    dt_xywh, dt_label, dt_score = data["dt_xywh"][order], data["dt_label"][order], data["dt_score"][order]

    # Ground truths by image and class, in the order they came (on IoU ties that order
    # decides; ordinary before ignored is enforced in _match).
    gt_xywh = data["gt_xywh"]
    gt_area = gt_xywh[:, 2] * gt_xywh[:, 3]
    gt_ignore_all = data["gt_crowd"] | (gt_area < AREA_RANGE[0]) | (gt_area > AREA_RANGE[1])
    g_order = np.lexsort((data["gt_index"], data["gt_label"], data["gt_image"]))
    gt_key = (data["gt_image"] * num_classes + data["gt_label"])[g_order]
    gt_xywh, gt_crowd, gt_ignore = gt_xywh[g_order], data["gt_crowd"][g_order], gt_ignore_all[g_order]

    T = len(IOU_THRESHOLDS)
    matched = np.zeros((T, len(order)), dtype=bool)
    on_ignored = np.zeros((T, len(order)), dtype=bool)

    d_keys, d_starts, d_counts = np.unique(dt_key, return_index=True, return_counts=True)
    g_keys, g_starts, g_counts = np.unique(gt_key, return_index=True, return_counts=True)
    _, d_pos, g_pos = np.intersect1d(d_keys, g_keys, assume_unique=True, return_indices=True)
    d_starts, d_counts, g_starts, g_counts = d_starts[d_pos], d_counts[d_pos], g_starts[g_pos], g_counts[g_pos]

    # Pad pairs into [n, D, G] blocks; sorting by G keeps one busy image from padding all the others.
    by_size = np.argsort(g_counts, kind="stable")
    i = 0
    while i < len(by_size):
        j, width_d = i, 0
        while j < len(by_size):
            grown = max(width_d, d_counts[by_size[j]])
            if j > i and (j - i + 1) * grown * g_counts[by_size[j]] > _PAIR_BUDGET:
                break
            width_d, j = grown, j + 1
        chunk = by_size[i:j]
        width_g = int(g_counts[chunk].max())
        d_idx, d_valid = _pad_index(d_starts[chunk], d_counts[chunk], int(width_d))  # (n, D)
        g_idx, g_valid = _pad_index(g_starts[chunk], g_counts[chunk], width_g)  # (n, G)
        ious = box_iou_xywh(dt_xywh[d_idx], gt_xywh[g_idx], gt_crowd[g_idx])  # (n, D, G)
        m, ig = _match(ious, d_valid, g_valid, gt_ignore[g_idx] & g_valid, gt_crowd[g_idx] & g_valid)  # (n, T, D)
        flat = d_idx[d_valid]  # the kept-detection index of every valid (pair, rank)
        matched[:, flat] = m.transpose(1, 0, 2)[:, d_valid]  # (T, n, D) -> (T, valid)
        on_ignored[:, flat] = ig.transpose(1, 0, 2)[:, d_valid]
        i = j

    # An unmatched detection outside the area range is ignored too (never, for "all", but that is the rule).
    dt_area = dt_xywh[:, 2] * dt_xywh[:, 3]
    outside = (dt_area < AREA_RANGE[0]) | (dt_area > AREA_RANGE[1])
    ignored = on_ignored | (~matched & outside[None, :])
    num_objects = np.bincount(data["gt_label"][~gt_ignore_all], minlength=num_classes)
    return {"label": dt_label, "score": dt_score, "matched": matched, "ignored": ignored, "num_objects": num_objects}


# --------------------------------------------------------------------------- accumulation


def _accumulate(matches: dict[str, np.ndarray], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class precision [T, R, K] at the recall points and final recall [T, K]; -1 for a class with no object."""
    T, R = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    precision = -np.ones((T, R, num_classes))
    recall = -np.ones((T, num_classes))
    for k in range(num_classes):
        num_objects = int(matches["num_objects"][k])
        if num_objects == 0:
            continue
        sel = np.flatnonzero(matches["label"] == k)  # already in image order, score order within an image
        sel = sel[np.argsort(-matches["score"][sel], kind="mergesort")]
        matched, ignored = matches["matched"][:, sel], matches["ignored"][:, sel]  # (T, Dk)
        tp = np.cumsum(matched & ~ignored, axis=1).astype(float)
        fp = np.cumsum(~matched & ~ignored, axis=1).astype(float)
        rc = tp / num_objects
        pr = tp / (fp + tp + np.spacing(1))  # (T, Dk)
        # Interpolate: the precision at recall r is the best precision at any recall >= r.
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
        num_dt = len(sel)
        recall[:, k] = rc[:, -1] if num_dt else 0.0
        for t in range(T):
            at = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")  # first detection reaching each recall
            reached = at < num_dt
            precision[t, :, k] = np.where(reached, pr[t, np.minimum(at, max(num_dt - 1, 0))] if num_dt else 0.0, 0.0)
    return precision, recall


def _summarise(precision: np.ndarray, recall: np.ndarray) -> dict[str, Any]:
    """The summary numbers from precision [T, R, K] and recall [T, K] (-1 = class absent), as COCO averages them."""

    def mean_defined(values: np.ndarray) -> float:
        defined = values[values > -1]
        return float(np.mean(defined)) if defined.size else math.nan

    has_objects = recall[0] > -1  # (K,)
    t50, t75 = 0, 5  # IOU_THRESHOLDS[0] == .50, IOU_THRESHOLDS[5] == .75
    return {
        "map": mean_defined(precision),
        "map_50": mean_defined(precision[t50]),
        "map_75": mean_defined(precision[t75]),
        "ap_per_class": [
            float(np.mean(precision[:, :, k])) if has_objects[k] else math.nan for k in range(precision.shape[2])
        ],
        "ap50_per_class": [
            float(np.mean(precision[t50, :, k])) if has_objects[k] else math.nan for k in range(precision.shape[2])
        ],
        "ar_100": mean_defined(recall),
        "precision": precision,
        "recall_thresholds": RECALL_THRESHOLDS.copy(),
    }


def coco_evaluate(
    predictions: Sequence[dict], targets: Sequence[dict], num_classes: int, *, max_dets: int = 100
) -> dict[str, Any]:
    """COCO box mAP, written here; equal to pycocotools' on the same inputs.

    Args:
        predictions: one dict per image, aligned with ``targets``: ``boxes`` float
            Tensor[D, 4] (x1, y1, x2, y2), ``scores`` Tensor[D], ``labels`` long Tensor[D] in 0..K-1.
        targets: the data contract's targets (``boxes``, ``labels``, ``iscrowd``, ``image_id``;
            image ids unique).
        num_classes: K.
        max_dets: detections kept per image and class, highest scores first (COCO: 100).

    Returns:
        ``map`` (AP averaged over IoU .50:.05:.95 and classes), ``map_50``, ``map_75``,
        ``ap_per_class`` and ``ap50_per_class`` (K floats, NaN for a class with no object),
        ``ar_100`` (recall at max_dets, averaged likewise), ``precision`` (array [T=10, R=101, K],
        -1 for a class with no object) and ``recall_thresholds`` [R]. The averages are NaN when
        no class has an object.
    """
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    data = _parse(predictions, targets, num_classes)
    matches = _match_all(data, num_classes, max_dets)
    return _summarise(*_accumulate(matches, num_classes))


# --------------------------------------------------------------------------- pycocotools


def to_coco_results(predictions: Sequence[dict], image_ids: Sequence[int], category_ids: Sequence[int]) -> list[dict]:
    """Predictions -> COCO results rows ``{image_id, category_id, bbox: [x, y, w, h], score}``.

    ``image_ids[i]`` is the id of ``predictions[i]``'s image, ``category_ids[k]`` the COCO
    category id of class index k. This is the format of a COCO results JSON file.
    """
    if len(predictions) != len(image_ids):
        raise ValueError(f"got {len(predictions)} predictions for {len(image_ids)} image ids")
    rows: list[dict] = []
    for i, (pred, image_id) in enumerate(zip(predictions, image_ids)):
        boxes = _check_boxes(pred["boxes"], f"predictions[{i}]")
        labels = _check_labels(pred["labels"], len(boxes), len(category_ids), f"predictions[{i}]")
        scores = torch.as_tensor(pred["scores"]).detach().cpu().to(torch.float64).reshape(-1).tolist()
        for box, label, score in zip(_xywh(boxes).tolist(), labels.tolist(), scores):
            rows.append(
                {"image_id": int(image_id), "category_id": int(category_ids[label]), "bbox": box, "score": float(score)}
            )
    return rows


def pycocotools_evaluate(
    predictions: Sequence[dict], targets: Sequence[dict], num_classes: int, *, max_dets: int = 100
) -> dict[str, Any]:
    """The same numbers as ``coco_evaluate``, computed by pycocotools' COCOeval (the reference).

    An in-memory COCO dataset is built from ``targets``: class k becomes category k + 1, a
    ground truth's ``area`` is its box's w * h (COCO files carry the mask area there; the box
    area is what a box-only dataset means), image sizes are the boxes' extent (bbox mAP
    does not use them). pycocotools' printing is swallowed.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data = _parse(predictions, targets, num_classes)  # the same checks as coco_evaluate
    image_ids = data["image_ids"].tolist()
    categories = [{"id": k + 1, "name": str(k)} for k in range(num_classes)]
    images, annotations = [], []
    for image_id, target in zip(image_ids, targets):
        boxes = _check_boxes(target["boxes"], "target")
        xywh = _xywh(boxes)
        labels = torch.as_tensor(target["labels"]).reshape(-1).tolist()
        crowd = target.get("iscrowd")
        crowd = [False] * len(labels) if crowd is None else torch.as_tensor(crowd).reshape(-1).tolist()
        extent = (xywh[:, :2] + xywh[:, 2:]).max(0) if len(xywh) else np.ones(2)
        images.append({"id": image_id, "width": max(1, math.ceil(extent[0])), "height": max(1, math.ceil(extent[1]))})
        for box, label, is_crowd in zip(xywh.tolist(), labels, crowd):
            annotations.append(
                {
                    "id": len(annotations) + 1,  # ids start at 1: COCOeval reads id 0 as "unmatched"
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": int(bool(is_crowd)),
                }
            )

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        coco_gt.createIndex()
        results = to_coco_results(predictions, image_ids, [c["id"] for c in categories])
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes cannot take an empty list; an empty results set is what it would have built
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(images), "annotations": [], "categories": categories}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.params.catIds = [c["id"] for c in categories]
        evaluator.params.maxDets = [max_dets]
        evaluator.params.areaRng = [list(AREA_RANGE)]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # (T, R, K)
    recall = evaluator.eval["recall"][:, :, 0, -1]  # (T, K)
    return _summarise(precision, recall)
