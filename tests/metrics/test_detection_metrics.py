"""COCO mAP written here equals pycocotools' on the same predictions, case by case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlcamp.metrics.detection import RECALL_THRESHOLDS, coco_evaluate, pycocotools_evaluate, to_coco_results

SCALARS = ("map", "map_50", "map_75", "ar_100")


def target(boxes, labels, crowd=None, image_id=0):
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    crowd = torch.zeros(len(boxes), dtype=torch.bool) if crowd is None else torch.as_tensor(crowd, dtype=torch.bool)
    return {
        "boxes": boxes,
        "labels": torch.as_tensor(labels, dtype=torch.long).reshape(-1),
        "iscrowd": crowd,
        "image_id": image_id,
    }


def prediction(boxes, scores, labels):
    return {
        "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.as_tensor(scores, dtype=torch.float32).reshape(-1),
        "labels": torch.as_tensor(labels, dtype=torch.long).reshape(-1),
    }


def random_boxes(g: torch.Generator, n: int, size: float = 200.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * size
    return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 60 + 2], 1)


def random_case(seed: int) -> tuple[list[dict], list[dict], int, int]:
    """Noisy copies of the ground truth, false positives, boxes inside crowd regions, score ties, empty images."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda: float(torch.rand(1, generator=g))  # noqa: E731
    num_classes = 1 + seed % 4
    num_images = 1 + seed % 7
    max_dets = 100 if seed % 5 else 1 + seed % 11  # now and then a small cap, so truncation bites often
    ids = torch.randperm(10 * num_images, generator=g)[:num_images].tolist()  # unsorted: ties follow id order
    gt_classes = num_classes - 1 if seed % 4 == 3 else num_classes  # now and then a class with no object
    predictions, targets = [], []
    for i in range(num_images):
        num_gt = 0 if rand() < 0.15 else int(torch.randint(1, 12, (1,), generator=g))
        gt_boxes = random_boxes(g, num_gt)
        gt_labels = torch.randint(0, gt_classes, (num_gt,), generator=g)
        crowd = torch.rand(num_gt, generator=g) < (0.3 if seed % 3 == 0 else 0.05)
        if num_gt >= 2 and rand() < 0.3:  # an exact duplicate: IoU ties between ground truths
            gt_boxes[1], gt_labels[1] = gt_boxes[0], gt_labels[0]
        targets.append({"boxes": gt_boxes, "labels": gt_labels, "iscrowd": crowd, "image_id": ids[i]})
        if rand() < 0.15:  # an image with no predictions
            predictions.append(prediction(torch.zeros(0, 4), [], []))
            continue
        keep = torch.rand(num_gt, generator=g) < 0.75
        copies = gt_boxes[keep] + torch.randn(int(keep.sum()), 4, generator=g) * (0.5 + 3 * rand())
        copy_labels = torch.where(
            torch.rand(int(keep.sum()), generator=g) < 0.9,
            gt_labels[keep],
            torch.randint(0, num_classes, (int(keep.sum()),), generator=g),
        )
        # small boxes well inside crowd regions: IoU (over the box's own area) 1 with the crowd
        crowd_wh = gt_boxes[crowd][:, 2:] - gt_boxes[crowd][:, :2]
        inner = gt_boxes[crowd] + torch.tensor([0.3, 0.3, -0.3, -0.3]) * crowd_wh.repeat(1, 2)
        num_fp = 110 if seed % 6 == 1 and i == 0 else int(torch.randint(0, 15, (1,), generator=g))  # > 100 in one image
        boxes = torch.cat([copies, copies[:2] + 0.5, inner, random_boxes(g, num_fp)])
        labels = torch.cat(
            [copy_labels, copy_labels[:2], gt_labels[crowd], torch.randint(0, num_classes, (num_fp,), generator=g)]
        )
        scores = torch.rand(len(boxes), generator=g)
        if seed % 2:
            scores = (scores * 4).round() / 4  # many exact ties, within and across images
        predictions.append({"boxes": boxes, "scores": scores, "labels": labels})
    return predictions, targets, num_classes, max_dets


def assert_same(ours: dict, reference: dict) -> None:
    for key in SCALARS:
        assert (math.isnan(ours[key]) and math.isnan(reference[key])) or abs(ours[key] - reference[key]) < 1e-9, key
    for key in ("ap_per_class", "ap50_per_class"):
        np.testing.assert_allclose(ours[key], reference[key], rtol=0, atol=1e-9, equal_nan=True, err_msg=key)
    assert ours["precision"].shape == reference["precision"].shape
    np.testing.assert_allclose(ours["precision"], reference["precision"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours["recall_thresholds"], RECALL_THRESHOLDS)


@pytest.mark.parametrize("seed", range(30))
def test_map_equals_pycocotools_on_random_cases(seed):
    predictions, targets, num_classes, max_dets = random_case(seed)
    assert_same(
        coco_evaluate(predictions, targets, num_classes, max_dets=max_dets),
        pycocotools_evaluate(predictions, targets, num_classes, max_dets=max_dets),
    )


def test_perfect_predictions_score_one_and_match_pycocotools():
    targets = [
        target([[0, 0, 10, 10], [20, 20, 50, 40]], [0, 1], image_id=3),
        target([[5, 5, 30, 30]], [1], image_id=1),
    ]
    predictions = [prediction(t["boxes"], [0.9] * len(t["boxes"]), t["labels"]) for t in targets]
    ours = coco_evaluate(predictions, targets, 2)
    assert ours["map"] == 1.0 and ours["map_50"] == 1.0 and ours["ar_100"] == 1.0
    assert_same(ours, pycocotools_evaluate(predictions, targets, 2))


def test_all_wrong_predictions_score_zero_and_match_pycocotools():
    targets = [target([[0, 0, 10, 10]], [0], image_id=0), target([[50, 50, 60, 60]], [1], image_id=1)]
    predictions = [
        prediction([[100, 100, 120, 120]], [0.8], [0]),  # nowhere near
        prediction([[50, 50, 60, 60]], [0.9], [0]),
    ]  # right place, wrong class
    ours = coco_evaluate(predictions, targets, 2)
    assert ours["map"] == 0.0 and ours["ar_100"] == 0.0
    assert_same(ours, pycocotools_evaluate(predictions, targets, 2))


def test_no_predictions_at_all_give_zero_for_classes_with_objects():
    targets = [target([[0, 0, 10, 10]], [0], image_id=0), target(torch.zeros(0, 4), [], image_id=1)]
    predictions = [prediction(torch.zeros(0, 4), [], [])] * 2
    ours = coco_evaluate(predictions, targets, 3)
    assert ours["map"] == 0.0
    assert ours["ap_per_class"][0] == 0.0 and math.isnan(ours["ap_per_class"][1])
    assert (ours["precision"][:, :, 1:] == -1).all()
    assert_same(ours, pycocotools_evaluate(predictions, targets, 3))


def test_hand_computed_average_precision():
    # Two objects; detections in score order: hit, miss, hit. Precision 1 up to recall .5,
    # then 2/3 up to recall 1, at every IoU threshold (the hits are exact).
    targets = [target([[0, 0, 10, 10], [30, 30, 40, 40]], [0, 0])]
    predictions = [prediction([[0, 0, 10, 10], [60, 60, 70, 70], [30, 30, 40, 40]], [0.9, 0.8, 0.7], [0, 0, 0])]
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    ours = coco_evaluate(predictions, targets, 1)
    assert ours["map"] == pytest.approx(expected, abs=1e-6) and ours["ar_100"] == 1.0
    assert_same(ours, pycocotools_evaluate(predictions, targets, 1))


def test_a_detection_on_a_crowd_region_is_neither_right_nor_wrong():
    crowd_region = [0, 0, 100, 100]
    targets = [target([[200, 200, 220, 220], crowd_region], [0, 0], crowd=[False, True])]
    hit = [[200, 200, 220, 220]]
    alone = coco_evaluate([prediction(hit, [0.5], [0])], targets, 1)
    # three small boxes inside the crowd scoring above the hit: a false positive would lower AP
    inside = [[10, 10, 20, 20], [50, 50, 60, 70], [0, 0, 100, 100]]
    with_crowd = [prediction(hit + inside, [0.5, 0.9, 0.8, 0.7], [0] * 4)]
    ours = coco_evaluate(with_crowd, targets, 1)
    # (COCO's precision is TP / (TP + FP + eps): one lone hit gives 1 - 2e-16, not 1)
    assert alone["map"] == ours["map"] == pytest.approx(1.0, abs=1e-12)
    assert_same(ours, pycocotools_evaluate(with_crowd, targets, 1))
    # ... but a box that misses the crowd region is a false positive.
    outside = [prediction(hit + [[120, 120, 130, 130]], [0.5, 0.9], [0, 0])]
    assert coco_evaluate(outside, targets, 1)["map"] < 1.0


def test_iou_ties_between_ground_truths_go_to_the_later_one():
    # The first detection overlaps both objects equally (IoU 9/11); COCO gives it the second,
    # which leaves the first for the exact second detection: two hits at every threshold <= .80.
    # Taking the first object instead would leave the second detection only IoU 2/3.
    targets = [target([[0, 0, 10, 10], [2, 0, 12, 10]], [0, 0])]
    predictions = [prediction([[1, 0, 11, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])]
    ours = coco_evaluate(predictions, targets, 1)
    assert ours["precision"][6, -1, 0] == pytest.approx(1.0, abs=1e-6)  # IoU .80: both matched
    assert_same(ours, pycocotools_evaluate(predictions, targets, 1))


def test_iou_exactly_at_a_threshold_is_a_hit():
    targets = [target([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 0])]
    # IoU 100 / 200 = .5 and 75 / 100 = .75, exactly
    predictions = [prediction([[0, 0, 10, 20], [20, 0, 30, 7.5]], [0.9, 0.8], [0, 0])]
    ours = coco_evaluate(predictions, targets, 1)
    assert ours["map_50"] == pytest.approx(1.0, abs=1e-12)
    assert ours["map_75"] == pytest.approx(51 * 0.5 / 101, abs=1e-12)  # at .75 only the second one: precision 1/2
    assert_same(ours, pycocotools_evaluate(predictions, targets, 1))


def test_predictions_for_a_class_without_objects_leave_it_out():
    targets = [target([[0, 0, 10, 10]], [0])]
    predictions = [prediction([[0, 0, 10, 10], [40, 40, 50, 50]], [0.9, 0.95], [0, 1])]
    ours = coco_evaluate(predictions, targets, 2)
    assert ours["map"] == pytest.approx(1.0, abs=1e-12) and math.isnan(ours["ap_per_class"][1])
    assert_same(ours, pycocotools_evaluate(predictions, targets, 2))


def test_only_the_best_max_dets_per_image_and_class_count():
    targets = [target([[0, 0, 10, 10]], [0])]
    misses = [[100 + i, 100, 110 + i, 110] for i in range(100)]
    # the hit scores lowest: with the 100 misses ahead of it, it is cut
    predictions = [prediction(misses + [[0, 0, 10, 10]], [0.9] * 100 + [0.1], [0] * 101)]
    assert coco_evaluate(predictions, targets, 1)["ar_100"] == 0.0
    assert coco_evaluate(predictions, targets, 1, max_dets=101)["ar_100"] == 1.0
    assert_same(coco_evaluate(predictions, targets, 1), pycocotools_evaluate(predictions, targets, 1))


def test_to_coco_results_writes_xywh_and_category_ids():
    rows = to_coco_results([prediction([[1, 2, 4, 8]], [0.5], [1])], [42], [7, 9])
    assert rows == [{"image_id": 42, "category_id": 9, "bbox": [1.0, 2.0, 3.0, 6.0], "score": 0.5}]


@pytest.mark.parametrize(
    "bad",
    [
        ([prediction([[0, 0, 1, 1]], [0.5], [0])], [target([[0, 0, 1, 1]], [0])] * 2, 1),  # counts differ
        (
            [{"boxes": torch.zeros(2, 5), "scores": torch.zeros(2), "labels": torch.zeros(2, dtype=torch.long)}],
            [target([[0, 0, 1, 1]], [0])],
            1,
        ),  # boxes [N, 5]
        ([prediction([[0, 0, 1, 1]], [0.5], [3])], [target([[0, 0, 1, 1]], [0])], 2),  # label out of range
        ([prediction([[0, 0, 1, 1]], [0.5, 0.4], [0])], [target([[0, 0, 1, 1]], [0])], 1),  # scores vs boxes
        ([prediction([], [], [])] * 2, [target([[0, 0, 1, 1]], [0], image_id=5)] * 2, 1),  # repeated image id
    ],
)
def test_invalid_inputs_raise_value_error(bad):
    with pytest.raises(ValueError):
        coco_evaluate(*bad)
