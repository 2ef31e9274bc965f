"""Segmentation metrics against torchmetrics: dataset-level mIoU (macro Jaccard), pixel accuracy, the boundary band."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from torchmetrics.segmentation import MeanIoU

from dlcamp.metrics.segmentation import SegmentationMeter, boundary_band, confusion_matrix, scores

K, IGNORE = 6, 255


def batches(seed: int, n: int = 4):
    """Predictions that are right about 60% of the time, labels with ignored pixels; class 5 never occurs."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        target = torch.randint(0, K - 1, (2, 17, 23), generator=g)
        target[torch.rand(target.shape, generator=g) < 0.1] = IGNORE
        pred = torch.where(
            torch.rand(target.shape, generator=g) < 0.6, target, torch.randint(0, K - 1, target.shape, generator=g)
        )
        pred[target == IGNORE] = torch.randint(0, K - 1, (int((target == IGNORE).sum()),), generator=g)
        out.append((pred, target))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_miou_equals_torchmetrics_macro_jaccard_over_the_whole_dataset(seed):
    meter = SegmentationMeter(K, IGNORE, band=3)
    reference = MulticlassJaccardIndex(K, average="macro", ignore_index=IGNORE)
    per_class = MulticlassJaccardIndex(K, average=None, ignore_index=IGNORE)
    accuracy = MulticlassAccuracy(K, average="micro", ignore_index=IGNORE)
    for pred, target in batches(seed):
        meter.update(pred, target)
        reference.update(pred, target)
        per_class.update(pred, target)
        accuracy.update(pred, target)
    ours = meter.compute("test/")
    assert ours["test/miou"] == pytest.approx(float(reference.compute()), abs=1e-6)
    ref_iou = per_class.compute()
    for k in range(K - 1):
        assert ours[f"test/iou/{k}"] == pytest.approx(float(ref_iou[k]), abs=1e-6)
    assert math.isnan(ours[f"test/iou/{K - 1}"])  # absent from labels and predictions: not averaged in
    assert ours["test/pixel_acc"] == pytest.approx(float(accuracy.compute()), abs=1e-6)


def test_logits_are_scored_by_their_argmax():
    pred, target = batches(3, 1)[0]
    logits = torch.nn.functional.one_hot(pred, K).permute(0, 3, 1, 2).float()
    a, b = SegmentationMeter(K, IGNORE), SegmentationMeter(K, IGNORE)
    a.update(pred, target)
    b.update(logits, target)
    assert torch.equal(a.cm, b.cm)


def test_dataset_miou_is_not_torchmetrics_per_image_mean_iou():
    # Image 1 is all class 0, predicted right; image 2 holds classes 0 and 1, class 1 mostly missed.
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[1, :, 2:] = 1
    pred = target.clone()
    pred[1, :, 3] = 0
    meter = SegmentationMeter(2, IGNORE)
    meter.update(pred, target)
    per_image = MeanIoU(num_classes=2, input_format="index")
    per_image.update(pred, target)
    dataset = float(MulticlassJaccardIndex(2, average="macro")(pred, target))
    assert meter.compute()["miou"] == pytest.approx(dataset, abs=1e-6)
    assert abs(float(per_image.compute()) - dataset) > 0.01  # why the issue names the Jaccard index


def test_confusion_matrix_rows_are_truth_and_ids_out_of_range_are_refused():
    cm = confusion_matrix(torch.tensor([[1, 1, 0]]), torch.tensor([[0, 1, IGNORE]]), 2, IGNORE)
    assert cm.tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ValueError, match="0..1"):
        confusion_matrix(torch.tensor([0]), torch.tensor([2]), 2, IGNORE)
    s = scores(cm)
    assert s["iou/0"] == 0 and s["iou/1"] == 0.5 and s["pixel_acc"] == 0.5


def test_boundary_band_is_every_pixel_within_band_pixels_of_a_label_change():
    target = torch.zeros(1, 9, 20, dtype=torch.long)
    target[:, :, 10:] = 1  # a vertical boundary between columns 9 and 10
    band = boundary_band(target, 3, IGNORE)
    cols = band[0].any(0).nonzero().flatten().tolist()
    assert cols == list(range(6, 14))  # 3 px on either side of the two edge columns
    assert band[0].all(0)[6:14].all()
    assert boundary_band(target, 0, IGNORE)[0].any(0).nonzero().flatten().tolist() == [9, 10]
    # next to an ignored region, a label is not a boundary
    ignored = torch.zeros(1, 9, 20, dtype=torch.long)
    ignored[:, :, 10:] = IGNORE
    assert not boundary_band(ignored, 3, IGNORE).any()


def test_boundary_miou_scores_only_the_band():
    target = torch.zeros(1, 16, 40, dtype=torch.long)
    target[:, :, 20:] = 1
    pred = target.clone()
    pred[:, :, 0:3] = 1  # wrong far from the boundary: counts in mIoU, not in the boundary mIoU
    meter = SegmentationMeter(2, IGNORE, band=3)
    meter.update(pred, target)
    out = meter.compute()
    assert out["boundary_miou"] == 1.0 and out["miou"] < 1.0
    assert out["boundary_pixels"] == 16 * 8
