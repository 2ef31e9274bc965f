"""BoxCoder agrees with torchvision's (log scale) and decodes what it encodes (both scales)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder as TorchvisionBoxCoder

from dlcamp.errors import UsageError
from dlcamp.ops import BoxCoder

WEIGHTS = [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]


def random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=g) * 200
    return torch.cat((corner, corner + 4 + torch.rand(n, 2, generator=g) * 100), dim=1)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_log_coder_matches_torchvision(weights):
    boxes, anchors = random_boxes(50, 0), random_boxes(50, 1)
    ours, theirs = BoxCoder(weights), TorchvisionBoxCoder(weights)
    deltas = ours.encode(boxes, anchors)
    torch.testing.assert_close(deltas, theirs.encode_single(boxes, anchors), rtol=1e-5, atol=1e-5)
    wild = deltas * 3  # includes dw, dh beyond the clip
    torch.testing.assert_close(ours.decode(wild, anchors), theirs.decode_single(wild, anchors), rtol=1e-5, atol=1e-5)


def test_decode_clips_the_log_size():
    anchor = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    box = BoxCoder().decode(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), anchor)
    torch.testing.assert_close(box, torch.tensor([[-492.0, -492.0, 508.0, 508.0]]))  # 1000 pixels wide


def test_linear_coder_formulas_and_negative_sizes():
    coder = BoxCoder((1.0, 1.0, 2.0, 2.0), scale="linear")
    anchor = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    box = torch.tensor([[5.0, 0.0, 25.0, 10.0]])  # centre (15, 5), 20 x 10
    torch.testing.assert_close(coder.encode(box, anchor), torch.tensor([[1.0, -0.25, 2.0, -1.0]]))
    shrunk = coder.decode(torch.tensor([[0.0, 0.0, -4.0, 0.0]]), anchor)  # w = 10 * (1 - 2) < 0
    assert shrunk[0, 2] - shrunk[0, 0] == 0


def test_coder_broadcasts_leading_dimensions():
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    boxes = random_boxes(12, 2).reshape(3, 4, 4)
    anchors = random_boxes(4, 3)  # (4, 4) shared by the 3 images
    deltas = coder.encode(boxes, anchors)
    assert deltas.shape == (3, 4, 4)
    torch.testing.assert_close(deltas[1], coder.encode(boxes[1], anchors))
    torch.testing.assert_close(coder.decode(deltas, anchors), boxes, rtol=1e-4, atol=1e-3)


def test_coder_rejects_unknown_scale():
    with pytest.raises(UsageError, match="scale"):
        BoxCoder(scale="sqrt")


@st.composite
def box_pairs(draw):
    def box():
        x, y = draw(st.floats(-100, 100)), draw(st.floats(-100, 100))
        return [x, y, x + draw(st.floats(0.5, 300)), y + draw(st.floats(0.5, 300))]

    return torch.tensor([box()], dtype=torch.float64), torch.tensor([box()], dtype=torch.float64)


@settings(max_examples=50, deadline=None)
@given(pair=box_pairs(), scale=st.sampled_from(["log", "linear"]), weights=st.sampled_from(WEIGHTS))
def test_decode_inverts_encode(pair, scale, weights):
    boxes, anchors = pair
    coder = BoxCoder(weights, scale=scale, clip=math.inf)
    decoded = coder.decode(coder.encode(boxes, anchors), anchors)
    torch.testing.assert_close(decoded, boxes, rtol=1e-4, atol=1e-4 * float(boxes.abs().max()))
