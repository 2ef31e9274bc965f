"""The second stage of Faster R-CNN: RoI heads over the proposals (Fast R-CNN, Girshick 2015, arXiv:1504.08083).

For each proposal, ``RoIPooler`` cuts a fixed ``roi_size`` x ``roi_size`` window of
features out of the map (RoI Align, He et al. 2017, arXiv:1703.06870, which samples
bilinearly at exact positions; or the original RoI pooling, which rounds them to cells).
With an FPN the window comes from the level that suits the box's size (Lin et al. 2017,
eq. 1). ``BoxHead`` classifies each window into K + 1 classes (background first) with
class-specific box offsets.

Training samples 128 proposals per image (the ground truths added: good positives
while the RPN is still poor), at most a quarter positive (IoU >= 0.5 with a ground
truth); cross-entropy on the classes, smooth L1 on the positives' offsets for their own
class, encoded by ``ops.BoxCoder`` with weights (10, 10, 5, 5). At inference each
proposal is decoded once per class and ``base.postprocess`` keeps the confident ones.

``RoIHeads`` holds the heads that run on pooled proposals; a mask head (Mask R-CNN) sits
next to ``box_head`` with its own pooler.

Legend: C channels, K classes, R RoIs of all images, s ``roi_size``, P proposals of one image.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp import ops
from dlcamp.errors import UsageError
from dlcamp.models.detection.base import match_boxes, postprocess, smooth_l1, split_targets


class RoIPooler:
    """Boxes of every image -> a window of features per box [R, C, s, s], from the level that suits each box."""

    def __init__(self, strides: Sequence[int], output_size: int, *, op: str = "align", sampling_ratio: int = 2) -> None:
        if op not in ("align", "pool"):
            raise UsageError(f"roi op must be 'align' or 'pool', got {op!r}")
        self.strides, self.output_size, self.op, self.sampling_ratio = list(strides), output_size, op, sampling_ratio

    def __call__(self, feats: list[torch.Tensor], boxes: list[torch.Tensor]) -> torch.Tensor:
        rois = torch.cat(
            [torch.cat([torch.full((len(b), 1), i, dtype=b.dtype, device=b.device), b], 1) for i, b in enumerate(boxes)]
        )  # [R, 5]: image index, x1, y1, x2, y2
        if len(feats) == 1:
            return self._pool_level(feats[0], rois, self.strides[0])
        # FPN: the level whose stride suits the box (Lin et al. 2017, eq. 1, with 32-px boxes on level 1)
        side = ((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])).clamp(min=1e-6).sqrt()
        level = torch.floor(1 + torch.log2(side / 32 + 1e-6)).clamp(0, len(feats) - 1).long()
        out = rois.new_zeros(len(rois), feats[0].shape[1], self.output_size, self.output_size)
        for lv, (f, s) in enumerate(zip(feats, self.strides)):
            sel = (level == lv).nonzero().squeeze(1)
            if len(sel):
                out[sel] = self._pool_level(f, rois[sel], s)
        return out

    def _pool_level(self, f: torch.Tensor, rois: torch.Tensor, stride: int) -> torch.Tensor:
        if self.op == "align":
            return ops.roi_align(
                f, rois, self.output_size, spatial_scale=1.0 / stride, sampling_ratio=self.sampling_ratio, aligned=True
            )
        return ops.roi_pool(f, rois, self.output_size, spatial_scale=1.0 / stride)


class BoxHead(nn.Module):
    """Two fully connected layers on the pooled RoI, then K + 1 scores and (K + 1) x 4 offsets."""

    def __init__(self, in_features: int, representation: int, num_classes: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation)
        self.fc7 = nn.Linear(representation, representation)
        self.cls_score = nn.Linear(representation, num_classes + 1)
        self.bbox_pred = nn.Linear(representation, (num_classes + 1) * 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled windows [R, C, s, s] -> class logits [R, K + 1] and offsets [R, K + 1, 4]."""
        x = F.relu(self.fc7(F.relu(self.fc6(pooled.flatten(1)))))  # [R, representation]
        return self.cls_score(x), self.bbox_pred(x).view(len(x), self.cls_score.out_features, 4)


class RoIHeads(nn.Module):
    """Box head on RoI windows: sampling and losses for training, per-class boxes and NMS for inference.

    Args:
        channels: width of the feature maps; strides: their strides in pixels.
        num_classes: K, background not counted.
        roi_op, roi_size, sampling_ratio: ``"align"`` or ``"pool"``, window side, RoI Align's samples per bin.
        representation: width of the two fully connected layers.
        fg_iou, bg_iou: proposals at IoU >= ``fg_iou`` are positive, < ``bg_iou`` background.
        batch_size, positive_fraction: proposals sampled per image, and at most which share positive.
        box_scale: ``"log"`` or ``"linear"`` width and height offsets (``ops.BoxCoder``).
        score_threshold, nms_threshold, max_detections: ``base.postprocess``'s.
    """

    def __init__(
        self,
        channels: int,
        strides: Sequence[int],
        num_classes: int,
        *,
        roi_op: str = "align",
        roi_size: int = 7,
        sampling_ratio: int = 2,
        representation: int = 256,
        fg_iou: float = 0.5,
        bg_iou: float = 0.5,
        batch_size: int = 128,
        positive_fraction: float = 0.25,
        box_scale: str = "log",
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        max_detections: int = 100,
    ) -> None:
        super().__init__()
        self.pooler = RoIPooler(strides, roi_size, op=roi_op, sampling_ratio=sampling_ratio)
        self.box_head = BoxHead(channels * roi_size * roi_size, representation, num_classes)
        self.coder = ops.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0), scale=box_scale)
        self.matcher = ops.Matcher(fg_iou, bg_iou, allow_low_quality_matches=False)
        self.sampler = ops.BalancedPositiveNegativeSampler(batch_size, positive_fraction)
        self.score_threshold, self.nms_threshold, self.max_detections = score_threshold, nms_threshold, max_detections

    def loss(
        self, feats: list[torch.Tensor], proposals: list[torch.Tensor], targets: list[dict[str, Any]]
    ) -> dict[str, torch.Tensor]:
        """``loss_classifier`` (cross-entropy) and ``loss_box_reg`` (smooth L1) over the sampled proposals."""
        boxes, labels, matched = [], [], []
        for props, t in zip(proposals, targets):
            gt, gt_labels, crowd = split_targets(t, props.device)
            props = torch.cat([props, gt])  # the ground truths are proposals too (good positives early on)
            idx, lab = match_boxes(self.matcher, gt, crowd, props)
            boxes.append(props)
            labels.append(lab)
            cls = torch.where(lab > 0, (gt_labels[idx] + 1) if len(gt) else torch.zeros_like(lab), 0)
            matched.append((cls, gt[idx] if len(gt) else torch.zeros_like(props)))
        pos, neg = self.sampler(labels)
        sel = [(p | n).nonzero().squeeze(1) for p, n in zip(pos, neg)]
        sampled_boxes = [b[s] for b, s in zip(boxes, sel)]
        cls_t = torch.cat([m[0][s] for m, s in zip(matched, sel)])  # [R], 0 background
        box_t = torch.cat([m[1][s] for m, s in zip(matched, sel)])  # [R, 4]
        props = torch.cat(sampled_boxes)
        logits, deltas = self.box_head(self.pooler(feats, sampled_boxes))
        logits, deltas = logits.float(), deltas.float()
        loss_cls = F.cross_entropy(logits, cls_t) if len(cls_t) else logits.sum() * 0
        positive = cls_t > 0
        target_deltas = self.coder.encode(box_t[positive], props[positive])
        loss_box = smooth_l1(deltas[positive, cls_t[positive]], target_deltas, beta=1 / 9) / max(1, len(cls_t))
        return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}

    def detect(
        self, feats: list[torch.Tensor], proposals: list[torch.Tensor], sizes: list[tuple[int, int]]
    ) -> list[dict[str, torch.Tensor]]:
        """Per image: ``boxes`` [D, 4], ``scores`` [D], ``labels`` [D] (0..K-1) from its proposals [P, 4]."""
        logits, deltas = self.box_head(self.pooler(feats, proposals))
        probs, deltas = logits.float().softmax(-1), deltas.float()
        out, start = [], 0
        for props, size in zip(proposals, sizes):
            n = len(props)
            d = deltas[start : start + n, 1:]  # [P, K, 4], background dropped
            boxes = self.coder.decode(d, props[:, None, :].expand_as(d))
            out.append(
                postprocess(
                    boxes,
                    probs[start : start + n, 1:],
                    size,
                    score_threshold=self.score_threshold,
                    nms_threshold=self.nms_threshold,
                    max_detections=self.max_detections,
                )
            )
            start += n
        return out
