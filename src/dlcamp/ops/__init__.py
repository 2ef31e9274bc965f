"""Detection ops: pure tensor functions that SSD and Faster R-CNN are built from.

Box geometry (``boxes``), non-maximum suppression (``nms``), RoI pooling and RoI Align
(``roi``), box coding (``coder``), anchor matching and sampling (``matcher``) and anchors
(``anchors``). Each agrees with its torchvision counterpart where there is one; each
module's docstring names its paper.

Segmentation: the transposed convolution written out and FCN's bilinear kernel (``conv_transpose``).
"""

from dlcamp.ops.anchors import (
    AnchorGenerator,
    best_anchor_iou,
    default_boxes,
    grid_anchors,
    kmeans_anchors,
    num_default_boxes,
)
from dlcamp.ops.boxes import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    generalized_box_iou,
    generalized_box_iou_loss,
    remove_small_boxes,
)
from dlcamp.ops.coder import BoxCoder
from dlcamp.ops.conv_transpose import bilinear_kernel, bilinear_weight, conv_transpose2d
from dlcamp.ops.matcher import BalancedPositiveNegativeSampler, Matcher, hard_negative_mining, ssd_match
from dlcamp.ops.nms import batched_nms, nms
from dlcamp.ops.roi import RoIAlign, RoIPool, roi_align, roi_pool

__all__ = [
    "AnchorGenerator",
    "BalancedPositiveNegativeSampler",
    "BoxCoder",
    "Matcher",
    "RoIAlign",
    "RoIPool",
    "batched_nms",
    "best_anchor_iou",
    "bilinear_kernel",
    "bilinear_weight",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes_to_image",
    "conv_transpose2d",
    "default_boxes",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "grid_anchors",
    "hard_negative_mining",
    "kmeans_anchors",
    "nms",
    "num_default_boxes",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
    "ssd_match",
]
