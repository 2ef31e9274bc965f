"""Anchors and default boxes are identical to torchvision's; k-means recovers clustered shapes."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchvisionAnchorGenerator
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from dlcamp.errors import UsageError
from dlcamp.ops import AnchorGenerator, best_anchor_iou, default_boxes, grid_anchors, kmeans_anchors, num_default_boxes
from dlcamp.ops.anchors import anchor_shapes, centred_boxes

IMAGE = (64, 96)
FEATURES = [(16, 24), (8, 12), (4, 6)]


def torchvision_inputs(image_size=IMAGE, feature_sizes=FEATURES):
    images = ImageList(torch.zeros(1, 3, *image_size), [image_size])
    return images, [torch.zeros(1, 2, h, w) for h, w in feature_sizes]


@pytest.mark.parametrize(
    "sizes, ratios",
    [
        (((32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 3),  # FPN style: one size per level
        (((16, 40), (64, 100), (128, 256)), ((1.0,), (0.5, 2.0), (0.25, 1.0, 3.0))),
        (((32,), (64,), (128,)), (0.5, 1.0, 2.0)),  # one set of ratios for all levels
    ],
)
def test_anchor_generator_matches_torchvision(sizes, ratios):
    ours = AnchorGenerator(sizes, ratios)
    theirs = TorchvisionAnchorGenerator(sizes, ratios if isinstance(ratios[0], tuple) else (ratios,) * len(sizes))
    assert torch.equal(ours(IMAGE, FEATURES), theirs(*torchvision_inputs())[0])
    assert ours.num_anchors_per_location() == theirs.num_anchors_per_location()


def test_grid_anchors_are_location_major_and_centred_on_cells():
    cell = centred_boxes(anchor_shapes([4.0, 8.0], [1.0]))
    anchors = grid_anchors(cell, (2, 3), (8, 10))
    assert anchors.shape == (2 * 3 * 2, 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    expected = torch.tensor([[10.0 * (j + 0.5), 8.0 * (i + 0.5)] for i in range(2) for j in range(3) for _ in range(2)])
    assert torch.equal(centres, expected)
    torch.testing.assert_close(anchors[:2, 2:] - anchors[:2, :2], torch.tensor([[4.0, 4.0], [8.0, 8.0]]))
    corners = grid_anchors(cell, (2, 3), (8, 10), offset=0.0)  # torchvision's: on the cells' top-left pixels
    assert torch.equal(corners, anchors - torch.tensor([5.0, 4.0, 5.0, 4.0]))


def test_anchor_shapes_have_the_size_as_side_of_their_area_and_the_ratio_as_height_over_width():
    wh = anchor_shapes([16.0, 32.0], [0.5, 1.0, 2.0])
    assert wh.shape == (6, 2)  # size-major
    torch.testing.assert_close(wh[:, 0] * wh[:, 1], torch.tensor([16.0**2] * 3 + [32.0**2] * 3))
    torch.testing.assert_close(wh[:, 1] / wh[:, 0], torch.tensor([0.5, 1.0, 2.0] * 2))
    assert torch.equal(centred_boxes(wh)[:, 2:], wh / 2) and torch.equal(centred_boxes(wh)[:, :2], -wh / 2)


def test_grid_anchors_refuses_cell_anchors_that_are_not_boxes():
    with pytest.raises(UsageError, match="cell anchors"):
        grid_anchors(torch.zeros(3, 2), (2, 2), 8)


@pytest.mark.parametrize("clip", [True, False])
def test_default_boxes_match_torchvision(clip):
    ratios = [[2], [2, 3], [2]]
    scales = [0.2, 0.45, 0.7, 1.05]  # the last level's in-between square exceeds the image
    theirs = DefaultBoxGenerator(ratios, scales=scales, clip=clip)(*torchvision_inputs())[0]
    ours = default_boxes(FEATURES, IMAGE, scales, ratios, clip=clip)
    assert torch.equal(ours, theirs)
    assert num_default_boxes(ratios) == [4, 6, 4]
    assert ours.shape[0] == sum(h * w * a for (h, w), a in zip(FEATURES, num_default_boxes(ratios)))


def test_default_boxes_rejects_wrong_number_of_scales():
    with pytest.raises(UsageError, match="scales"):
        default_boxes(FEATURES, IMAGE, [0.2, 0.5, 0.9], [[2]] * 3)


def test_kmeans_recovers_clustered_shapes_and_beats_hand_set_anchors():
    g = torch.Generator().manual_seed(0)
    true_shapes = torch.tensor([[12.0, 30.0], [60.0, 40.0], [150.0, 160.0]])
    labels = torch.randint(0, 3, (600,), generator=g)
    wh = true_shapes[labels] * (1 + 0.05 * torch.randn(600, 2, generator=g))  # tight clusters
    anchors = kmeans_anchors(wh, 3, seed=0)
    assert anchors.shape == (3, 2)
    torch.testing.assert_close(anchors, true_shapes, rtol=0.05, atol=0.0)  # sorted by area, like true_shapes
    hand_set = torch.tensor([[32.0, 32.0], [64.0, 64.0], [128.0, 128.0]])
    learned, fixed = best_anchor_iou(wh, anchors).mean(), best_anchor_iou(wh, hand_set).mean()
    assert learned > 0.9 and learned > fixed + 0.1
    assert torch.equal(kmeans_anchors(wh, 3, seed=0), anchors)  # seeded: reproducible


def test_best_anchor_iou_of_centred_shapes():
    iou = best_anchor_iou(torch.tensor([[10.0, 10.0], [20.0, 5.0]]), torch.tensor([[10.0, 10.0], [5.0, 20.0]]))
    # (20, 5) against (10, 10): 50 / (100 + 100 - 50); against (5, 20): 25 / 175
    torch.testing.assert_close(iou, torch.tensor([1.0, 1.0 / 3.0]))


def test_kmeans_rejects_more_clusters_than_boxes():
    with pytest.raises(UsageError, match="k="):
        kmeans_anchors(torch.ones(2, 2), 3)
