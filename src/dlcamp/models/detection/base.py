"""What the detectors share: the interface the detection task calls, batching, matching, post-processing.

A detector is an ``nn.Module`` with

- ``loss(images, targets) -> dict`` of named loss terms plus their weighted sum ``"loss"``
  (training), and
- ``detect(images) -> list[dict]``: per image ``boxes`` float [D, 4] (x1, y1, x2, y2 in
  the pixels of the image given), ``scores`` [D] and ``labels`` [D] in 0..K-1 (inference;
  ``forward`` is ``detect``).

``images`` is a Tensor[B, 3, H, W] in [0, 1] or a list of Tensor[3, H_i, W_i]; targets
follow ``dlcamp.data.detection``'s contract. Labels inside the models are shifted by one:
0 is background, class k is k + 1; the interface speaks the data's 0..K-1.
"""

from __future__ import annotations

import abc
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp import ops

Images = torch.Tensor | Sequence[torch.Tensor]


def image_list(images: Images) -> list[torch.Tensor]:
    """A batch as a list of Tensor[3, H, W]."""
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise ValueError(
                f"images must be a Tensor[B, 3, H, W] or a list of Tensor[3, H, W], got {tuple(images.shape)}"
            )
        return list(images.unbind(0))
    return list(images)


def pad_batch(images: Images, size_divisible: int = 1) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Images of any sizes zero-padded (bottom, right) into one Tensor, sides rounded up to ``size_divisible``.

    Returns the batch and each image's own (H, W), used to clip boxes to the real image.
    """
    ims = image_list(images)
    sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in ims]
    h = -(-max(s[0] for s in sizes) // size_divisible) * size_divisible
    w = -(-max(s[1] for s in sizes) // size_divisible) * size_divisible
    if isinstance(images, torch.Tensor) and images.shape[-2:] == (h, w):
        return images, sizes
    batch = ims[0].new_zeros(len(ims), ims[0].shape[0], h, w)
    for i, im in enumerate(ims):
        batch[i, :, : im.shape[-2], : im.shape[-1]] = im
    return batch, sizes


class Normalize(nn.Module):
    """Images in [0, 1] -> standardised with fixed channel statistics (ImageNet's)."""

    def __init__(self, mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def split_targets(target: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's ordinary boxes [N, 4] and their labels [N], and its crowd regions [N_crowd, 4]."""
    boxes = target["boxes"].to(device).float()
    crowd = target.get("iscrowd", torch.zeros(len(boxes), dtype=torch.bool)).to(device)
    return boxes[~crowd], target["labels"].to(device)[~crowd], boxes[crowd]


def match_boxes(
    matcher: ops.Matcher, gt: torch.Tensor, crowd: torch.Tensor, boxes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each box's matched ground truth [N] (index, clamped to 0) and label [N]: 1 positive, 0 negative, -1 ignored.

    A box that would be negative but overlaps a crowd region by ``matcher.low_threshold``
    is ignored: it may well show one of the crowd's objects.
    """
    if len(gt) == 0:
        idx = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
        labels = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
    else:
        m = matcher(ops.box_iou(gt, boxes))
        labels = (m >= 0).long()
        labels[m == ops.Matcher.BETWEEN_THRESHOLDS] = -1
        idx = m.clamp(min=0)
    if len(crowd):
        on_crowd = ops.box_iou(crowd, boxes).amax(0) >= matcher.low_threshold
        labels[on_crowd & (labels == 0)] = -1
    return idx, labels


def postprocess(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_size: tuple[int, int],
    *,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
    topk_candidates: int | None = None,
) -> dict[str, torch.Tensor]:
    """Per-class scores over candidate boxes -> the final detections of one image.

    ``boxes`` is [N, 4] (one box per candidate, shared by the classes) or [N, K, 4] (one
    per class); ``scores`` [N, K] over the K foreground classes. Boxes are clipped to the
    image; (candidate, class) pairs below ``score_threshold`` dropped; per class the best
    ``topk_candidates`` kept; then NMS within each class (``batched_nms``) and the best
    ``max_detections`` overall.
    """
    n, k = scores.shape
    if boxes.dim() == 2:
        boxes = boxes[:, None, :].expand(n, k, 4)
    boxes = ops.clip_boxes_to_image(boxes.reshape(-1, 4), image_size)
    flat_scores = scores.reshape(-1)
    labels = torch.arange(k, device=scores.device).repeat(n)
    keep = flat_scores > score_threshold
    if topk_candidates is not None and keep.sum() > topk_candidates * k:
        # per class, the best topk_candidates only: NMS cost grows with the candidates
        masked = torch.where(keep, flat_scores, flat_scores.new_tensor(-1.0)).view(n, k)
        top = masked.topk(min(topk_candidates, n), dim=0).indices  # [topk, K]
        sel = torch.zeros_like(masked, dtype=torch.bool)
        sel.scatter_(0, top, True)
        keep &= sel.view(-1)
    boxes, flat_scores, labels = boxes[keep], flat_scores[keep], labels[keep]
    wide = (boxes[:, 2] - boxes[:, 0] > 1e-2) & (boxes[:, 3] - boxes[:, 1] > 1e-2)
    boxes, flat_scores, labels = boxes[wide], flat_scores[wide], labels[wide]
    kept = ops.batched_nms(boxes, flat_scores, labels, nms_threshold)[:max_detections]
    return {"boxes": boxes[kept], "scores": flat_scores[kept], "labels": labels[kept]}


class Detector(nn.Module, abc.ABC):
    """Base of the detectors: ``loss`` for training, ``detect`` (= ``forward``) for inference."""

    num_classes: int

    @abc.abstractmethod
    def loss(self, images: Images, targets: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Named loss terms and their weighted sum under ``"loss"``."""

    @abc.abstractmethod
    def detect(self, images: Images) -> list[dict[str, torch.Tensor]]:
        """Per image: ``boxes`` [D, 4], ``scores`` [D], ``labels`` [D] (0..K-1)."""

    @abc.abstractmethod
    def anchors_per_level(self, image_size: tuple[int, int]) -> list[torch.Tensor]:
        """The anchors (default boxes) of each feature level for an image of this size, for figures."""

    def forward(self, images: Images) -> list[dict[str, torch.Tensor]]:
        return self.detect(images)


def smooth_l1(input: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Summed smooth L1 (Huber) loss; ``beta`` = 0 is plain L1."""
    return (
        F.smooth_l1_loss(input, target, beta=beta, reduction="sum")
        if beta > 0
        else F.l1_loss(input, target, reduction="sum")
    )
