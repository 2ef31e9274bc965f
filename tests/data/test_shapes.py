"""The shapes world: determinism, exact labels, true captions, knobs, the data module, COCO export."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from dlcamp.data import get_dataset, list_datasets
from dlcamp.data.detection import detection_collate
from dlcamp.data.shapes import (
    PALETTE,
    PLURALS,
    SEMANTIC_CLASSES,
    STUFF_CLASSES,
    THING_CLASSES,
    THING_SEMANTIC_OFFSET,
    ShapesConfig,
    ShapesData,
    export_coco,
    render_scene,
    shapes,
)
from dlcamp.errors import DataNotFoundError, UsageError

SMALL = ShapesConfig(image_size=48, min_objects=2, max_objects=6, min_size=8, max_size=24)
NUMBERS = {"a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
SINGULAR = {plural: name for name, plural in PLURALS.items()}


def scenes(config: ShapesConfig = SMALL, n: int = 8, seed: int = 0):
    return [render_scene(seed, i, config) for i in range(n)]


def tight_box(mask: np.ndarray) -> list[float]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]  # pixel edges


def test_a_scene_is_fixed_by_seed_and_index():
    a, b = render_scene(3, 5, SMALL), render_scene(3, 5, SMALL)
    for name in ("image", "boxes", "labels", "masks", "semantic", "panoptic"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.colors, a.segments, a.caption) == (b.colors, b.segments, b.caption)
    assert not np.array_equal(a.image, render_scene(4, 5, SMALL).image)
    assert not np.array_equal(a.image, render_scene(3, 6, SMALL).image)


def test_scene_arrays_have_the_documented_types():
    s = render_scene(0, 0, SMALL)
    n = len(s.labels)
    assert s.image.dtype == np.uint8 and s.image.shape == (48, 48, 3)
    assert s.boxes.dtype == np.float32 and s.boxes.shape == (n, 4)
    assert s.labels.dtype == np.int64 and s.masks.dtype == bool and s.masks.shape == (n, 48, 48)
    assert s.semantic.dtype == np.int64 and s.panoptic.dtype == np.int64 and len(s.colors) == n


def test_boxes_are_the_tight_pixel_edge_boxes_of_the_visible_masks():
    for s in scenes():
        for box, mask in zip(s.boxes, s.masks):
            assert box.tolist() == tight_box(mask)


def test_every_object_keeps_at_least_min_visible_of_its_area():
    crowded = ShapesConfig(image_size=48, min_objects=6, max_objects=6, min_size=16, max_size=32, min_visible=0.7)
    occluded = 0
    for s in scenes(crowded):
        visible = s.masks.sum((1, 2))
        assert np.all(visible >= 0.7 * s.areas) and np.all(visible <= s.areas)
        occluded += int((visible < s.areas).sum())
        assert not (s.masks.sum(0) > 1).any()  # a pixel shows one thing
    assert occluded > 0  # the crowded world does overlap: the check above was exercised


def test_semantic_and_panoptic_maps_agree_with_the_masks():
    for s in scenes():
        n = len(s.labels)
        things = s.masks.any(0)
        assert np.all(s.semantic[~things] < THING_SEMANTIC_OFFSET)
        for i, (mask, label) in enumerate(zip(s.masks, s.labels)):
            assert np.all(s.semantic[mask] == THING_SEMANTIC_OFFSET + label)
            assert np.all(s.panoptic[mask] == i + 1)
        ids = [seg["id"] for seg in s.segments]
        assert sorted(np.unique(s.panoptic).tolist()) == sorted(ids)  # no void, no stray id
        assert sum(seg["area"] for seg in s.segments) == s.semantic.size
        for seg in s.segments:
            region = s.panoptic == seg["id"]
            assert seg["area"] == region.sum()
            x1, y1, x2, y2 = tight_box(region)
            assert seg["bbox"] == [x1, y1, x2 - x1, y2 - y1]
            assert seg["isthing"] == (seg["id"] <= n)
            assert set(SEMANTIC_CLASSES[v] for v in np.unique(s.semantic[region])) == {seg["category"]}


def parse_caption(caption: str) -> tuple[Counter, list[str]]:
    """'two red circles, a blue square and a green star on grass and sand.' -> counts, stuff names."""
    assert caption.endswith(".")
    things, ground = caption[:-1].split(" on ")
    phrases = things.replace(" and ", ", ").split(", ")
    counts: Counter = Counter()
    for phrase in phrases:
        number, colour, kind = phrase.split(" ")
        kind = kind if NUMBERS[number] == 1 else SINGULAR[kind]
        counts[(colour, kind)] += NUMBERS[number]
    return counts, ground.replace(" and ", ", ").split(", ")


def test_captions_name_exactly_the_objects_and_the_stuff_present():
    for s in scenes(n=12):
        counts, ground = parse_caption(s.caption)
        assert counts == Counter((c, THING_CLASSES[k]) for c, k in zip(s.colors, s.labels.tolist()))
        assert ground == [seg["category"] for seg in s.segments if not seg["isthing"]]
        assert all(c in PALETTE for c in s.colors) and all(g in STUFF_CLASSES for g in ground)


def test_an_object_count_and_size_stay_within_their_knobs():
    for s in scenes(
        ShapesConfig(
            image_size=64, min_objects=2, max_objects=3, min_size=10, max_size=10, min_visible=1.0, clutter=0.0
        ),
        n=10,
    ):
        assert 2 <= len(s.labels) <= 3
        sides = np.maximum(s.boxes[:, 2] - s.boxes[:, 0], s.boxes[:, 3] - s.boxes[:, 1])
        assert np.all(s.masks.sum((1, 2)) == s.areas)  # min_visible=1: nothing is occluded
        assert np.all((sides >= 8) & (sides <= np.ceil(10 * np.sqrt(2)) + 1))  # rotation widens up to sqrt 2
        circles = s.labels == THING_CLASSES.index("circle")
        assert np.all(sides[circles] == 10)  # no rotation: exactly the size


def test_clutter_marks_the_background_but_is_no_thing():
    empty = dict(image_size=48, min_objects=0, max_objects=0, min_size=8, max_size=16)
    plain, cluttered = (render_scene(0, 1, ShapesConfig(clutter=c, **empty)) for c in (0.0, 1.0))
    assert not np.array_equal(plain.image, cluttered.image)
    assert np.array_equal(plain.semantic, cluttered.semantic) and len(cluttered.labels) == 0
    assert cluttered.caption.startswith("an empty scene of ")


@pytest.mark.parametrize(
    "kwargs, knob",
    [
        ({"min_size": 30, "max_size": 20}, "min_size"),
        ({"max_size": 200}, "max_size"),
        ({"min_objects": 4, "max_objects": 2}, "min_objects"),
        ({"min_objects": -1}, "min_objects"),
        ({"min_visible": 1.5}, "min_visible"),
        ({"clutter": -0.1}, "clutter"),
        ({"image_size": 4}, "image_size"),
    ],
)
def test_bad_knobs_are_refused_naming_the_knob(kwargs, knob):
    with pytest.raises(UsageError, match=knob):
        ShapesConfig(**kwargs)
    with pytest.raises(UsageError, match=knob):
        shapes(**kwargs)


@pytest.mark.parametrize("kwargs, knob", [({"train_size": 0}, "train_size"), ({"scene_seed": -1}, "scene_seed")])
def test_bad_data_module_arguments_are_refused(kwargs, knob):
    with pytest.raises(UsageError, match=knob):
        shapes(**kwargs)


def tiny_module(**kwargs) -> ShapesData:
    args = dict(image_size=32, min_size=6, max_size=16, train_size=4, val_size=3, test_size=3, batch_size=4)
    return get_dataset("shapes", **{**args, **kwargs})


def test_shapes_is_registered_with_its_class_facts():
    assert "shapes" in list_datasets()
    dm = tiny_module()
    assert dm.num_classes == 5 and dm.class_names == THING_CLASSES and dm.category_ids == [1, 2, 3, 4, 5]
    assert dm.input_shape == (3, 32, 32)


def test_splits_are_held_out_by_seed():
    dm = tiny_module(scene_seed=7)
    assert [dm.split_seed(s) for s in ("train", "val", "test")] == [7, 8, 9]
    images = {split: dm.scene(split, 0).image for split in ("train", "val", "test")}
    assert not np.array_equal(images["train"], images["val"]) and not np.array_equal(images["val"], images["test"])
    assert np.array_equal(dm.scene("val", 2).image, render_scene(8, 2, dm.config).image)


def test_samples_follow_the_detection_contract():
    dm = tiny_module(masks=True)
    dm.setup()
    image, target = dm.splits["val"][2]
    scene = dm.scene("val", 2)
    n = len(scene.labels)
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32) and 0 <= image.min() and image.max() <= 1
    assert torch.equal(image, torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255)
    assert target["boxes"].dtype == torch.float32 and torch.equal(target["boxes"], torch.from_numpy(scene.boxes))
    assert target["labels"].dtype == torch.long and target["labels"].tolist() == scene.labels.tolist()
    assert target["iscrowd"].dtype == torch.bool and target["iscrowd"].shape == (n,) and not target["iscrowd"].any()
    assert target["image_id"] == 2
    assert (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()
    assert target["masks"].dtype == torch.bool and target["masks"].shape == (n, 32, 32)
    assert target["semantic"].shape == (32, 32) and target["panoptic"].dtype == torch.long
    _, plain = tiny_module().build_splits()["val"][2]
    assert set(plain) == {"boxes", "labels", "iscrowd", "image_id"}


def test_a_training_batch_collates_images_and_target_lists():
    dm = tiny_module()
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and len(targets) == 4
    assert sorted(t["image_id"] for t in targets) == [0, 1, 2, 3]
    assert dm.collate_fn is detection_collate


def test_load_input_reads_an_image_at_its_own_size(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    x = tiny_module().load_input(tmp_path / "a.png")
    assert x.shape == (3, 30, 40) and torch.equal(x, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    with pytest.raises(DataNotFoundError, match="missing.png"):
        tiny_module().load_input(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(UsageError, match="bad.png"):
        tiny_module().load_input(tmp_path / "bad.png")


def test_export_writes_coco_that_pycocotools_reads_back(tmp_path):
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO

    config = ShapesConfig(image_size=32, min_size=6, max_size=16)
    folder = export_coco(tmp_path, "val", 3, config, scene_seed=5)
    assert folder == tmp_path / "val" and sorted(p.name for p in tmp_path.iterdir()) == ["val"]  # no temporary left
    coco = COCO(str(folder / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == THING_CLASSES
    captions = {a["image_id"]: a["caption"] for a in json.loads((folder / "captions.json").read_text())["annotations"]}
    panoptic = {a["image_id"]: a for a in json.loads((folder / "panoptic.json").read_text())["annotations"]}
    ann_ids = set()
    for index in range(3):
        scene = render_scene(6, index, config)  # val = scene_seed + 1
        info = coco.loadImgs(index)[0]
        assert (info["file_name"], info["width"], info["height"]) == (f"{index:06d}.png", 32, 32)
        assert np.array_equal(np.asarray(Image.open(folder / "images" / info["file_name"])), scene.image)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=index))
        ann_ids |= {a["id"] for a in anns}
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        assert boxes == scene.boxes.tolist()
        assert [a["category_id"] - 1 for a in anns] == scene.labels.tolist()
        for a, mask in zip(anns, scene.masks):
            assert np.array_equal(mask_util.decode(a["segmentation"]).astype(bool), mask)
            assert np.array_equal(coco.annToMask(a).astype(bool), mask) and a["area"] == mask.sum()
        assert captions[index] == scene.caption
        assert np.array_equal(np.asarray(Image.open(folder / "semantic" / info["file_name"])), scene.semantic)
        rgb = np.asarray(Image.open(folder / "panoptic" / panoptic[index]["file_name"])).astype(np.int64)
        assert np.array_equal(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2], scene.panoptic)
        assert [s["id"] for s in panoptic[index]["segments_info"]] == [s["id"] for s in scene.segments]
    assert min(ann_ids) == 1 and len(ann_ids) == len(coco.getAnnIds())  # 1-based, unique


def test_export_refuses_a_non_empty_split_folder(tmp_path):
    config = ShapesConfig(image_size=16, min_size=4, max_size=8)
    (tmp_path / "test").mkdir()  # an empty folder is fine
    export_coco(tmp_path, "test", 1, config)
    with pytest.raises(UsageError, match="not empty"):
        export_coco(tmp_path, "test", 1, config)


# -- the package: the world, its base data module, the detection module ----------------------


def test_an_unrotated_square_covers_exactly_its_size():
    from dlcamp.data.shapes.draw import thing_mask

    mask, shading = thing_mask(1, 10, 0.0)
    assert mask.shape == (10, 10) and mask.all() and shading.shape == (10, 10)


def test_the_data_module_exports_what_export_coco_writes(tmp_path):
    from dlcamp.data.contracts import Exportable
    from dlcamp.data.shapes.detection import ShapesData as DetectionRoom
    from dlcamp.data.shapes.export import export_coco as export_room

    assert DetectionRoom is ShapesData and export_room is export_coco
    dm = shapes(image_size=32, min_size=6, max_size=16, scene_seed=2, train_size=3, val_size=2, test_size=2)
    assert isinstance(dm, Exportable)
    folder = dm.export(tmp_path / "module", "val", 2)
    reference = export_coco(tmp_path / "function", "val", 2, dm.config, scene_seed=2)
    assert folder == tmp_path / "module" / "val"
    files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    assert all((folder / f).read_bytes() == (reference / f).read_bytes() for f in files)


def test_a_new_use_of_the_world_is_one_subclass_of_the_world_data_module():
    from dlcamp.data.shapes.base import WORLD_KNOBS, ShapesWorldData

    class Captions(ShapesWorldData):  # (image, caption) pairs: what a CLIP module would serve
        def build_splits(self):
            return {
                split: [(self.scene(split, i).image, self.scene(split, i).caption) for i in range(n)]
                for split, n in self.sizes.items()
            }

    assert set(WORLD_KNOBS) == set(ShapesConfig.__dataclass_fields__)
    dm = Captions.from_options(
        image_size=32, min_size=6, max_size=16, train_size=2, val_size=1, test_size=1, batch_size=2
    )
    assert dm.config == ShapesConfig(image_size=32, min_size=6, max_size=16)
    assert (dm.batch_size, dm.eval_batch_size, dm.input_shape) == (2, 64, (3, 32, 32))
    dm.setup()
    assert dm.splits["val"][0][1] == render_scene(1, 0, dm.config).caption  # val: scene seed + 1
