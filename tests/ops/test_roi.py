"""RoI Align and RoI pooling agree with torchvision.ops, values and input gradients, in both box formats."""

from __future__ import annotations

import pytest
import torch
import torchvision.ops as tvo

from dlcamp.errors import UsageError
from dlcamp.ops import RoIAlign, RoIPool, roi_align, roi_pool


def feature_map(dtype=torch.float64, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 9, 11, generator=g, dtype=dtype)


def rois(dtype=torch.float64, seed=1, count=24) -> torch.Tensor:
    """(K, 5) boxes in image pixels (stride 2 over the 9 x 11 map), some partly or wholly outside it,
    some thinner than a cell, one degenerate."""
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=g, dtype=dtype) * 28 - 4
    size = torch.rand(count, 2, generator=g, dtype=dtype) * 14
    size[:3] = torch.rand(3, 2, generator=g, dtype=dtype) * 0.8  # under one cell
    boxes = torch.cat((corner, corner + size), dim=1)
    boxes[3] = torch.tensor([5.0, 5.0, 5.0, 5.0])
    boxes[4] = torch.tensor([30.0, 25.0, 40.0, 30.0])  # entirely outside
    image = torch.randint(0, 2, (count, 1), generator=g).to(dtype)
    return torch.cat((image, boxes), dim=1)


def as_list(boxes: torch.Tensor) -> list[torch.Tensor]:
    return [boxes[boxes[:, 0] == i, 1:] for i in range(2)]


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
@pytest.mark.parametrize("output_size", [(3, 4), 2])
def test_roi_align_matches_torchvision_in_float64(aligned, sampling_ratio, output_size):
    x, boxes = feature_map(), rois()
    args = (output_size, 0.5, sampling_ratio, aligned)
    torch.testing.assert_close(roi_align(x, boxes, *args), tvo.roi_align(x, boxes, *args), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_matches_torchvision_with_list_boxes_and_gradients(aligned):
    x, boxes = feature_map(torch.float32), rois(torch.float32)
    ours_x, theirs_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = roi_align(ours_x, as_list(boxes), (2, 3), 0.5, -1, aligned)
    theirs = tvo.roi_align(theirs_x, as_list(boxes), (2, 3), 0.5, -1, aligned)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    weights = torch.randn(theirs.shape, generator=torch.Generator().manual_seed(2))
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    torch.testing.assert_close(ours_x.grad, theirs_x.grad, rtol=1e-4, atol=1e-4)


def test_roi_align_gradient_passes_gradcheck():
    x = feature_map()[:, :1, :5, :6].clone().requires_grad_()
    boxes = torch.tensor([[0, 0.5, 1.2, 7.3, 6.1], [1, -1.0, 2.0, 4.0, 9.5]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_align(f, boxes, 2, 0.7, 2, True), (x,))


def test_roi_align_module_and_empty_boxes():
    x = feature_map()
    module = RoIAlign((2, 2), spatial_scale=0.5, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(module(x, rois()), tvo.RoIAlign((2, 2), 0.5, 2, True)(x, rois()))
    assert roi_align(x, torch.zeros(0, 5, dtype=torch.float64), 3).shape == (0, 3, 3, 3)
    assert roi_align(x, [torch.zeros(0, 4, dtype=torch.float64)] * 2, 3).shape == (0, 3, 3, 3)


@pytest.mark.parametrize("output_size, scale", [((3, 2), 0.5), (4, 0.37), (1, 1.0)])
def test_roi_pool_matches_torchvision(output_size, scale):
    x, boxes = feature_map(), rois()
    torch.testing.assert_close(
        roi_pool(x, boxes, output_size, scale), tvo.roi_pool(x, boxes, output_size, scale), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(
        roi_pool(x, as_list(boxes), output_size, scale),
        tvo.roi_pool(x, as_list(boxes), output_size, scale),
        rtol=1e-5,
        atol=1e-5,
    )


def test_roi_pool_rounds_halves_away_from_zero_and_routes_gradients_like_torchvision():
    x = feature_map(torch.float32)
    boxes = torch.tensor([[0, 2.5, 1.5, 9.5, 7.5], [1, 0.5, 0.5, 4.5, 3.5]])  # every corner on a .5
    ours_x, theirs_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = RoIPool(3, 1.0)(ours_x, boxes), tvo.RoIPool(3, 1.0)(theirs_x, boxes)
    torch.testing.assert_close(ours, theirs)
    ours.sum().backward()
    theirs.sum().backward()
    torch.testing.assert_close(ours_x.grad, theirs_x.grad)


def test_roi_ops_reject_malformed_boxes():
    x = feature_map()
    with pytest.raises(UsageError, match=r"\(K, 5\)"):
        roi_align(x, torch.zeros(3, 4, dtype=torch.float64), 2)
    with pytest.raises(UsageError, match=r"\(L, 4\)"):
        roi_pool(x, [torch.zeros(3, 5, dtype=torch.float64)], 2)
    with pytest.raises(UsageError, match="batch indices"):
        roi_align(x, torch.tensor([[2.0, 0, 0, 1, 1]], dtype=torch.float64), 2)
