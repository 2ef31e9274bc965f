"""The region proposal network of Faster R-CNN (Ren et al. 2015, arXiv:1506.01497), a module of its own.

A small network slides over the shared feature maps; at every location it scores A anchor
boxes (sizes x aspect ratios, or shapes fitted by ``ops.kmeans_anchors``) for "object or
not" and regresses their offsets. The best-scoring boxes of each level, decoded, clipped
and thinned by NMS (IoU 0.7), are the **proposals** a second stage classifies.

Anchors are centred on the feature cells ((j + 0.5) x stride, ``ops.grid_anchors``) from
explicit (w, h) shapes, one set per level (with an FPN, one size per level); the head is
shared by the levels, so every level has the same number A of anchors.

Training balances object and background by sampling: 256 anchors per image, at most half
positive (IoU >= 0.7 with a ground truth, or the best anchor of a ground truth: a small
object may reach 0.7 with no anchor at all); negatives have IoU < 0.3 and the anchors in
between are left out. The objectness is a binary cross-entropy; the offsets, encoded by
``ops.BoxCoder`` (log scale for width and height: a box twice too wide and one half as
wide are equally wrong), are penalised with smooth L1 on the positives only.

Legend: B batch, C channels, h, w a feature map's size, A anchors per location, N anchors
of all levels (sum of h * w * A), P proposals of one image.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp import ops
from dlcamp.models.detection.base import match_boxes, smooth_l1, split_targets
from dlcamp.ops.anchors import centred_boxes


class RPNHead(nn.Module):
    """3x3 conv, then per anchor an objectness logit and four offsets (shared across levels)."""

    def __init__(self, channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, num_anchors * 4, 1)
        for layer in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Objectness [B, N] and offsets [B, N, 4] over all levels' anchors (location-major)."""
        obj, deltas = [], []
        for f in feats:
            t = F.relu(self.conv(f))
            b = f.shape[0]
            obj.append(self.objectness(t).permute(0, 2, 3, 1).reshape(b, -1))  # (B, A, h, w) -> (B, h * w * A)
            deltas.append(self.deltas(t).permute(0, 2, 3, 1).reshape(b, -1, 4))  # (B, 4A, h, w) -> (B, h * w * A, 4)
        return torch.cat(obj, 1), torch.cat(deltas, 1)


class RegionProposalNetwork(nn.Module):
    """Anchors, head, matching and sampling, losses and proposals of the RPN.

    Args:
        channels: width of the feature maps it runs on.
        anchor_wh: per level, the anchors' (w, h) [A, 2].
        strides: per level, the feature map's stride in pixels.
        pre_nms_top_n, post_nms_top_n: proposals kept per level before NMS and per image
            after it, (training, inference).
        nms_threshold: IoU above which NMS drops the lower-scored proposal.
        fg_iou, bg_iou: anchors at IoU >= ``fg_iou`` are positive, < ``bg_iou`` negative.
        batch_size, positive_fraction: anchors sampled per image, and at most which share positive.
        box_scale: ``"log"`` or ``"linear"`` width and height offsets (``ops.BoxCoder``).
    """

    def __init__(
        self,
        channels: int,
        anchor_wh: Sequence[torch.Tensor],
        strides: Sequence[int],
        *,
        pre_nms_top_n: Sequence[int] = (600, 300),
        post_nms_top_n: Sequence[int] = (300, 100),
        nms_threshold: float = 0.7,
        fg_iou: float = 0.7,
        bg_iou: float = 0.3,
        batch_size: int = 256,
        positive_fraction: float = 0.5,
        box_scale: str = "log",
    ) -> None:
        super().__init__()
        for i, wh in enumerate(anchor_wh):  # (w, h) of each level's anchors
            self.register_buffer(f"anchor_wh_{i}", wh)
        self.num_levels = len(anchor_wh)
        self.strides = list(strides)
        self.head = RPNHead(channels, len(anchor_wh[0]))
        self.coder = ops.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0), scale=box_scale)
        # low-quality matches: a ground truth that no anchor overlaps by fg_iou still gets its best anchors
        self.matcher = ops.Matcher(fg_iou, bg_iou, allow_low_quality_matches=True)
        self.sampler = ops.BalancedPositiveNegativeSampler(batch_size, positive_fraction)
        self.pre_nms_top_n, self.post_nms_top_n = tuple(pre_nms_top_n), tuple(post_nms_top_n)
        self.nms_threshold = nms_threshold

    @property
    def anchor_wh(self) -> list[torch.Tensor]:
        return [getattr(self, f"anchor_wh_{i}") for i in range(self.num_levels)]

    def anchors(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """All levels' anchors [N, 4] and each anchor's level [N]."""
        per_level = [
            ops.grid_anchors(centred_boxes(wh.float()), tuple(f.shape[-2:]), s)  # float32 under autocast too
            for wh, f, s in zip(self.anchor_wh, feats, self.strides)
        ]
        levels = torch.cat([torch.full((len(a),), i, device=a.device) for i, a in enumerate(per_level)])
        return torch.cat(per_level), levels

    def anchors_per_level(self, image_size: tuple[int, int]) -> list[torch.Tensor]:
        """Each level's anchors [h * w * A, 4] for an image of ``image_size`` (padded to the strides), on the CPU."""
        out = []
        for wh, s in zip(self.anchor_wh, self.strides):
            size = (-(-image_size[0] // s), -(-image_size[1] // s))
            out.append(ops.grid_anchors(centred_boxes(wh.detach().float().cpu()), size, s))
        return out

    def forward(
        self, feats: list[torch.Tensor], sizes: list[tuple[int, int]], targets: list[dict[str, Any]] | None = None
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Proposals per image [P, 4] (detached) and, given targets, ``loss_objectness`` and ``loss_rpn_box``."""
        objectness, deltas = self.head(feats)
        objectness, deltas = objectness.float(), deltas.float()  # box arithmetic in float32 under mixed precision
        anchors, levels = self.anchors(feats)
        mode = 0 if self.training else 1
        proposals = self.proposals(
            objectness.detach(),
            deltas.detach(),
            anchors,
            levels,
            sizes,
            self.pre_nms_top_n[mode],
            self.post_nms_top_n[mode],
        )
        if targets is None:
            return proposals, {}
        return proposals, self.losses(objectness, deltas, anchors, targets)

    def losses(
        self, objectness: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, targets: list[dict[str, Any]]
    ) -> dict[str, torch.Tensor]:
        """Objectness BCE and smooth L1 on the positives' offsets, over the sampled anchors of every image."""
        labels, matched = [], []
        for t in targets:
            gt, _, crowd = split_targets(t, anchors.device)
            idx, lab = match_boxes(self.matcher, gt, crowd, anchors)
            labels.append(lab)
            matched.append(gt[idx] if len(gt) else torch.zeros_like(anchors))
        pos, neg = self.sampler(labels)
        pos, neg = torch.stack(pos), torch.stack(neg)  # [B, N] each
        sampled = pos | neg
        n = sampled.sum().clamp(min=1)
        loss_obj = F.binary_cross_entropy_with_logits(objectness[sampled], pos[sampled].float(), reduction="sum") / n
        target_deltas = self.coder.encode(torch.stack(matched)[pos], anchors.expand(len(targets), -1, -1)[pos])
        loss_box = smooth_l1(deltas[pos], target_deltas, beta=1 / 9) / n
        return {"loss_objectness": loss_obj, "loss_rpn_box": loss_box}

    def proposals(
        self,
        objectness: torch.Tensor,
        deltas: torch.Tensor,
        anchors: torch.Tensor,
        levels: torch.Tensor,
        sizes: list[tuple[int, int]],
        pre_nms: int,
        post_nms: int,
    ) -> list[torch.Tensor]:
        """Per image: each level's best ``pre_nms`` anchors, decoded, clipped, tiny ones dropped, NMS per level."""
        out = []
        for obj, d, size in zip(objectness, deltas, sizes):
            keep = []
            for lv in range(self.num_levels):  # per level: the coarse levels' few anchors are not crowded out
                idx = (levels == lv).nonzero().squeeze(1)
                keep.append(idx[obj[idx].topk(min(pre_nms, len(idx))).indices])
            keep = torch.cat(keep)
            boxes = ops.clip_boxes_to_image(self.coder.decode(d[keep], anchors[keep]), size)
            scores, lv = obj[keep], levels[keep]
            ok = ops.remove_small_boxes(boxes, 1e-3)
            boxes, scores, lv = boxes[ok], scores[ok], lv[ok]
            kept = ops.batched_nms(boxes, scores, lv, self.nms_threshold)[:post_nms]
            out.append(boxes[kept])
        return out
