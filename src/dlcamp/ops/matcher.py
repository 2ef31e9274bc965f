"""Matching anchors to ground truth, and choosing which anchors to train on.

Training a detector starts by deciding, for every anchor, what it should predict: the
ground-truth box it overlaps most if that overlap is good (a positive), "background" if
it overlaps nothing much (a negative), or nothing at all if it is in between (ignored,
so that ambiguous anchors do not blur the classifier).

- ``Matcher`` is Faster R-CNN's rule (Ren et al., "Faster R-CNN: Towards Real-Time
  Object Detection with Region Proposal Networks", 2015, arXiv:1506.01497): best IoU
  >= high -> matched; < low -> background (-1); in between -> ignored (-2). With
  ``allow_low_quality_matches`` every ground truth also claims the anchor(s) it overlaps
  most, even below the high threshold, so that no object goes without a positive
  anchor (a small or oddly shaped object may overlap no anchor by 0.7).
- ``ssd_match`` is SSD's (Liu et al., "SSD: Single Shot MultiBox Detector", 2016,
  arXiv:1512.02325): one threshold, plus every ground truth forced onto its best default
  box.

Then there are far more negatives than positives (tens of thousands of anchors, a few
objects), and a classifier trained on all of them learns to say "background":

- ``BalancedPositiveNegativeSampler`` (Faster R-CNN) draws a fixed-size minibatch per
  image, at most a fraction of it positive, at random.
- ``hard_negative_mining`` (SSD) keeps every positive and only the negatives the model
  finds hardest (highest loss), at most 3 per positive in the paper, which trains faster
  and more stably than random negatives.

Shapes: G ground-truth boxes, A anchors, B images.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dlcamp.errors import UsageError

__all__ = ["BalancedPositiveNegativeSampler", "Matcher", "hard_negative_mining", "ssd_match"]


class Matcher:
    """Assign each anchor the index of its best ground truth, or a negative code.

    ``__call__(iou)`` takes the IoU matrix (G, A) and returns (A,) int64: the matched
    ground-truth index, ``BELOW_LOW_THRESHOLD`` (-1) for background or
    ``BETWEEN_THRESHOLDS`` (-2) for ignored anchors. An image without ground truth
    (G = 0) gives all anchors -1: everything is background.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float, low_threshold: float, allow_low_quality_matches: bool = False) -> None:
        if low_threshold > high_threshold:
            raise UsageError(f"Matcher needs low_threshold <= high_threshold, got {low_threshold} > {high_threshold}")
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __repr__(self) -> str:
        return (
            f"Matcher(high_threshold={self.high_threshold}, low_threshold={self.low_threshold}, "
            f"allow_low_quality_matches={self.allow_low_quality_matches})"
        )

    def __call__(self, iou: Tensor) -> Tensor:
        num_gt, num_anchors = iou.shape
        if num_gt == 0:
            return torch.full((num_anchors,), self.BELOW_LOW_THRESHOLD, dtype=torch.int64, device=iou.device)
        if num_anchors == 0:
            return torch.empty(0, dtype=torch.int64, device=iou.device)
        best_iou, best_gt = iou.max(dim=0)  # (A,), (A,)
        matches = best_gt.clone()
        matches[best_iou < self.low_threshold] = self.BELOW_LOW_THRESHOLD
        matches[(best_iou >= self.low_threshold) & (best_iou < self.high_threshold)] = self.BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            # Every anchor that ties for some ground truth's highest IoU gets its own best
            # ground truth back, whatever the thresholds said. (Its best, not necessarily
            # the one it tied for: that keeps an anchor shared by two objects on the
            # object it overlaps more.)
            best_for_each_gt = iou.max(dim=1).values  # (G,)
            rescued = (iou == best_for_each_gt[:, None]).any(dim=0)  # (A,)
            matches[rescued] = best_gt[rescued]
        return matches


def ssd_match(iou: Tensor, threshold: float) -> Tensor:
    """SSD's matching: (A,) int64 best ground truth where IoU >= threshold, else -1, plus forced matches.

    Every ground truth is forced onto the anchor it overlaps most, whatever the IoU.
    When several ground truths share a best anchor, the one with the highest index gets
    it, which is what torchvision's ``SSDMatcher`` does on CPU (its last write wins);
    here the rule is made explicit so it holds on every device.
    """
    matches = Matcher(threshold, threshold)(iou)
    num_gt = iou.shape[0]
    if num_gt == 0 or iou.shape[1] == 0:
        return matches
    best_anchor = iou.max(dim=1).indices  # (G,)
    forced = torch.full_like(matches, -1).scatter_reduce(
        0, best_anchor, torch.arange(num_gt, device=iou.device), reduce="amax"
    )
    return torch.where(forced >= 0, forced, matches)


class BalancedPositiveNegativeSampler:
    """Draw up to ``batch_size_per_image`` anchors per image, at most ``positive_fraction`` of them positive.

    ``__call__(labels)`` takes one (A_i,) tensor per image with 1 (or any value >= 1)
    for positive, 0 for negative and -1 for ignored, and returns two lists of bool masks
    (A_i,): the positives drawn and the negatives drawn. Positives are drawn first, at
    most ``int(batch_size_per_image * positive_fraction)``; negatives fill the rest of
    the minibatch when there are enough of them.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        if batch_size_per_image < 1 or not 0.0 <= positive_fraction <= 1.0:
            raise UsageError(
                "BalancedPositiveNegativeSampler needs batch_size_per_image >= 1 and positive_fraction in "
                f"[0, 1], got {batch_size_per_image} and {positive_fraction}"
            )
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __call__(
        self, labels: list[Tensor], generator: torch.Generator | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        pos_masks, neg_masks = [], []
        for labels_per_image in labels:
            positive = torch.where(labels_per_image >= 1)[0]
            negative = torch.where(labels_per_image == 0)[0]
            num_pos = min(positive.numel(), int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(negative.numel(), self.batch_size_per_image - num_pos)
            pos_mask = torch.zeros_like(labels_per_image, dtype=torch.bool)
            neg_mask = torch.zeros_like(labels_per_image, dtype=torch.bool)
            pos_mask[positive[_random_subset(positive.numel(), num_pos, generator, positive.device)]] = True
            neg_mask[negative[_random_subset(negative.numel(), num_neg, generator, negative.device)]] = True
            pos_masks.append(pos_mask)
            neg_masks.append(neg_mask)
        return pos_masks, neg_masks


def _random_subset(n: int, k: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """k distinct random indices in [0, n), drawn on the generator's device."""
    source = generator.device if generator is not None else device
    return torch.randperm(n, generator=generator, device=source)[:k].to(device)


def hard_negative_mining(loss: Tensor, positive: Tensor, neg_pos_ratio: float | None, min_negatives: int = 0) -> Tensor:
    """Positives plus, per image, the hardest negatives: bool mask (B, A).

    Args:
        loss: (B, A) per-anchor classification loss (only its order among negatives matters;
            it is not differentiated through).
        positive: (B, A) bool, the anchors matched to an object.
        neg_pos_ratio: negatives kept per positive, floor(ratio * num_pos) per image (3 in
            SSD); None keeps every negative.
        min_negatives: the fewest negatives kept per image (when it has that many). An image
            without objects would otherwise contribute nothing: ratio * 0 = 0 negatives, so
            the model would never be told that an empty image is empty. With the default 0
            the paper's rule is kept as is; a small floor (e.g. the number a typical image
            gets) trains on the hardest background of empty images too.

    Ties in the loss at the cut are broken in favour of the lower anchor index.
    """
    if loss.shape != positive.shape or loss.dim() != 2:
        raise UsageError(f"loss and positive must both be (B, A), got {tuple(loss.shape)} and {tuple(positive.shape)}")
    positive = positive.bool()
    negative = ~positive
    if neg_pos_ratio is None:
        return positive | negative
    if neg_pos_ratio < 0 or min_negatives < 0:
        raise UsageError(f"need neg_pos_ratio >= 0 and min_negatives >= 0, got {neg_pos_ratio} and {min_negatives}")
    num_pos = positive.sum(dim=1)  # (B,)
    num_neg = torch.floor(num_pos.double() * neg_pos_ratio).long().clamp(min=min_negatives)
    num_neg = torch.minimum(num_neg, negative.sum(dim=1))  # (B,)
    neg_loss = loss.detach().masked_fill(positive, -math.inf)
    order = neg_loss.sort(dim=1, descending=True, stable=True).indices  # (B, A) hardest negatives first
    rank = order.argsort(dim=1)  # (B, A): the position of each anchor in that order
    return positive | (negative & (rank < num_neg[:, None]))
