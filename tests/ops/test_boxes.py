"""Box geometry agrees with torchvision.ops, stays finite on degenerate boxes, and keeps its bounds."""

from __future__ import annotations

import pytest
import torch
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcamp.errors import UsageError
from dlcamp.ops import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    generalized_box_iou,
    generalized_box_iou_loss,
    remove_small_boxes,
)


def random_boxes(n: int, seed: int = 0, size: float = 50.0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=g, dtype=dtype) * 100
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * size + 0.5
    return torch.cat((corner, corner + wh), dim=1)


@st.composite
def boxes_strategy(draw, max_boxes: int = 6):
    """Boxes with small integer coordinates: many overlaps, touching edges and zero-area boxes."""
    n = draw(st.integers(1, max_boxes))
    rows = []
    for _ in range(n):
        x1, y1 = draw(st.integers(0, 8)), draw(st.integers(0, 8))
        rows.append([x1, y1, x1 + draw(st.integers(0, 6)), y1 + draw(st.integers(0, 6))])
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_matches_torchvision(in_fmt, out_fmt):
    boxes = random_boxes(20)
    torch.testing.assert_close(box_convert(boxes, in_fmt, out_fmt), tvo.box_convert(boxes, in_fmt, out_fmt))


def test_box_convert_round_trips_and_rejects_unknown_formats():
    boxes = random_boxes(10, dtype=torch.float64)
    for fmt in ("xywh", "cxcywh"):
        torch.testing.assert_close(box_convert(box_convert(boxes, "xyxy", fmt), fmt, "xyxy"), boxes)
    with pytest.raises(UsageError, match="unknown box format"):
        box_convert(boxes, "xyxy", "yxyx")


def test_box_area_iou_and_giou_match_torchvision():
    boxes1, boxes2 = random_boxes(15, seed=1), random_boxes(11, seed=2)
    torch.testing.assert_close(box_area(boxes1), tvo.box_area(boxes1))
    torch.testing.assert_close(box_iou(boxes1, boxes2), tvo.box_iou(boxes1, boxes2))
    torch.testing.assert_close(generalized_box_iou(boxes1, boxes2), tvo.generalized_box_iou(boxes1, boxes2))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_giou_loss_matches_torchvision(reduction):
    boxes1, boxes2 = random_boxes(12, seed=3), random_boxes(12, seed=4)
    torch.testing.assert_close(
        generalized_box_iou_loss(boxes1, boxes2, reduction),
        tvo.generalized_box_iou_loss(boxes1, boxes2, reduction),
    )


def test_degenerate_boxes_give_zero_overlap_not_nan():
    point = torch.tensor([[5.0, 5.0, 5.0, 5.0]])
    line = torch.tensor([[2.0, 3.0, 9.0, 3.0]])
    boxes = torch.cat((point, line, point))
    iou, giou = box_iou(boxes, boxes), generalized_box_iou(boxes, boxes)
    assert torch.isfinite(iou).all() and torch.isfinite(giou).all()
    assert torch.equal(iou, torch.zeros(3, 3))
    assert torch.equal(giou[0, 2], torch.tensor(0.0))  # same point: empty union, empty enclosing box
    assert torch.isfinite(generalized_box_iou_loss(point, point)).all()


def test_clip_and_remove_small_boxes_match_torchvision():
    boxes = random_boxes(30, seed=5, size=80) - 20
    torch.testing.assert_close(clip_boxes_to_image(boxes, (60, 90)), tvo.clip_boxes_to_image(boxes, (60, 90)))
    assert torch.equal(remove_small_boxes(boxes, 30.0), tvo.remove_small_boxes(boxes, 30.0))


@settings(max_examples=50, deadline=None)
@given(boxes1=boxes_strategy(), boxes2=boxes_strategy())
def test_iou_is_in_unit_interval_and_symmetric(boxes1, boxes2):
    iou = box_iou(boxes1, boxes2)
    assert ((iou >= 0) & (iou <= 1)).all()
    torch.testing.assert_close(iou, box_iou(boxes2, boxes1).T)
    self_iou = box_iou(boxes1, boxes1).diagonal()
    nondegenerate = box_area(boxes1) > 0
    assert torch.equal(self_iou[nondegenerate], torch.ones_like(self_iou[nondegenerate]))


@settings(max_examples=50, deadline=None)
@given(boxes1=boxes_strategy(), boxes2=boxes_strategy())
def test_giou_is_in_minus_one_one_and_at_most_iou(boxes1, boxes2):
    giou, iou = generalized_box_iou(boxes1, boxes2), box_iou(boxes1, boxes2)
    assert ((giou >= -1) & (giou <= 1)).all()
    assert (giou <= iou + 1e-12).all()
    torch.testing.assert_close(giou, generalized_box_iou(boxes2, boxes1).T)
