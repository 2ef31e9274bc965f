"""SSD, the single-shot multibox detector (Liu et al. 2016).

One network pass predicts, for every default box of every feature map, a class (K + 1 with
background) and four offsets. Feature maps of several strides share the work of scale:
the fine map (stride 8) holds small default boxes, the coarse maps large ones
(``dlcamp.ops.default_boxes``: scale s_k per level, aspect ratios 1, 2, 1/2 and an extra
square of size sqrt(s_k s_{k+1})). The input has a fixed size: images of another size are
resized to it and the boxes found are scaled back.

Training (the multibox loss):

- matching: each ground-truth box takes the default box it overlaps most, and every
  default box with IoU >= 0.5 to some ground truth takes the best one (``ops.ssd_match``);
- regression: smooth L1 on the offsets of the matched boxes, encoded by ``ops.BoxCoder``
  with weights (10, 10, 5, 5) (the "variances" 0.1 and 0.2 of the paper), on a log scale
  for width and height (``box_scale="linear"`` for the ablation);
- classification: cross-entropy. Nearly all default boxes are background (for the shapes
  world ~1,400 per image against a handful of positives), so the negatives would drown
  the positives; hard negative mining keeps, per image, only the ``neg_pos_ratio`` x
  (number of positives) negatives with the highest loss (3:1 in the paper; ``None``
  keeps them all, for the ablation);
- both terms are divided by the number of positives.

Default boxes that overlap a crowd region (IoU >= 0.5) but match no ordinary box are
neither positive nor negative: they are left out of the loss.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp import ops
from dlcamp.errors import UsageError
from dlcamp.models import register_model
from dlcamp.models.backbones import Backbone, get_backbone
from dlcamp.models.detection.base import Detector, Images, Normalize, image_list, postprocess, smooth_l1
from dlcamp.registry import forwards


class SSD(Detector):
    """Backbone maps -> per-level 3x3 conv heads (classes and offsets) over the default boxes.

    One level of default boxes per map of ``backbone``; ``scales`` (one more than the
    levels) default to the paper's linear spacing from ``min_scale`` to ``max_scale``.
    """

    def __init__(
        self,
        backbone: Backbone,
        *,
        num_classes: int,
        image_size: Sequence[int] = (128, 128),
        scales: Sequence[float] | None = None,
        min_scale: float = 0.1,
        max_scale: float = 0.75,
        aspect_ratios: Sequence[Sequence[float]] | None = None,
        neg_pos_ratio: float | None = 3.0,
        box_scale: str = "log",
        iou_threshold: float = 0.5,
        score_threshold: float = 0.01,
        nms_threshold: float = 0.45,
        max_detections: int = 100,
        topk_candidates: int = 200,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise UsageError(f"ssd: num_classes must be >= 1, got {num_classes}")
        if neg_pos_ratio is not None and neg_pos_ratio <= 0:
            raise UsageError(f"ssd: neg_pos_ratio must be > 0 or null (no mining), got {neg_pos_ratio}")
        if box_scale not in ("log", "linear"):
            raise UsageError(f"ssd: box_scale must be 'log' or 'linear', got {box_scale!r}")
        num_levels = len(backbone.strides)
        self.num_classes = num_classes
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.neg_pos_ratio = neg_pos_ratio
        self.iou_threshold = iou_threshold
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.max_detections, self.topk_candidates = max_detections, topk_candidates
        self.normalize = Normalize()
        self.backbone = backbone
        if scales is None:  # the paper's linear spacing, one more than the levels (for the extra square)
            scales = [min_scale + (max_scale - min_scale) * k / max(1, num_levels - 1) for k in range(num_levels)]
            scales.append(min(1.0, scales[-1] + (max_scale - min_scale) / max(1, num_levels - 1)))
        if len(scales) != num_levels + 1:
            raise UsageError(f"ssd: scales needs num_levels + 1 = {num_levels + 1} values, got {list(scales)}")
        self.scales = [float(s) for s in scales]
        self.aspect_ratios = [list(r) for r in (aspect_ratios or [[2.0]] * num_levels)]
        if len(self.aspect_ratios) != num_levels:
            raise UsageError(f"ssd: aspect_ratios needs one list per level ({num_levels}), got {self.aspect_ratios}")
        self.coder = ops.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0), scale=box_scale)

        with torch.no_grad():  # the maps' sizes, for the default boxes
            was = self.backbone.training
            self.backbone.eval()
            feats = self.backbone(torch.zeros(1, backbone.in_channels, *self.image_size))
            self.backbone.train(was)
        self.feature_sizes = [tuple(f.shape[-2:]) for f in feats]
        per_loc = [2 + 2 * len(r) for r in self.aspect_ratios]
        self.cls_heads = nn.ModuleList(
            nn.Conv2d(c, a * (num_classes + 1), 3, padding=1) for c, a in zip(self.backbone.out_channels, per_loc)
        )
        self.box_heads = nn.ModuleList(
            nn.Conv2d(c, a * 4, 3, padding=1) for c, a in zip(self.backbone.out_channels, per_loc)
        )
        for head in list(self.cls_heads) + list(self.box_heads):
            nn.init.xavier_uniform_(head.weight)
            nn.init.zeros_(head.bias)
        boxes = ops.default_boxes(self.feature_sizes, self.image_size, self.scales, self.aspect_ratios)
        self.register_buffer("default_boxes", boxes, persistent=False)

    # -- the network ------------------------------------------------------------------------
    def head_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images at ``image_size`` -> class logits [B, N, K+1] and offsets [B, N, 4] over the N default boxes."""
        feats = self.backbone(self.normalize(x))
        cls, box = [], []
        for f, ch, bh in zip(feats, self.cls_heads, self.box_heads):
            b, _, h, w = f.shape
            # (B, A*C, H, W) -> (B, H, W, A, C) -> (B, H*W*A, C): location-major, as the default boxes
            cls.append(ch(f).permute(0, 2, 3, 1).reshape(b, h * w * (ch.out_channels // (self.num_classes + 1)), -1))
            box.append(bh(f).permute(0, 2, 3, 1).reshape(b, -1, 4))
        return torch.cat(cls, 1).float(), torch.cat(box, 1).float()  # losses and boxes in float32 under mixed precision

    def _fit(self, images: Images) -> tuple[torch.Tensor, list[tuple[float, float]]]:
        """The batch at the fixed input size, and each image's (sy, sx) scale from its own size."""
        if isinstance(images, torch.Tensor) and tuple(images.shape[-2:]) == self.image_size:
            return images, [(1.0, 1.0)] * len(images)
        out, factors = [], []
        for im in image_list(images):
            h, w = im.shape[-2:]
            out.append(
                F.interpolate(im[None], size=self.image_size, mode="bilinear", align_corners=False, antialias=True)[0]
            )
            factors.append((self.image_size[0] / h, self.image_size[1] / w))
        return torch.stack(out), factors

    # -- training ---------------------------------------------------------------------------
    def match(
        self, targets: list[dict[str, Any]], factors: list[tuple[float, float]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per default box: class target (0 background, -1 left out), and the matched box [B, N, 4]."""
        anchors = self.default_boxes
        cls_t, box_t = [], []
        for t, (sy, sx) in zip(targets, factors):
            boxes = t["boxes"].to(anchors) * anchors.new_tensor([sx, sy, sx, sy])
            crowd = t.get("iscrowd", torch.zeros(len(boxes), dtype=torch.bool)).to(anchors.device)
            gt, labels = boxes[~crowd], t["labels"].to(anchors.device)[~crowd]
            classes = torch.zeros(len(anchors), dtype=torch.long, device=anchors.device)
            matched = torch.zeros_like(anchors)
            if len(gt):
                idx = ops.ssd_match(ops.box_iou(gt, anchors), self.iou_threshold)
                pos = idx >= 0
                classes[pos] = labels[idx[pos]] + 1
                matched[pos] = gt[idx[pos]]
            if crowd.any():
                near_crowd = ops.box_iou(boxes[crowd], anchors).amax(0) >= self.iou_threshold
                classes[near_crowd & (classes == 0)] = -1
            cls_t.append(classes)
            box_t.append(matched)
        return torch.stack(cls_t), torch.stack(box_t), self.default_boxes

    def loss(self, images: Images, targets: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        x, factors = self._fit(images)
        logits, deltas = self.head_outputs(x)
        cls_t, box_t, anchors = self.match(targets, factors)
        positive = cls_t > 0
        num_pos = positive.sum().clamp(min=1).float()
        ce = F.cross_entropy(logits.flatten(0, 1), cls_t.clamp(min=0).flatten(), reduction="none").view_as(cls_t)
        usable = cls_t >= 0
        mined = ops.hard_negative_mining(ce.detach().masked_fill(~usable, -1.0), positive, self.neg_pos_ratio)
        keep = mined & usable
        loss_cls = ce[keep].sum() / num_pos
        target_deltas = self.coder.encode(box_t[positive], anchors.expand_as(box_t)[positive])
        loss_box = smooth_l1(deltas[positive], target_deltas, beta=1.0) / num_pos
        return {"loss": loss_cls + loss_box, "loss_cls": loss_cls, "loss_box": loss_box}

    # -- inference --------------------------------------------------------------------------
    @torch.no_grad()
    def detect(self, images: Images) -> list[dict[str, torch.Tensor]]:
        x, factors = self._fit(images)
        logits, deltas = self.head_outputs(x)
        probs = logits.softmax(-1)[..., 1:]
        boxes = self.coder.decode(deltas, self.default_boxes.expand_as(deltas))
        out = []
        for b, p, (sy, sx) in zip(boxes, probs, factors):
            det = postprocess(
                b,
                p,
                self.image_size,
                score_threshold=self.score_threshold,
                nms_threshold=self.nms_threshold,
                max_detections=self.max_detections,
                topk_candidates=self.topk_candidates,
            )
            det["boxes"] = det["boxes"] / det["boxes"].new_tensor([sx, sy, sx, sy])
            out.append(det)
        return out

    def anchors_per_level(self, image_size: tuple[int, int]) -> list[torch.Tensor]:
        counts = [h * w * (2 + 2 * len(r)) for (h, w), r in zip(self.feature_sizes, self.aspect_ratios)]
        sy, sx = image_size[0] / self.image_size[0], image_size[1] / self.image_size[1]
        scale = self.default_boxes.new_tensor([sx, sy, sx, sy])
        return [b * scale for b in self.default_boxes.split(counts)]


@register_model("ssd")
@forwards(SSD, drop=("image_size",))
def ssd(
    *,
    num_classes: int,
    input_shape: Sequence[int] = (3, 128, 128),
    backbone: str = "tiny",
    widths: Sequence[int] | None = None,
    num_levels: int = 4,
    first_stride: int = 8,
    backbone_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> SSD:
    """SSD (Liu et al. 2016): multi-scale default boxes, per-scale heads, multibox loss with hard negative mining.

    ``backbone`` names one of ``dlcamp.models.backbones`` (``widths`` is ``tiny``'s;
    ``backbone_options`` any other of its options); ``input_shape`` is (C, H, W).
    """
    options = {**({"widths": tuple(widths)} if widths else {}), **(backbone_options or {})}
    body = get_backbone(
        backbone, num_levels=num_levels, first_stride=first_stride, in_channels=int(input_shape[0]), **options
    )
    return SSD(body, num_classes=num_classes, image_size=tuple(input_shape[-2:]), **kwargs)
