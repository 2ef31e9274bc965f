"""SSD and Faster R-CNN: overfitting one small batch, any input size, the four-step stages, crowd regions."""

from __future__ import annotations

import pytest
import torch

from dlcamp import ops
from dlcamp.data.detection import detection_collate
from dlcamp.models import get_model
from dlcamp.models.contracts import Grouped
from dlcamp.models.detection.base import match_boxes
from dlcamp.models.detection.fasterrcnn import FasterRCNN
from dlcamp.models.detection.roi_heads import RoIHeads
from dlcamp.models.detection.rpn import RegionProposalNetwork

SIZE = 64
SSD_TINY = dict(input_shape=(3, SIZE, SIZE), widths=(16, 32, 32, 32), num_levels=3, min_scale=0.2, max_scale=0.6)
FRCNN_TINY = dict(
    widths=(16, 32, 32), anchor_sizes=[[12, 24, 40]], representation=64, rpn_batch_size=64, box_batch_size=32
)


def _batch(n: int = 4, seed: int = 3):
    from dlcamp.data import get_dataset

    dm = get_dataset(
        "shapes",
        image_size=SIZE,
        min_objects=1,
        max_objects=2,
        min_size=14,
        max_size=30,
        clutter=0.0,
        train_size=n,
        val_size=2,
        test_size=2,
        scene_seed=seed,
    )
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


@pytest.mark.parametrize(
    "name, kwargs, steps, lr", [("ssd", SSD_TINY, 150, 3e-3), ("fasterrcnn", FRCNN_TINY, 150, 2e-3)]
)
def test_detector_overfits_one_batch_and_finds_its_boxes(name, kwargs, steps, lr):
    torch.manual_seed(0)
    model = get_model(name, num_classes=5, **kwargs)
    images, targets = _batch()
    first, last = _overfit(model, images, targets, steps, lr)
    assert last < 0.25 * first, (first, last)
    model.eval()
    dets = model.detect(images)
    assert all(_found(d, t) for d, t in zip(dets, targets)), [
        (d["boxes"][:4], t["boxes"]) for d, t in zip(dets, targets)
    ]


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


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("ssd", SSD_TINY),
        ("fasterrcnn", FRCNN_TINY),
        ("fasterrcnn", {**FRCNN_TINY, "fpn": True, "fpn_channels": 16, "anchor_sizes": [[16], [32], [64]]}),
        ("fasterrcnn", {**FRCNN_TINY, "roi_op": "pool"}),
    ],
)
def test_loss_is_finite_and_reaches_every_trainable_parameter(name, kwargs):
    torch.manual_seed(0)
    model = get_model(name, num_classes=5, **kwargs)
    images, targets = _batch(2)
    targets[1] = {
        **targets[1],
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.long),
        "iscrowd": torch.zeros(0, dtype=torch.bool),
    }  # an image with no objects
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


def test_four_step_stages_reach_only_their_own_parts():
    import copy

    torch.manual_seed(0)
    model = get_model("fasterrcnn", num_classes=5, **FRCNN_TINY)
    first_body = copy.deepcopy(model.body)  # step 1's RPN has a backbone of its own
    images, targets = _batch(2)
    parts = {"first_body": first_body, "body": model.body, "rpn": model.rpn, "head": model.roi_heads}
    expected = {1: {"first_body", "rpn"}, 2: {"body", "head"}, 3: {"rpn"}, 4: {"head"}}
    for stage, trained in expected.items():
        for m in parts.values():
            m.zero_grad(set_to_none=True)
        model.loss(images, targets, stage=stage, first_body=first_body)["loss"].backward()
        got = {
            name
            for name, m in parts.items()
            if any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
        }
        assert got == trained, (stage, got)


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
    names = {n.split(".")[2] for n, _ in model.named_parameters() if n.startswith("body.body.")}
    assert "layer2" in names and "layer3" not in names and "layer4" not in names
    images, targets = _batch(1)
    model.loss(images, targets)["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_fasterrcnn_leaves_anchors_on_a_crowd_region_out_of_the_rpn_loss():
    model = get_model("fasterrcnn", num_classes=2, **FRCNN_TINY)
    anchors = model.anchors_per_level((64, 64))[0]
    region = torch.tensor([[8.0, 8.0, 40.0, 40.0]])
    _, plain = match_boxes(model.rpn.matcher, region, torch.zeros(0, 4), anchors)
    _, crowd = match_boxes(model.rpn.matcher, torch.zeros(0, 4), region, anchors)
    assert (plain == 1).any() and not (crowd == 1).any()
    near = ops.box_iou(region, anchors)[0] >= model.rpn.matcher.low_threshold
    assert near.any() and (crowd[near] == -1).all() and (crowd[~near] == 0).all()  # ignored, not background


# -- Faster R-CNN's parts: RPN and RoI heads, their thresholds, their parameter groups ------------------------

GT = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
IOU_065 = torch.tensor([[0.0, 0.0, 10.0, 6.5]])  # inside GT, 65 of its 100 px^2: IoU 0.65


def _sampled_labels(part, run) -> torch.Tensor:
    """The labels (1 positive, 0 negative, -1 left out) that ``part``'s sampler is given while ``run()`` runs."""
    real, seen = part.sampler, []

    def spy(labels):
        seen.extend(labels)
        return real(labels)

    part.sampler = spy
    try:
        run()
    finally:
        part.sampler = real
    return seen[0]


def _rpn_label_of_a_065_anchor(model: FasterRCNN) -> int:
    rpn = model.rpn
    assert isinstance(rpn, RegionProposalNetwork)
    anchors = torch.cat([GT, IOU_065])  # the exact anchor is GT's best match: a positive at any threshold
    target = {"boxes": GT, "labels": torch.tensor([0])}
    labels = _sampled_labels(rpn, lambda: rpn.losses(torch.zeros(1, 2), torch.zeros(1, 2, 4), anchors, [target]))
    assert labels[0] == 1
    return int(labels[1])


def _roi_label_of_a_065_proposal(model: FasterRCNN) -> int:
    heads = model.roi_heads
    assert isinstance(heads, RoIHeads)
    feats = [torch.zeros(1, model.body.out_channels[0], 8, 8)]
    target = {"boxes": GT, "labels": torch.tensor([0])}
    labels = _sampled_labels(heads, lambda: heads.loss(feats, [IOU_065], [target]))  # GT is added as a proposal
    assert labels[1] == 1
    return int(labels[0])


def test_iou_thresholds_set_through_the_registry_decide_the_rpn_and_roi_matches():
    loose = get_model("fasterrcnn", num_classes=2, rpn_fg_iou=0.6, box_fg_iou=0.6, **FRCNN_TINY)
    strict = get_model("fasterrcnn", num_classes=2, rpn_fg_iou=0.7, box_fg_iou=0.7, **FRCNN_TINY)
    assert _rpn_label_of_a_065_anchor(loose) == 1 and _rpn_label_of_a_065_anchor(strict) == -1  # -1: between
    assert _roi_label_of_a_065_proposal(loose) == 1 and _roi_label_of_a_065_proposal(strict) == -1
    background = get_model(
        "fasterrcnn", num_classes=2, rpn_fg_iou=0.7, rpn_bg_iou=0.66, box_fg_iou=0.7, box_bg_iou=0.66, **FRCNN_TINY
    )
    assert _rpn_label_of_a_065_anchor(background) == 0 and _roi_label_of_a_065_proposal(background) == 0


def test_every_fasterrcnn_argument_is_a_recipe_key_and_typos_are_refused():
    import inspect

    from dlcamp.engine.run import resolve
    from dlcamp.errors import UsageError
    from dlcamp.models import MODELS
    from dlcamp.recipes import get_recipe

    builder = MODELS.builder("fasterrcnn")
    takes = inspect.signature(builder).parameters
    assert set(inspect.signature(FasterRCNN).parameters) - {"body"} <= set(takes)
    cfg = resolve(
        get_recipe("fasterrcnn-shapes"), ["model.rpn_fg_iou=0.6", "model.box_fg_iou=0.6", "model.rpn_nms_threshold=0.8"]
    )["model"]
    assert (cfg["rpn_fg_iou"], cfg["box_fg_iou"], cfg["rpn_nms_threshold"]) == (0.6, 0.6, 0.8)
    model = get_model("fasterrcnn", num_classes=2, **{k: v for k, v in cfg.items() if k != "name"})
    assert model.rpn.nms_threshold == 0.8
    with pytest.raises(UsageError, match=r"did you mean rpn_fg_iou\b"):  # the closest name first
        resolve(get_recipe("fasterrcnn-shapes"), ["model.rpn_fg_iuo=0.6"])


def test_ssd_builder_reaches_every_ssd_argument():
    import inspect

    from dlcamp.models import MODELS
    from dlcamp.models.detection.ssd import SSD

    takes = set(inspect.signature(MODELS.builder("ssd")).parameters)
    assert set(inspect.signature(SSD).parameters) - {"image_size"} <= takes
    assert get_model("ssd", num_classes=2, topk_candidates=7, **SSD_TINY).topk_candidates == 7


@pytest.mark.parametrize(
    "kwargs", [FRCNN_TINY, {**FRCNN_TINY, "fpn": True, "fpn_channels": 16, "anchor_sizes": [[16], [32], [64]]}]
)
def test_fasterrcnn_param_groups_hold_every_parameter_exactly_once(kwargs):
    model = get_model("fasterrcnn", num_classes=5, **kwargs)
    assert isinstance(model, Grouped)
    groups = model.param_groups()
    assert list(groups) == ["body", "rpn", "head"]
    owned = [id(p) for m in groups.values() for p in m.parameters()]
    assert len(owned) == len(set(owned))  # no parameter in two groups
    assert set(owned) == {id(p) for p in model.parameters()}  # and none left out
    assert groups["rpn"] is model.rpn and groups["head"] is model.roi_heads
    assert model.box_head is model.roi_heads.box_head


def test_fasterrcnn_refuses_anchor_levels_that_do_not_match_the_feature_maps():
    from dlcamp.errors import UsageError
    from dlcamp.models.backbones import get_backbone

    with pytest.raises(UsageError, match="fpn=true"):
        get_model("fasterrcnn", num_classes=2, anchor_sizes=[[16], [32]])
    with pytest.raises(UsageError, match="one level of anchors per map"):
        FasterRCNN(get_backbone("tiny", num_levels=2, widths=(8, 8, 8)), num_classes=2, anchor_sizes=[[16]])
