"""MaskedConv2d: a Conv2d whose kernel reads only the raster-order past."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlcamp.nn import MaskedConv2d, raster_mask


def test_masks_a_and_b():
    assert raster_mask((3, 3), "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert raster_mask((3, 3), "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert raster_mask((1, 3), "B").tolist() == [[1, 1, 0]]
    assert raster_mask((1, 1), "A").tolist() == [[0]]
    with pytest.raises(ValueError):
        raster_mask((2, 3), "A")
    with pytest.raises(ValueError):
        raster_mask((3, 3), "C")


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_equals_a_plain_conv_with_the_future_weights_zeroed(mask_type):
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 4, 5, mask_type).double()
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    masked_w = conv.weight.detach() * raster_mask((5, 5), mask_type).double()
    torch.testing.assert_close(conv(x), F.conv2d(x, masked_w, conv.bias.detach(), padding=2))
    conv(x).sum().backward()
    hidden = raster_mask((5, 5), mask_type) == 0
    assert torch.count_nonzero(conv.weight.grad[..., hidden]) == 0  # masked weights never learn
    plain = torch.nn.Conv2d(3, 4, 5, padding=2).double()
    plain.load_state_dict(conv.state_dict())  # same keys: moves to and from nn.Conv2d
    assert set(conv.state_dict()) == {"weight", "bias"}
