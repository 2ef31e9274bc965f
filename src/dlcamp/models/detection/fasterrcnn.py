"""Faster R-CNN (Ren et al. 2015, arXiv:1506.01497): region proposals and a Fast R-CNN head on one backbone.

Two stages on one shared ``body`` (a backbone from ``dlcamp.models.backbones``, with an
optional FPN). The **RPN** (``rpn.RegionProposalNetwork``) scores anchors for "object or
not" and turns the best into proposals; the **RoI heads** (``roi_heads.RoIHeads``) cut a
fixed window of features out of the map for each proposal and classify it into K + 1
classes with class-specific box offsets. Because the heads only see RoI windows, any
input size works: a batch is zero-padded to a common size, and boxes are clipped to each
image's own extent.

Joint ("approximate joint") training optimises all four losses at once, with the
proposals treated as constants. The paper's **four-step alternating** schedule (RPN; Fast
R-CNN on those proposals with its own backbone; RPN again on the detector's frozen
backbone; the head again) is driven by the detection task through ``loss(stage=...)``.

Anchors come from explicit (w, h) shapes: the hand-set sizes x aspect ratios
(``ops.anchors.anchor_shapes``), or shapes fitted by ``ops.kmeans_anchors`` (``anchor_wh``).
``fpn=True`` adds a feature pyramid (Lin et al. 2017): the RPN runs on every level with
one anchor size per level, and each RoI is pooled from the level that suits its size.

The parts train as three groups (``param_groups``): ``body``, ``rpn`` and ``head`` (the RoI heads).

Legend: B batch, H, W the padded images' height and width, K classes.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from dlcamp.errors import UsageError
from dlcamp.models import register_model
from dlcamp.models.backbones import Backbone, get_backbone
from dlcamp.models.contracts import Grouped
from dlcamp.models.detection.base import Detector, Images, Normalize, pad_batch
from dlcamp.models.detection.roi_heads import RoIHeads
from dlcamp.models.detection.rpn import RegionProposalNetwork
from dlcamp.ops.anchors import anchor_shapes
from dlcamp.registry import forwards

ANCHOR_SIZES = ((16.0, 32.0, 64.0),)  # one level of three sizes: the shapes world's objects are 12-60 px


class FasterRCNN(Detector, Grouped):
    """``body`` -> ``rpn`` proposals -> ``roi_heads`` detections; ``loss`` jointly or by four-step stage."""

    def __init__(
        self,
        body: Backbone,
        *,
        num_classes: int,
        anchor_sizes: Sequence[Sequence[float]] = ANCHOR_SIZES,
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        anchor_wh: Sequence[Sequence[Sequence[float]]] | None = None,
        rpn_pre_nms_top_n: Sequence[int] = (600, 300),
        rpn_post_nms_top_n: Sequence[int] = (300, 100),
        rpn_nms_threshold: float = 0.7,
        rpn_fg_iou: float = 0.7,
        rpn_bg_iou: float = 0.3,
        rpn_batch_size: int = 256,
        rpn_positive_fraction: float = 0.5,
        roi_op: str = "align",
        roi_size: int = 7,
        sampling_ratio: int = 2,
        representation: int = 256,
        box_fg_iou: float = 0.5,
        box_bg_iou: float = 0.5,
        box_batch_size: int = 128,
        box_positive_fraction: float = 0.25,
        box_scale: str = "log",
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        max_detections: int = 100,
    ) -> None:
        super().__init__()
        if box_scale not in ("log", "linear"):
            raise UsageError(f"fasterrcnn: box_scale must be 'log' or 'linear', got {box_scale!r}")
        if roi_op not in ("align", "pool"):
            raise UsageError(f"fasterrcnn: roi_op must be 'align' or 'pool', got {roi_op!r}")
        if anchor_wh is not None:
            shapes = [torch.tensor(level, dtype=torch.float32).reshape(-1, 2) for level in anchor_wh]
        else:
            shapes = [anchor_shapes(sizes, aspect_ratios) for sizes in anchor_sizes]
        if len(shapes) != len(body.strides):
            raise UsageError(
                f"fasterrcnn: the backbone gives {len(body.strides)} feature map(s) but the anchors have "
                f"{len(shapes)} level(s); give one level of anchors per map"
            )
        if len({len(s) for s in shapes}) != 1:
            raise UsageError("fasterrcnn: every level needs the same number of anchors (the RPN head is shared)")
        self.num_classes = num_classes
        self.normalize = Normalize()
        self.body = body
        channels = body.out_channels[0]
        self.rpn = RegionProposalNetwork(
            channels,
            shapes,
            body.strides,
            pre_nms_top_n=rpn_pre_nms_top_n,
            post_nms_top_n=rpn_post_nms_top_n,
            nms_threshold=rpn_nms_threshold,
            fg_iou=rpn_fg_iou,
            bg_iou=rpn_bg_iou,
            batch_size=rpn_batch_size,
            positive_fraction=rpn_positive_fraction,
            box_scale=box_scale,
        )
        self.roi_heads = RoIHeads(
            channels,
            body.strides,
            num_classes,
            roi_op=roi_op,
            roi_size=roi_size,
            sampling_ratio=sampling_ratio,
            representation=representation,
            fg_iou=box_fg_iou,
            bg_iou=box_bg_iou,
            batch_size=box_batch_size,
            positive_fraction=box_positive_fraction,
            box_scale=box_scale,
            score_threshold=score_threshold,
            nms_threshold=nms_threshold,
            max_detections=max_detections,
        )

    @property
    def box_head(self) -> nn.Module:
        """The RoI heads' box head (trained in steps 2 and 4 of the four-step schedule)."""
        return self.roi_heads.box_head

    def param_groups(self) -> dict[str, nn.Module]:
        return {"body": self.body, "rpn": self.rpn, "head": self.roi_heads}

    def prepare(self, images: Images) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Images -> the normalised batch [B, 3, H, W] padded to the largest stride, and each image's own size."""
        x, sizes = pad_batch(images, max(self.body.strides))
        return self.normalize(x), sizes

    def anchors_per_level(self, image_size: tuple[int, int]) -> list[torch.Tensor]:
        return self.rpn.anchors_per_level(image_size)

    def loss(
        self,
        images: Images,
        targets: list[dict[str, Any]],
        *,
        stage: int | None = None,
        first_body: nn.Module | None = None,
    ) -> dict[str, torch.Tensor]:
        """Joint training (``stage`` None), or one stage of the four-step schedule.

        Stage 1: RPN on ``first_body``'s features (both trained). Stage 2: the RoI head on
        this model's body, with proposals from stage 1's network (no gradient to it).
        Stage 3: the RPN on this model's body, frozen. Stage 4: the RoI head on this
        model's frozen body and RPN.
        """
        x, sizes = self.prepare(images)
        if stage is None:
            feats = self.body(x)
            proposals, losses = self.rpn(feats, sizes, targets)
            losses.update(self.roi_heads.loss(feats, proposals, targets))
        elif stage == 1:
            _, losses = self.rpn(first_body(x), sizes, targets)
        elif stage == 2:
            with torch.no_grad():
                proposals, _ = self.rpn(first_body(x), sizes, None)
            losses = self.roi_heads.loss(self.body(x), proposals, targets)
        elif stage == 3:
            with torch.no_grad():
                feats = self.body(x)
            _, losses = self.rpn(feats, sizes, targets)
        elif stage == 4:
            with torch.no_grad():
                feats = self.body(x)
                proposals, _ = self.rpn(feats, sizes, None)
            losses = self.roi_heads.loss(feats, proposals, targets)
        else:
            raise ValueError(f"stage must be None or 1..4, got {stage}")
        losses["loss"] = sum(losses.values())
        return losses

    @torch.no_grad()
    def detect(self, images: Images) -> list[dict[str, torch.Tensor]]:
        x, sizes = self.prepare(images)
        feats = self.body(x)
        proposals, _ = self.rpn(feats, sizes, None)
        return self.roi_heads.detect(feats, proposals, sizes)


@register_model("fasterrcnn")
@forwards(FasterRCNN, drop=("body",))
def fasterrcnn(
    *,
    num_classes: int,
    in_channels: int = 3,
    backbone: str = "tiny",
    widths: Sequence[int] | None = None,
    first_stride: int = 8,
    fpn: bool = False,
    fpn_channels: int = 64,
    backbone_options: dict[str, Any] | None = None,
    anchor_sizes: Sequence[Sequence[float]] = ANCHOR_SIZES,
    anchor_wh: Sequence[Sequence[Sequence[float]]] | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """Faster R-CNN (Ren et al. 2015): backbone, RPN with anchors, RoI align/pool head; any input size; optional FPN.

    ``backbone`` names one of ``dlcamp.models.backbones`` (``widths`` is ``tiny``'s;
    ``backbone_options`` any other of its options); one feature map per level of anchors.
    """
    num_levels = len(anchor_wh if anchor_wh is not None else anchor_sizes)
    if not fpn and num_levels != 1:
        raise UsageError(
            f"fasterrcnn: without fpn there is one feature level, so anchors need one level; "
            f"got {num_levels} (set model.fpn=true for several)"
        )
    options = {**({"widths": tuple(widths)} if widths else {}), **(backbone_options or {})}
    body = get_backbone(
        backbone,
        num_levels=num_levels,
        first_stride=first_stride,
        in_channels=in_channels,
        fpn_channels=fpn_channels if fpn else None,
        **options,
    )
    return FasterRCNN(body, num_classes=num_classes, anchor_sizes=anchor_sizes, anchor_wh=anchor_wh, **kwargs)
