"""Detection figures: they draw, they save, they refuse malformed input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcamp.report import figures as F

NAMES = ["circle", "square", "triangle"]


def saved_png(fig, tmp_path, name: str) -> int:
    path = F.save(fig, tmp_path / f"{name}.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path.stat().st_size


def test_draw_boxes_changes_the_outline_and_nothing_far_from_it():
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    drawn = np.asarray(
        F.draw_boxes(
            image, torch.tensor([[40.0, 50.0, 100.0, 90.0]]), torch.tensor([1]), NAMES, scores=torch.tensor([0.93])
        )
    )
    assert drawn.shape == image.shape
    changed = drawn.any(-1)  # (H, W)
    assert changed[90, 40:101].all() and changed[50:91, 40].all() and changed[50:91, 100].all()  # bottom, sides
    assert changed[50, 40:101].all()  # top edge (the caption's band may sit on it too)
    assert not changed[60:80, 50:90].any()  # inside stays untouched
    assert not changed[100:, :].any() and not changed[:, 120:].any() and not changed[:, :30].any()  # far outside
    assert changed[30:50, 40:100].any()  # the caption sits just above the box


def test_draw_boxes_takes_a_float_tensor_and_draws_dashed_ground_truth():
    image = torch.zeros(3, 64, 64)
    drawn = np.asarray(F.draw_boxes(image, [[8.0, 30.0, 56.0, 60.0]], [0], NAMES, dashed=True))
    bottom = drawn[60, 8:57].any(-1)
    assert bottom.any() and not bottom.all()  # dashes: on and off
    assert not drawn[34:57, 12:52].any()


def test_plot_detections_saves_with_and_without_targets(tmp_path):
    images = torch.rand(3, 3, 48, 64)
    predictions = [
        {
            "boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0], [10.0, 5.0, 20.0, 40.0]]),
            "scores": torch.tensor([0.9, 0.2]),
            "labels": torch.tensor([0, 2]),
        }
    ] * 3
    targets = [{"boxes": torch.tensor([[5.0, 5.0, 31.0, 29.0]]), "labels": torch.tensor([0])}] * 3
    assert saved_png(F.plot_detections(images, predictions, NAMES, targets=targets, title="val"), tmp_path, "a") > 5000
    assert saved_png(F.plot_detections(images[:1], predictions[:1], NAMES), tmp_path, "b") > 2000


def test_plot_anchors_saves(tmp_path):
    levels = []
    for stride, size in [(8, 16.0), (16, 40.0)]:
        centres = torch.stack(
            torch.meshgrid(torch.arange(stride / 2, 64, stride), torch.arange(stride / 2, 64, stride), indexing="xy"),
            -1,
        ).reshape(-1, 1, 2)  # (L, 1, 2)
        wh = torch.tensor([[size, size], [size * 1.4, size / 1.4], [size / 1.4, size * 1.4]])  # (A, 2)
        levels.append(torch.cat([centres - wh / 2, centres + wh / 2], -1).reshape(-1, 4))  # (L * A, 4)
    assert saved_png(F.plot_anchors(torch.rand(3, 64, 64), levels, title="anchors"), tmp_path, "anchors") > 5000


def test_plot_pr_curves_skips_classes_without_objects(tmp_path):
    recall = np.linspace(0, 1, 101)
    precision = np.stack([np.linspace(1, 0.2, 101), np.full(101, -1.0), np.where(recall < 0.6, 0.8, 0.0)], 1)
    fig = F.plot_pr_curves(precision, recall, NAMES, title="IoU .50")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert len(labels) == 2 and labels[0].startswith("circle (AP 0.6") and "square" not in " ".join(labels)
    assert saved_png(fig, tmp_path, "pr") > 5000


@pytest.mark.parametrize(
    "call",
    [
        lambda: F.draw_boxes(np.zeros((8, 8), np.uint8), [[0, 0, 1, 1]], [0], NAMES),  # no channel axis
        lambda: F.draw_boxes(torch.zeros(3, 8, 8), [[0, 0, 1]], [0], NAMES),  # boxes [N, 3]
        lambda: F.draw_boxes(torch.zeros(3, 8, 8), [[0, 0, 1, 1]], [0, 1], NAMES),  # labels vs boxes
        lambda: F.plot_detections(torch.rand(3, 8, 8), [{}], NAMES),  # images without a batch axis
        lambda: F.plot_detections(
            torch.rand(2, 3, 8, 8), [{"boxes": torch.zeros(0, 4), "scores": [], "labels": []}], NAMES
        ),  # one prediction for two images
        lambda: F.plot_anchors(torch.rand(8, 8), [torch.zeros(1, 4)]),  # image [H, W]
        lambda: F.plot_anchors(torch.rand(3, 8, 8), [torch.zeros(2, 2)]),  # anchors [N, 2]
        lambda: F.plot_pr_curves(np.zeros((101, 2)), np.linspace(0, 1, 101), NAMES),  # K differs from the names
        lambda: F.plot_pr_curves(np.zeros(101), np.linspace(0, 1, 101), NAMES[:1]),  # no class axis
    ],
)
def test_invalid_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()
