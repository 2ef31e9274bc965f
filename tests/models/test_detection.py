"""SSD and Faster R-CNN: overfitting one small batch, any input size, the four-step stages, crowd regions."""

from __future__ import annotations

import pytest
import torch

from dlcamp import ops
from dlcamp.data.detection import detection_collate
from dlcamp.models import get_model

SIZE = 64
SSD_TINY = dict(input_shape=(3, SIZE, SIZE), widths=(16, 32, 32, 32), num_levels=3, min_scale=0.2, max_scale=0.6)
FRCNN_TINY = dict(widths=(16, 32, 32), anchor_sizes=[[12, 24, 40]], representation=64, rpn_batch_size=64,
                  box_batch_size=32)


def _batch(n: int = 4, seed: int = 3):
    from dlcamp.data import get_dataset

    dm = get_dataset("shapes", image_size=SIZE, min_objects=1, max_objects=2, min_size=14, max_size=30, clutter=0.0,
                     train_size=n, val_size=2, test_size=2, scene_seed=seed)
    dm.setup()
    return detection_collate([dm.splits["train"][i] for i in range(n)])


def _overfit(model, images, targets, steps: int, lr: float):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    first = None
    for _ in range(steps):
        loss = model.loss(images, targets)["loss"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, model.loss(images, targets)["loss"].item()


def _found(det, target, iou: float = 0.5, score: float = 0.5) -> bool:
    """Every ground-truth box has a detection of its class above ``score`` overlapping it above ``iou``."""
    for box, label in zip(target["boxes"], target["labels"]):
        same = (det["labels"] == label) & (det["scores"] >= score)
        if not same.any() or ops.box_iou(box[None], det["boxes"][same]).max() < iou:
            return False
    return True


@pytest.mark.parametrize("name, kwargs, steps, lr", [("ssd", SSD_TINY, 150, 3e-3), ("fasterrcnn", FRCNN_TINY, 150, 2e-3)])
def test_detector_overfits_one_batch_and_finds_its_boxes(name, kwargs, steps, lr):
    torch.manual_seed(0)
    model = get_model(name, num_classes=5, **kwargs)
    images, targets = _batch()
    first, last = _overfit(model, images, targets, steps, lr)
    assert last < 0.25 * first, (first, last)
    model.eval()
    dets = model.detect(images)
    assert all(_found(d, t) for d, t in zip(dets, targets)), [(d["boxes"][:4], t["boxes"]) for d, t in zip(dets, targets)]


@pytest.mark.parametrize("name, kwargs", [("ssd", SSD_TINY), ("fasterrcnn", FRCNN_TINY)])
def test_detections_are_in_the_pixels_of_each_image_whatever_its_size(name, kwargs):
    torch.manual_seed(0)
    model = get_model(name, num_classes=3, score_threshold=0.0, **kwargs).eval()
    images = [torch.rand(3, 50, 90), torch.rand(3, 72, 40)]
    for det, im in zip(model.detect(images), images):
        assert set(det) == {"boxes", "scores", "labels"}
        assert len(det["boxes"]) > 0
        h, w = im.shape[-2:]
        assert (det["boxes"] >= 0).all() and (det["boxes"][:, [0, 2]] <= w + 1e-4).all()
        assert (det["boxes"][:, [1, 3]] <= h + 1e-4).all()
        assert ((det["labels"] >= 0) & (det["labels"] < 3)).all()
        assert (det["scores"][:-1] >= det["scores"][1:]).all()  # best first


@pytest.mark.parametrize("name, kwargs", [("ssd", SSD_TINY), ("fasterrcnn", FRCNN_TINY),
                                          ("fasterrcnn", {**FRCNN_TINY, "fpn": True, "fpn_channels": 16,
                                                          "anchor_sizes": [[16], [32], [64]]}),
                                          ("fasterrcnn", {**FRCNN_TINY, "roi_op": "pool"})])
def test_loss_is_finite_and_reaches_every_trainable_parameter(name, kwargs):
    torch.manual_seed(0)
    model = get_model(name, num_classes=5, **kwargs)
    images, targets = _batch(2)
    targets[1] = {**targets[1], "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
                  "iscrowd": torch.zeros(0, dtype=torch.bool)}  # an image with no objects
    losses = model.loss(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


def test_ssd_leaves_default_boxes_on_a_crowd_region_out_of_the_loss():
    model = get_model("ssd", num_classes=2, **SSD_TINY)
    crowd_box = torch.tensor([[10.0, 10.0, 40.0, 40.0]])
    plain = {"boxes": crowd_box, "labels": torch.tensor([1]), "iscrowd": torch.tensor([False])}
    crowd = {**plain, "iscrowd": torch.tensor([True])}
    cls_plain, _, _ = model.match([plain], [(1.0, 1.0)])
    cls_crowd, _, _ = model.match([crowd], [(1.0, 1.0)])
    assert (cls_plain == 2).any() and not (cls_crowd > 0).any()  # label 1 -> class 2 (0 is background)
    assert (cls_crowd[cls_plain == 2] == -1).all()  # what was positive is now left out, not negative


def test_hard_negative_ratio_sets_how_many_negatives_enter_the_loss(monkeypatch):
    seen = {}
    real = ops.hard_negative_mining

    def spy(loss, positive, ratio, *args):
        mask = real(loss, positive, ratio, *args)
        seen[ratio] = (int((mask & ~positive).sum()), int(positive.sum()))
        return mask

    monkeypatch.setattr(ops, "hard_negative_mining", spy)
    images, targets = _batch(2)
    for ratio in (1.0, 3.0, None):
        torch.manual_seed(0)
        get_model("ssd", num_classes=5, neg_pos_ratio=ratio, **SSD_TINY).loss(images, targets)
    neg1, pos = seen[1.0]
    assert neg1 == pos and seen[3.0][0] == 3 * pos
    assert seen[None][0] == 2 * len(get_model("ssd", num_classes=5, **SSD_TINY).default_boxes) - pos


def test_four_step_stages_train_only_their_own_parts():
    from dlcamp.tasks.detection import DetectionTask

    torch.manual_seed(0)
    model = get_model("fasterrcnn", num_classes=5, **FRCNN_TINY)
    task = DetectionTask(model, optim={"name": "adam", "lr": 1e-3}, class_names=list("abcde"), category_ids=[],
                         training_mode="four_step")
    images, targets = _batch(2)
    parts = {"first_body": task.first_body, "body": model.body, "rpn": model.rpn, "box_head": model.box_head}
    expected = {1: {"first_body", "rpn"}, 2: {"body", "box_head"}, 3: {"rpn"}, 4: {"box_head"}}
    for stage, trained in expected.items():
        task.zero_grad(set_to_none=True)
        task._enter_stage(stage)
        model.loss(images, targets, stage=stage, first_body=task.first_body)["loss"].backward()
        got = {name for name, m in parts.items() if any(p.grad is not None and p.grad.abs().sum() > 0
                                                        for p in m.parameters())}
        assert got == trained, (stage, got)
    assert not model.body.training  # frozen from step 3 on: batch-norm statistics too


def test_kmeans_anchor_shapes_drive_the_rpn():
    wh = [[[10.0, 20.0], [30.0, 30.0], [50.0, 25.0]]]
    model = get_model("fasterrcnn", num_classes=2, **{**FRCNN_TINY, "anchor_wh": wh})
    anchors = model.anchors_per_level((64, 64))[0]
    shapes = torch.stack([anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]], 1)[:3]
    torch.testing.assert_close(shapes, torch.tensor(wh[0]))
    assert len(anchors) == (64 // 8) ** 2 * 3


def test_ssd_scales_its_boxes_back_to_an_image_of_another_size():
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = get_model("ssd", num_classes=5, **SSD_TINY).eval()
    images, _ = _batch(1)
    big = F.interpolate(images, scale_factor=(2.0, 3.0), mode="bilinear", align_corners=False, antialias=True)
    small, large = model.detect(images)[0], model.detect(big)[0]  # the large one is resized back to 64x64
    assert len(small["boxes"]) > 0
    top = small["boxes"][:5] * torch.tensor([3.0, 2.0, 3.0, 2.0])
    assert ops.box_iou(top, large["boxes"]).amax(1).min() > 0.8


def test_resnet_backbone_builds_only_the_stages_its_levels_use():
    model = get_model("fasterrcnn", num_classes=5, backbone="resnet18", anchor_sizes=[[32]], aspect_ratios=[1.0])
    names = {n.split(".")[3] for n, _ in model.named_parameters() if n.startswith("body.backbone.body.")}
    assert "layer2" in names and "layer3" not in names and "layer4" not in names
    images, targets = _batch(1)
    model.loss(images, targets)["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_four_step_learning_rate_restarts_its_schedule_at_each_step():
    from types import SimpleNamespace

    from dlcamp.tasks.detection import DetectionTask

    model = get_model("fasterrcnn", num_classes=2, **FRCNN_TINY)
    task = DetectionTask(model, optim={"name": "sgd", "lr": 1.0, "schedule": {"name": "linear"}},
                         class_names=["a", "b"], category_ids=[], training_mode="four_step")
    task._trainer = SimpleNamespace(estimated_stepping_batches=40)  # four steps of 10
    scheduler = task.configure_optimizers()["lr_scheduler"]["scheduler"]
    factor = scheduler.lr_lambdas[0]
    assert [task.stage_at(s) for s in (0, 9, 10, 19, 20, 30, 39)] == [1, 1, 2, 2, 3, 4, 4]
    for start in (0, 10, 20, 30):
        assert factor(start) == 1.0 and factor(start + 9) == pytest.approx(0.1)  # each step decays from 1
    params = {id(p) for g in scheduler.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in params for p in task.first_body.parameters())  # step 1's own backbone is trained


def test_fasterrcnn_leaves_anchors_on_a_crowd_region_out_of_the_rpn_loss():
    model = get_model("fasterrcnn", num_classes=2, **FRCNN_TINY)
    anchors = model.anchors_per_level((64, 64))[0]
    region = torch.tensor([[8.0, 8.0, 40.0, 40.0]])
    _, plain = model._match(model.rpn_matcher, region, torch.zeros(0, 4), anchors)
    _, crowd = model._match(model.rpn_matcher, torch.zeros(0, 4), region, anchors)
    assert (plain == 1).any() and not (crowd == 1).any()
    near = ops.box_iou(region, anchors)[0] >= model.rpn_matcher.low_threshold
    assert near.any() and (crowd[near] == -1).all() and (crowd[~near] == 0).all()  # ignored, not background
