"""Faster R-CNN (Ren et al. 2015): a region proposal network sharing the backbone with a Fast R-CNN head.

Two stages. The **RPN** slides a small network over the shared feature map; at every
location it scores A anchor boxes (sizes x aspect ratios) for "object or not" and regresses
their offsets. The best-scoring boxes, decoded, clipped and thinned by NMS (IoU 0.7), are
the **proposals**. The **RoI head** (Fast R-CNN, Girshick 2015) cuts a fixed 7x7 window
of features out of the map for each proposal (RoI Align, He et al. 2017, or the original
RoI pooling), and classifies it into K + 1 classes with class-specific box offsets.
Because the heads only see RoI windows, any input size works: a batch is zero-padded to a
common size, and boxes are clipped to each image's own extent.

Training balances the classes by sampling: the RPN takes 256 anchors per image, at most
half positive (IoU >= 0.7 with a ground truth, or the best anchor of a ground truth;
negatives IoU < 0.3); the head takes 128 proposals (ground truths added) per image, at
most a quarter positive (IoU >= 0.5). Box offsets are encoded by ``ops.BoxCoder`` (log
scale for width and height; ``box_scale="linear"`` for the ablation) and penalised with
smooth L1 on positives only.

Joint ("approximate joint") training optimises all four losses at once, with the
proposals treated as constants. The paper's **four-step alternating** schedule (RPN; Fast
R-CNN on those proposals with its own backbone; RPN again on the detector's frozen
backbone; the head again) is driven by the detection task through ``loss(stage=...)``.

Anchors are centred on the feature cells ((j + 0.5) x stride), from explicit (w, h) shapes:
the hand-set sizes x aspect ratios, or shapes fitted by ``ops.kmeans_anchors``
(``anchor_wh``). ``ops.AnchorGenerator`` reproduces torchvision's generator (centred on the
cells' corners, rounded) for comparison; the model does not use it.

``fpn=True`` adds a feature pyramid (Lin et al. 2017): the RPN runs on every level with
one anchor size per level, and each RoI is pooled from the level that suits its size.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp import ops
from dlcamp.errors import UsageError
from dlcamp.models import register_model
from dlcamp.models.detection.backbone import FPN, Normalize, build_backbone
from dlcamp.models.detection.base import Detector, Images, pad_batch, postprocess, smooth_l1


def anchor_shapes(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
    """(w, h) of each size x aspect ratio (ratio = h / w, area = size^2), size-major."""
    wh = []
    for s in sizes:
        for r in aspect_ratios:
            wh.append((s / math.sqrt(r), s * math.sqrt(r)))
    return torch.tensor(wh, dtype=torch.float32)


def grid_anchors_wh(wh: torch.Tensor, feature_size: tuple[int, int], stride: int) -> torch.Tensor:
    """Anchors of shapes ``wh`` [A, 2] centred on every cell of a feature map: [h * w * A, 4], location-major."""
    h, w = feature_size
    ys = (torch.arange(h, dtype=wh.dtype, device=wh.device) + 0.5) * stride
    xs = (torch.arange(w, dtype=wh.dtype, device=wh.device) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([cx, cy, cx, cy], -1).reshape(-1, 1, 4)  # [HW, 1, 4]
    half = torch.cat([-wh / 2, wh / 2], -1)[None]  # [1, A, 4]
    return (centres + half).reshape(-1, 4)


class FeatureBody(nn.Module):
    """Backbone (+ FPN): normalised images -> feature maps; what the RPN and the head share."""

    def __init__(self, backbone: nn.Module, fpn: FPN | None) -> None:
        super().__init__()
        self.backbone, self.fpn = backbone, fpn
        self.strides = list(backbone.strides)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.backbone(x)
        return self.fpn(feats) if self.fpn is not None else feats


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
            obj.append(self.objectness(t).permute(0, 2, 3, 1).reshape(b, -1))
            deltas.append(self.deltas(t).permute(0, 2, 3, 1).reshape(b, -1, 4))
        return torch.cat(obj, 1), torch.cat(deltas, 1)


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
        x = F.relu(self.fc7(F.relu(self.fc6(pooled.flatten(1)))))
        return self.cls_score(x), self.bbox_pred(x).view(len(x), self.cls_score.out_features, 4)


class FasterRCNN(Detector):
    def __init__(self, *, num_classes: int, backbone: str = "tiny", widths: Sequence[int] | None = None,
                 first_stride: int = 8, fpn: bool = False, fpn_channels: int = 64,
                 anchor_sizes: Sequence[Sequence[float]] = ((16.0, 32.0, 64.0),),
                 aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 anchor_wh: Sequence[Sequence[Sequence[float]]] | None = None,
                 rpn_pre_nms_top_n: tuple[int, int] = (600, 300), rpn_post_nms_top_n: tuple[int, int] = (300, 100),
                 rpn_nms_threshold: float = 0.7, rpn_fg_iou: float = 0.7, rpn_bg_iou: float = 0.3,
                 rpn_batch_size: int = 256, rpn_positive_fraction: float = 0.5,
                 roi_op: str = "align", roi_size: int = 7, sampling_ratio: int = 2, representation: int = 256,
                 box_fg_iou: float = 0.5, box_bg_iou: float = 0.5, box_batch_size: int = 128,
                 box_positive_fraction: float = 0.25, box_scale: str = "log", score_threshold: float = 0.05,
                 nms_threshold: float = 0.5, max_detections: int = 100, in_channels: int = 3) -> None:
        super().__init__()
        if box_scale not in ("log", "linear"):
            raise UsageError(f"fasterrcnn: box_scale must be 'log' or 'linear', got {box_scale!r}")
        if roi_op not in ("align", "pool"):
            raise UsageError(f"fasterrcnn: roi_op must be 'align' or 'pool', got {roi_op!r}")
        if anchor_wh is not None:
            shapes = [torch.tensor(level, dtype=torch.float32).reshape(-1, 2) for level in anchor_wh]
        else:
            shapes = [anchor_shapes(sizes, aspect_ratios) for sizes in anchor_sizes]
        num_levels = len(shapes)
        if not fpn and num_levels != 1:
            raise UsageError(f"fasterrcnn: without fpn there is one feature level, so anchors need one level; "
                             f"got {num_levels} (set model.fpn=true for several)")
        if len({len(s) for s in shapes}) != 1:
            raise UsageError("fasterrcnn: every level needs the same number of anchors (the RPN head is shared)")
        self.num_classes = num_classes
        self.normalize = Normalize()
        bb = build_backbone(backbone, num_levels=num_levels, first_stride=first_stride, widths=widths,
                            in_channels=in_channels)
        self.body = FeatureBody(bb, FPN(bb.out_channels, fpn_channels) if fpn else None)
        channels = fpn_channels if fpn else bb.out_channels[0]
        for i, s in enumerate(shapes):  # (w, h) of each level's anchors
            self.register_buffer(f"anchor_wh_{i}", s)
        self.num_levels = num_levels
        self.rpn = RPNHead(channels, len(shapes[0]))
        self.box_head = BoxHead(channels * roi_size * roi_size, representation, num_classes)
        self.rpn_coder = ops.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0), scale=box_scale)
        self.box_coder = ops.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0), scale=box_scale)
        self.rpn_matcher = ops.Matcher(rpn_fg_iou, rpn_bg_iou, allow_low_quality_matches=True)
        self.box_matcher = ops.Matcher(box_fg_iou, box_bg_iou, allow_low_quality_matches=False)
        self.rpn_sampler = ops.BalancedPositiveNegativeSampler(rpn_batch_size, rpn_positive_fraction)
        self.box_sampler = ops.BalancedPositiveNegativeSampler(box_batch_size, box_positive_fraction)
        self.pre_nms_top_n, self.post_nms_top_n = tuple(rpn_pre_nms_top_n), tuple(rpn_post_nms_top_n)
        self.rpn_nms_threshold = rpn_nms_threshold
        self.roi_op, self.roi_size, self.sampling_ratio = roi_op, roi_size, sampling_ratio
        self.score_threshold, self.nms_threshold, self.max_detections = score_threshold, nms_threshold, max_detections

    # -- shared pieces ----------------------------------------------------------------------
    @property
    def anchor_wh(self) -> list[torch.Tensor]:
        return [getattr(self, f"anchor_wh_{i}") for i in range(self.num_levels)]

    def prepare(self, images: Images) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        x, sizes = pad_batch(images, max(self.body.strides))
        return self.normalize(x), sizes

    def anchors(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """All levels' anchors [N, 4] and each anchor's level [N]."""
        per_level = [grid_anchors_wh(wh.float(), tuple(f.shape[-2:]), s)  # float32 even under mixed precision
                     for wh, f, s in zip(self.anchor_wh, feats, self.body.strides)]
        levels = torch.cat([torch.full((len(a),), i, device=a.device) for i, a in enumerate(per_level)])
        return torch.cat(per_level), levels

    def anchors_per_level(self, image_size: tuple[int, int]) -> list[torch.Tensor]:
        out = []
        for wh, s in zip(self.anchor_wh, self.body.strides):
            size = (-(-image_size[0] // s), -(-image_size[1] // s))
            out.append(grid_anchors_wh(wh.detach().float().cpu(), size, s))
        return out

    @staticmethod
    def _split_targets(t: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        boxes = t["boxes"].to(device).float()
        crowd = t.get("iscrowd", torch.zeros(len(boxes), dtype=torch.bool)).to(device)
        return boxes[~crowd], t["labels"].to(device)[~crowd], boxes[crowd]

    def _match(self, matcher: ops.Matcher, gt: torch.Tensor, crowd: torch.Tensor, boxes: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Matched gt index (clamped to 0) and sampling label: 1 positive, 0 negative, -1 ignored."""
        if len(gt) == 0:
            idx = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
            labels = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
        else:
            m = matcher(ops.box_iou(gt, boxes))
            labels = (m >= 0).long()
            labels[m == ops.Matcher.BETWEEN_THRESHOLDS] = -1
            idx = m.clamp(min=0)
        if len(crowd):  # boxes on a crowd region are neither positive nor negative
            on_crowd = ops.box_iou(crowd, boxes).amax(0) >= matcher.low_threshold
            labels[on_crowd & (labels == 0)] = -1
        return idx, labels

    # -- RPN --------------------------------------------------------------------------------
    def rpn_forward(self, feats: list[torch.Tensor], sizes: list[tuple[int, int]],
                    targets: list[dict[str, Any]] | None) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Proposals per image (detached) and, given targets, the RPN's losses."""
        objectness, deltas = self.rpn(feats)
        objectness, deltas = objectness.float(), deltas.float()  # box arithmetic in float32 under mixed precision
        anchors, levels = self.anchors(feats)
        mode = 0 if self.training else 1
        proposals = self._proposals(objectness.detach(), deltas.detach(), anchors, levels, sizes,
                                    self.pre_nms_top_n[mode], self.post_nms_top_n[mode])
        if targets is None:
            return proposals, {}
        labels, matched = [], []
        for t in targets:
            gt, _, crowd = self._split_targets(t, anchors.device)
            idx, lab = self._match(self.rpn_matcher, gt, crowd, anchors)
            labels.append(lab)
            matched.append(gt[idx] if len(gt) else torch.zeros_like(anchors))
        pos, neg = self.rpn_sampler(labels)
        pos, neg = torch.stack(pos), torch.stack(neg)
        sampled = pos | neg
        n = sampled.sum().clamp(min=1)
        loss_obj = F.binary_cross_entropy_with_logits(objectness[sampled], pos[sampled].float(), reduction="sum") / n
        target_deltas = self.rpn_coder.encode(torch.stack(matched)[pos], anchors.expand(len(targets), -1, -1)[pos])
        loss_box = smooth_l1(deltas[pos], target_deltas, beta=1 / 9) / n
        return proposals, {"loss_objectness": loss_obj, "loss_rpn_box": loss_box}

    def _proposals(self, objectness: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, levels: torch.Tensor,
                   sizes: list[tuple[int, int]], pre_nms: int, post_nms: int) -> list[torch.Tensor]:
        out = []
        num_levels = len(self.anchor_wh)
        for obj, d, size in zip(objectness, deltas, sizes):
            keep = []
            for lv in range(num_levels):  # the best pre_nms of each level
                idx = (levels == lv).nonzero().squeeze(1)
                keep.append(idx[obj[idx].topk(min(pre_nms, len(idx))).indices])
            keep = torch.cat(keep)
            boxes = ops.clip_boxes_to_image(self.rpn_coder.decode(d[keep], anchors[keep]), size)
            scores, lv = obj[keep], levels[keep]
            ok = ops.remove_small_boxes(boxes, 1e-3)
            boxes, scores, lv = boxes[ok], scores[ok], lv[ok]
            kept = ops.batched_nms(boxes, scores, lv, self.rpn_nms_threshold)[:post_nms]
            out.append(boxes[kept])
        return out

    # -- RoI head ---------------------------------------------------------------------------
    def pool(self, feats: list[torch.Tensor], boxes: list[torch.Tensor]) -> torch.Tensor:
        """A roi_size x roi_size window of features per box, [R, C, s, s] (boxes of all images in order)."""
        rois = torch.cat([torch.cat([torch.full((len(b), 1), i, dtype=b.dtype, device=b.device), b], 1)
                          for i, b in enumerate(boxes)])
        if len(feats) == 1:
            return self._pool_level(feats[0], rois, self.body.strides[0])
        # FPN: the level whose stride suits the box (Lin et al. 2017, eq. 1, with 32-px boxes on level 1)
        side = ((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])).clamp(min=1e-6).sqrt()
        level = torch.floor(1 + torch.log2(side / 32 + 1e-6)).clamp(0, len(feats) - 1).long()
        out = rois.new_zeros(len(rois), feats[0].shape[1], self.roi_size, self.roi_size)
        for lv, (f, s) in enumerate(zip(feats, self.body.strides)):
            sel = (level == lv).nonzero().squeeze(1)
            if len(sel):
                out[sel] = self._pool_level(f, rois[sel], s)
        return out

    def _pool_level(self, f: torch.Tensor, rois: torch.Tensor, stride: int) -> torch.Tensor:
        if self.roi_op == "align":
            return ops.roi_align(f, rois, self.roi_size, spatial_scale=1.0 / stride,
                                 sampling_ratio=self.sampling_ratio, aligned=True)
        return ops.roi_pool(f, rois, self.roi_size, spatial_scale=1.0 / stride)

    def roi_losses(self, feats: list[torch.Tensor], proposals: list[torch.Tensor],
                   targets: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        boxes, labels, matched = [], [], []
        for props, t in zip(proposals, targets):
            gt, gt_labels, crowd = self._split_targets(t, props.device)
            props = torch.cat([props, gt])  # the ground truths are proposals too (good positives early on)
            idx, lab = self._match(self.box_matcher, gt, crowd, props)
            boxes.append(props)
            labels.append(lab)
            cls = torch.where(lab > 0, (gt_labels[idx] + 1) if len(gt) else torch.zeros_like(lab), 0)
            matched.append((cls, gt[idx] if len(gt) else torch.zeros_like(props)))
        pos, neg = self.box_sampler(labels)
        sel = [(p | n).nonzero().squeeze(1) for p, n in zip(pos, neg)]
        sampled_boxes = [b[s] for b, s in zip(boxes, sel)]
        cls_t = torch.cat([m[0][s] for m, s in zip(matched, sel)])
        box_t = torch.cat([m[1][s] for m, s in zip(matched, sel)])
        props = torch.cat(sampled_boxes)
        logits, deltas = self.box_head(self.pool(feats, sampled_boxes))
        logits, deltas = logits.float(), deltas.float()
        loss_cls = F.cross_entropy(logits, cls_t) if len(cls_t) else logits.sum() * 0
        positive = cls_t > 0
        target_deltas = self.box_coder.encode(box_t[positive], props[positive])
        loss_box = smooth_l1(deltas[positive, cls_t[positive]], target_deltas, beta=1 / 9) / max(1, len(cls_t))
        return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}

    # -- the interface ----------------------------------------------------------------------
    def loss(self, images: Images, targets: list[dict[str, Any]], *, stage: int | None = None,
             first_body: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """Joint training (``stage`` None), or one stage of the four-step schedule.

        Stage 1: RPN on ``first_body``'s features (both trained). Stage 2: the RoI head on
        this model's body, with proposals from stage 1's network (no gradient to it).
        Stage 3: the RPN on this model's body, frozen. Stage 4: the RoI head on this
        model's frozen body and RPN.
        """
        x, sizes = self.prepare(images)
        if stage is None:
            feats = self.body(x)
            proposals, losses = self.rpn_forward(feats, sizes, targets)
            losses.update(self.roi_losses(feats, proposals, targets))
        elif stage == 1:
            _, losses = self.rpn_forward(first_body(x), sizes, targets)
        elif stage == 2:
            with torch.no_grad():
                proposals, _ = self.rpn_forward(first_body(x), sizes, None)
            losses = self.roi_losses(self.body(x), proposals, targets)
        elif stage == 3:
            with torch.no_grad():
                feats = self.body(x)
            _, losses = self.rpn_forward(feats, sizes, targets)
        elif stage == 4:
            with torch.no_grad():
                feats = self.body(x)
                proposals, _ = self.rpn_forward(feats, sizes, None)
            losses = self.roi_losses(feats, proposals, targets)
        else:
            raise ValueError(f"stage must be None or 1..4, got {stage}")
        losses["loss"] = sum(losses.values())
        return losses

    @torch.no_grad()
    def detect(self, images: Images) -> list[dict[str, torch.Tensor]]:
        x, sizes = self.prepare(images)
        feats = self.body(x)
        proposals, _ = self.rpn_forward(feats, sizes, None)
        logits, deltas = self.box_head(self.pool(feats, proposals))
        probs, deltas = logits.float().softmax(-1), deltas.float()
        out, start = [], 0
        for props, size in zip(proposals, sizes):
            n = len(props)
            d = deltas[start:start + n, 1:]  # [n, K, 4], background dropped
            boxes = self.box_coder.decode(d, props[:, None, :].expand_as(d))
            out.append(postprocess(boxes, probs[start:start + n, 1:], size, score_threshold=self.score_threshold,
                                   nms_threshold=self.nms_threshold, max_detections=self.max_detections))
            start += n
        return out


@register_model("fasterrcnn")
def fasterrcnn(*, num_classes: int, in_channels: int = 3, backbone: str = "tiny", widths: Sequence[int] | None = None,
               first_stride: int = 8, fpn: bool = False, fpn_channels: int = 64,
               anchor_sizes: Sequence[Sequence[float]] = ((16.0, 32.0, 64.0),),
               aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
               anchor_wh: Sequence[Sequence[Sequence[float]]] | None = None,
               rpn_pre_nms_top_n: Sequence[int] = (600, 300), rpn_post_nms_top_n: Sequence[int] = (300, 100),
               rpn_batch_size: int = 256, box_batch_size: int = 128, roi_op: str = "align", representation: int = 256,
               box_scale: str = "log", score_threshold: float = 0.05, nms_threshold: float = 0.5,
               max_detections: int = 100) -> FasterRCNN:
    """Faster R-CNN (Ren et al. 2015): backbone, RPN with anchors, RoI align/pool head; any input size; optional FPN."""
    return FasterRCNN(num_classes=num_classes, in_channels=in_channels, backbone=backbone, widths=widths,
                      first_stride=first_stride, fpn=fpn, fpn_channels=fpn_channels, anchor_sizes=anchor_sizes,
                      aspect_ratios=aspect_ratios, anchor_wh=anchor_wh, rpn_pre_nms_top_n=tuple(rpn_pre_nms_top_n),
                      rpn_post_nms_top_n=tuple(rpn_post_nms_top_n), rpn_batch_size=rpn_batch_size,
                      box_batch_size=box_batch_size, roi_op=roi_op, representation=representation,
                      box_scale=box_scale, score_threshold=score_threshold, nms_threshold=nms_threshold,
                      max_detections=max_detections)
