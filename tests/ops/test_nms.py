"""NMS keeps exactly the boxes torchvision keeps, in the same order, and obeys the greedy rule."""

from __future__ import annotations

import importlib
from unittest import mock

import pytest
import torch
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcamp.errors import UsageError
from dlcamp.ops import batched_nms, box_iou, nms

# The package re-exports the function nms, which hides the submodule of that name.
nms_module = importlib.import_module("dlcamp.ops.nms")


def realistic_boxes(n: int, seed: int, image: float = 100.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n, 2, generator=g, dtype=dtype) * image
    wh = 2 + torch.rand(n, 2, generator=g, dtype=dtype) * image / 4
    return torch.cat((centres - wh / 2, centres + wh / 2), dim=1), torch.rand(n, generator=g, dtype=dtype)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 16 boxes, so that a few dozen boxes already cross several blocks and chunks."""
    monkeypatch.setattr(nms_module, "BLOCK", 16)
    monkeypatch.setattr(nms_module, "CHUNK_PAIRS", 64)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_nms_matches_torchvision(threshold, seed, small_blocks):
    boxes, scores = realistic_boxes(300, seed)
    assert torch.equal(nms(boxes, scores, threshold), tvo.nms(boxes, scores, threshold))


def test_nms_matches_torchvision_with_default_blocks():
    boxes, scores = realistic_boxes(2500, seed=3)  # three blocks of 1024
    assert torch.equal(nms(boxes, scores, 0.5), tvo.nms(boxes, scores, 0.5))


def test_nms_matches_torchvision_on_tied_scores_and_duplicate_boxes(small_blocks):
    boxes, _ = realistic_boxes(60, seed=4)
    boxes = torch.cat((boxes, boxes[:20], boxes[:5]))  # exact duplicates
    g = torch.Generator().manual_seed(5)
    scores = torch.randint(0, 4, (boxes.shape[0],), generator=g).float()  # many ties
    for threshold in (0.0, 0.5, 1.0):
        assert torch.equal(nms(boxes, scores, threshold), tvo.nms(boxes, scores, threshold))
    # Identical boxes with equal scores: the first in input order survives (stable sort).
    same = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 4)
    assert nms(same, torch.ones(4), 0.5).tolist() == [0]
    assert nms(same, torch.ones(4), 1.0).tolist() == [0, 1, 2, 3]  # IoU 1 is not > 1


def test_nms_on_zero_area_boxes_and_empty_input():
    zero = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 5.0, 0.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    kept = nms(zero, scores, 0.5)
    assert torch.equal(kept, tvo.nms(zero, scores, 0.5)) and kept.tolist() == [0, 1, 2]
    empty = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.dtype == torch.int64 and empty.numel() == 0


def test_nms_threshold_rounding_matches_torchvision():
    # IoU = 4 / 5 computes to float32(0.8) = 0.80000001, which is above the threshold 0.8;
    # torchvision compares in double and suppresses, a plain float32 comparison would not.
    boxes = torch.tensor([[0.0, 0.0, 5.0, 1.0], [0.0, 0.0, 4.0, 1.0]])
    scores = torch.tensor([1.0, 0.5])
    assert nms(boxes, scores, 0.8).tolist() == [0]
    for threshold in (0.79, 0.8, 0.81):
        assert torch.equal(nms(boxes, scores, threshold), tvo.nms(boxes, scores, threshold))


def test_nms_float64_matches_torchvision(small_blocks):
    boxes, scores = realistic_boxes(200, seed=6, dtype=torch.float64)
    assert torch.equal(nms(boxes, scores, 0.4), tvo.nms(boxes, scores, 0.4))


def test_nms_rejects_mismatched_shapes():
    with pytest.raises(UsageError, match="scores"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(UsageError, match="boxes"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)


@pytest.mark.parametrize("n", [200, 1500])  # the coordinate-trick path and the per-category path
def test_batched_nms_matches_torchvision(n, small_blocks):
    boxes, scores = realistic_boxes(n, seed=7)
    g = torch.Generator().manual_seed(8)
    idxs = torch.randint(0, 5, (n,), generator=g)
    scores[: n // 4] = scores[n // 4 : n // 2]  # ties across categories
    for threshold in (0.3, 0.6):
        kept = batched_nms(boxes, scores, idxs, threshold)
        assert torch.equal(kept, tvo.batched_nms(boxes, scores, idxs, threshold))
        assert (scores[kept].diff() <= 0).all()


def test_batched_nms_never_suppresses_across_categories():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    kept = batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 0]), 0.5)
    assert kept.tolist() == [0, 1]
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).numel() == 0


@st.composite
def scored_boxes(draw):
    n = draw(st.integers(1, 40))
    coords = draw(st.lists(st.integers(0, 12), min_size=4 * n, max_size=4 * n))
    box = torch.tensor(coords, dtype=torch.float32).reshape(n, 4)
    box = torch.cat((torch.minimum(box[:, :2], box[:, 2:]), torch.maximum(box[:, :2], box[:, 2:])), dim=1)
    scores = torch.tensor(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), dtype=torch.float32)
    return box, scores


@settings(max_examples=50, deadline=None)
@given(data=scored_boxes(), threshold=st.sampled_from([0.0, 0.25, 0.5, 0.8]))
def test_nms_keeps_no_overlapping_pair_and_every_suppressed_box_has_a_reason(data, threshold):
    boxes, scores = data
    with mock.patch.object(nms_module, "BLOCK", 8), mock.patch.object(nms_module, "CHUNK_PAIRS", 16):
        kept = nms(boxes, scores, threshold)
    assert torch.equal(kept, tvo.nms(boxes, scores, threshold))
    # The IoUs in float32, as nms computes them, compared with the threshold in float64,
    # as torchvision compares them (4 / 5 in float32 is above 0.8).
    iou = box_iou(boxes, boxes).double()
    kept_iou = iou[kept][:, kept]
    assert not (kept_iou.triu(diagonal=1) > threshold).any()
    suppressed = torch.ones(len(boxes), dtype=torch.bool)
    suppressed[kept] = False
    position = {int(i): p for p, i in enumerate(torch.sort(scores, descending=True, stable=True).indices)}
    for j in torch.where(suppressed)[0].tolist():
        # some kept box that comes before j (higher score, or equal and earlier) overlaps it
        assert any(position[int(i)] < position[j] and iou[i, j] > threshold for i in kept), j


@pytest.mark.parametrize("blocks", [(8, 16), (1024, 1 << 18)])
def test_nms_resolves_a_long_suppression_chain(blocks):
    # Each box overlaps the next above the threshold (IoU 7 / 13) but not the one after
    # (4 / 16): greedy keeps every other box, which the in-block iteration must propagate
    # down the whole chain.
    x = torch.arange(40.0) * 3
    boxes = torch.stack((x, torch.zeros(40), x + 10, torch.full((40,), 10.0)), dim=1)
    scores = torch.linspace(1, 0, 40)
    with mock.patch.object(nms_module, "BLOCK", blocks[0]), mock.patch.object(nms_module, "CHUNK_PAIRS", blocks[1]):
        kept = nms(boxes, scores, 0.5)
    assert kept.tolist() == list(range(0, 40, 2))
    assert torch.equal(kept, tvo.nms(boxes, scores, 0.5))
