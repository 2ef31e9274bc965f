"""COCO-format detection folders and the box-keeping transforms, on tiny files the tests write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from dlcamp.data import get_dataset
from dlcamp.data.detection import DetectionImages, detection_transform
from dlcamp.errors import DataNotFoundError, UsageError

W, H = 48, 32  # every fixture image is 48 pixels wide and 32 high unless it says otherwise
rng = np.random.default_rng(0)

CATEGORIES = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]  # sorted ids: cat -> 0, dog -> 1


def write_png(path: Path, size: tuple[int, int] = (W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3)).astype(np.uint8)).save(path)


def write_split(
    root: Path,
    split: str,
    images: list[dict],
    annotations: list[dict],
    categories: list[dict] = CATEGORIES,
    *,
    pngs: bool = True,
) -> Path:
    """root/<split>/annotations.json and, unless told not to, a PNG per image of its listed size."""
    for img in images:
        if pngs and "file_name" in img:
            write_png(root / split / "images" / img["file_name"], (img.get("width", W), img.get("height", H)))
    path = root / split / "annotations.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def image(image_id: int, **extra: Any) -> dict:
    return {"id": image_id, "file_name": f"{image_id}.png", "width": W, "height": H, **extra}


def ann(ann_id: int, image_id: int, category_id: int, bbox: list[float], **extra: Any) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, **extra}


TRAIN_ANNS = [
    ann(1, 10, 3, [4, 6, 10, 8]),  # cat, xywh -> xyxy (4, 6, 14, 14)
    ann(2, 10, 7, [20, 2, 12, 20], iscrowd=1),  # a crowd of dogs
    ann(3, 11, 7, [0, 0, 48, 32]),
    ann(4, 13, 3, [30, 10, 6, 6]),
]


def coco_folder(root: Path, *, train_anns: list[dict] | None = None, train_images: list[dict] | None = None) -> Path:
    """train: images 10-13 (12 has no objects); val: image 20; test: image 30."""
    write_split(
        root,
        "train",
        train_images or [image(i) for i in (10, 11, 12, 13)],
        TRAIN_ANNS if train_anns is None else train_anns,
    )
    write_split(root, "val", [image(20)], [ann(5, 20, 7, [1, 1, 5, 5])])
    write_split(root, "test", [image(30)], [ann(6, 30, 3, [2, 2, 5, 5])])
    return root


def by_id(dm, split: str = "train") -> dict[int, tuple[torch.Tensor, dict]]:
    view = dm.splits[split]
    samples = [view[i] for i in range(len(view))]
    return {target["image_id"]: (x, target) for x, target in samples}


def assert_one_line_naming(err: pytest.ExceptionInfo, *expected: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for word in expected:
        assert word in message, message


# -- loading --------------------------------------------------------------------------------
def test_coco_folder_loads_with_contiguous_labels_and_xyxy_boxes(tmp_path):
    dm = get_dataset("coco", root=str(coco_folder(tmp_path)))
    assert dm.class_names == ["cat", "dog"] and dm.category_ids == [3, 7] and dm.num_classes == 2
    assert dm.input_shape == (3, H, W)  # nominal: the median size, images are not resized
    dm.setup()
    assert {split: len(view) for split, view in dm.splits.items()} == {"train": 4, "val": 1, "test": 1}
    samples = by_id(dm)
    x, target = samples[10]
    assert x.shape == (3, H, W) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert target["boxes"].tolist() == [[4, 6, 14, 14], [20, 2, 32, 22]]
    assert target["labels"].tolist() == [0, 1] and target["labels"].dtype == torch.long
    assert target["iscrowd"].tolist() == [False, True] and target["iscrowd"].dtype == torch.bool
    assert samples[11][1]["labels"].tolist() == [1] and samples[13][1]["labels"].tolist() == [0]
    empty = samples[12][1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["iscrowd"].shape == (0,)
    assert by_id(dm, "val")[20][1]["boxes"].tolist() == [[1, 1, 6, 6]]
    assert dm.info()["category_ids"] == [3, 7]


def test_parse_coco_gives_categories_by_id_and_xyxy_records_with_contiguous_labels(tmp_path):
    from dlcamp.data.coco import parse_coco

    coco_folder(tmp_path)
    parsed = parse_coco(tmp_path / "train" / "annotations.json", tmp_path / "train" / "images")
    assert parsed.categories == [(3, "cat"), (7, "dog")]
    records = {r.image_id: r for r in parsed.records}
    assert records[10].boxes == [[4, 6, 14, 14], [20, 2, 32, 22]] and records[10].labels == [0, 1]
    assert records[10].iscrowd == [False, True] and records[12].boxes == []
    assert records[11].path == tmp_path / "train" / "images" / "11.png"


def test_batches_stack_when_resized_and_are_lists_when_sizes_differ(tmp_path):
    images = [image(10), image(11), image(12, width=40, height=30), image(13)]
    coco_folder(tmp_path, train_images=images)
    images_, targets = next(iter(get_dataset("coco", root=str(tmp_path), batch_size=4).train_dataloader()))
    assert isinstance(images_, list) and sorted(tuple(x.shape) for x in images_)[0] == (3, 30, 40)
    assert len(targets) == 4 and all(isinstance(t, dict) for t in targets)

    dm = get_dataset("coco", root=str(tmp_path), batch_size=4, image_size=64)
    assert dm.input_shape == (3, 64, 64)
    images_, targets = next(iter(dm.train_dataloader()))
    assert isinstance(images_, torch.Tensor) and images_.shape == (4, 3, 64, 64)
    assert sorted(t["image_id"] for t in targets) == [10, 11, 12, 13]


def test_missing_val_and_test_are_carved_from_train_with_seed_zero(tmp_path):
    write_split(tmp_path, "train", [image(i) for i in range(10)], [ann(i, i, 3, [1, 1, 4, 4]) for i in range(10)])

    def split_ids(seed: int) -> dict[str, list[int]]:
        dm = get_dataset("coco", root=str(tmp_path), seed=seed)
        dm.setup()
        return {split: sorted(by_id(dm, split)) for split in ("train", "val", "test")}

    ids = split_ids(0)
    assert [len(ids[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(10))
    assert split_ids(5) == ids


def test_coco_2017_layout_through_path_arguments(tmp_path):
    root = coco_folder(tmp_path)
    (root / "annotations").mkdir()
    (root / "train" / "annotations.json").rename(root / "annotations" / "instances_train2017.json")
    (root / "train" / "images").rename(root / "train2017")
    dm = get_dataset(
        "coco", root=str(root), train_json="annotations/instances_train2017.json", train_images="train2017"
    )
    dm.setup()
    assert sorted(by_id(dm)) == [10, 11, 12, 13]


# -- transforms keep boxes in sync ----------------------------------------------------------
def sample(boxes: list[list[float]], labels: list[int], crowd: list[bool]) -> tuple[torch.Tensor, dict]:
    return torch.rand(3, H, W), {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.tensor(labels),
        "iscrowd": torch.tensor(crowd),
        "image_id": 1,
    }


def test_horizontal_flip_mirrors_image_and_boxes():
    x, target = sample([[4, 6, 14, 14]], [1], [False])
    flipped, out = detection_transform(None, [{"name": "RandomHorizontalFlip", "p": 1.0}])(x, target)
    assert torch.equal(flipped, x.flip(-1))
    assert out["boxes"].tolist() == [[W - 14, 6, W - 4, 14]]
    assert out["labels"].tolist() == [1] and out["image_id"] == 1
    assert type(flipped) is torch.Tensor and type(out["boxes"]) is torch.Tensor  # plain tensors, not tv_tensors


def test_resize_scales_boxes():
    x, target = sample([[4, 6, 14, 14]], [0], [False])
    resized, out = detection_transform(96, None)(x, target)  # x scaled by 96/48 = 2, y by 96/32 = 3
    assert resized.shape == (3, 96, 96)
    assert torch.allclose(out["boxes"], torch.tensor([[8.0, 18.0, 28.0, 42.0]]))


def test_a_crop_that_removes_a_box_drops_it_with_its_label_and_crowd_flag():
    x, target = sample([[0, 0, 10, 6], [18, 10, 30, 20]], [0, 1], [True, False])
    masks = torch.zeros(2, H, W, dtype=torch.uint8)
    masks[0, 0:6, 0:10] = 1
    masks[1, 10:20, 18:30] = 1
    # the centre 16x16 crop keeps x in [16, 32), y in [8, 24): the first box is cut away
    cropped, out = detection_transform(None, [{"name": "CenterCrop", "size": [16, 16]}])(x, {**target, "masks": masks})
    assert cropped.shape == (3, 16, 16)
    assert out["boxes"].tolist() == [[2, 2, 14, 12]]
    assert out["labels"].tolist() == [1] and out["iscrowd"].tolist() == [False]
    assert torch.equal(out["masks"], masks[1:, 8:24, 16:32])  # the instance mask goes with its box


def test_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path):
    augment = [{"name": "RandomHorizontalFlip"}, {"name": "RandomIoUCrop"}, {"name": "RandomPhotometricDistort"}]
    dm = get_dataset("coco", root=str(coco_folder(tmp_path)), augment=augment, image_size=40, seed=3)
    dm.setup()
    view = dm.splits["train"]
    outputs = [view[(epoch, i)] for epoch in (0, 1) for i in range(len(view))]
    for x, target in outputs:
        assert x.shape == (3, 40, 40)
        boxes = target["boxes"]
        assert len(boxes) == len(target["labels"]) == len(target["iscrowd"])
        assert ((boxes >= 0) & (boxes <= 40)).all() and (boxes[:, 2:] > boxes[:, :2]).all()
    again = view[(1, 2)]
    assert torch.equal(again[0], outputs[len(view) + 2][0])
    assert torch.equal(again[1]["boxes"], outputs[len(view) + 2][1]["boxes"])
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(outputs[: len(view)], outputs[len(view) :]))


# -- refusing bad input ----------------------------------------------------------------------
def test_a_missing_root_or_json_is_named(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("coco", root=str(tmp_path / "nowhere"))
    assert_one_line_naming(err, str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("coco", root=str(tmp_path / "empty"))
    assert_one_line_naming(err, str(tmp_path / "empty" / "train" / "annotations.json"))
    coco_folder(tmp_path / "data")
    with pytest.raises(DataNotFoundError) as err:  # a path given explicitly is never carved around
        get_dataset("coco", root=str(tmp_path / "data"), val_json="val/instances.json")
    assert_one_line_naming(err, "instances.json")


def test_malformed_json_is_named(tmp_path):
    path = coco_folder(tmp_path) / "val" / "annotations.json"
    path.write_text('{"images": [')
    with pytest.raises(UsageError) as err:
        get_dataset("coco", root=str(tmp_path))
    assert_one_line_naming(err, str(path), "not valid JSON")


@pytest.mark.parametrize(
    "section, field, record",
    [
        ("images", "id", "images[0]"),
        ("images", "file_name", "image id 10"),
        ("images", "width", "image id 10"),
        ("images", "height", "image id 10"),
        ("annotations", "id", "annotations[0]"),
        ("annotations", "image_id", "annotation id 1"),
        ("annotations", "category_id", "annotation id 1"),
        ("annotations", "bbox", "annotation id 1"),
        ("categories", "id", "categories[0]"),
        ("categories", "name", "category id 7"),
    ],
)
def test_a_missing_field_names_the_file_record_and_field(tmp_path, section, field, record):
    path = coco_folder(tmp_path) / "train" / "annotations.json"
    data = json.loads(path.read_text())
    del data[section][0][field]
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError) as err:
        get_dataset("coco", root=str(tmp_path))
    assert_one_line_naming(err, str(path), record, f"'{field}'")


@pytest.mark.parametrize(
    "bad, words",
    [
        (ann(9, 10, 3, [10, 5, -3, 4]), ("annotation id 9", "negative width")),
        (ann(9, 10, 3, [10, 5, 4, -1]), ("annotation id 9", "negative height")),
        (ann(9, 10, 3, [40, 5, 10, 4]), ("annotation id 9", "48x32")),  # x2 = 50 > 48 + 1
        (ann(9, 10, 3, [2, -3, 4, 4]), ("annotation id 9", "48x32")),
        (ann(9, 99, 3, [1, 1, 4, 4]), ("annotation id 9", "image_id 99")),
        (ann(9, 10, 5, [1, 1, 4, 4]), ("annotation id 9", "category_id 5")),
        (ann(9, 10, 3, [1, 1, 4, "4"]), ("annotation id 9", "'bbox'")),
        (ann(9, 10, 3, [1, 1, 4, 4], iscrowd=2), ("annotation id 9", "'iscrowd'")),
    ],
)
def test_a_bad_annotation_is_refused_by_id(tmp_path, bad, words):
    coco_folder(tmp_path, train_anns=[*TRAIN_ANNS, bad])
    with pytest.raises(UsageError) as err:
        get_dataset("coco", root=str(tmp_path))
    assert_one_line_naming(err, str(tmp_path / "train" / "annotations.json"), *words)


def test_boxes_within_a_pixel_of_the_border_are_clipped(tmp_path):
    coco_folder(tmp_path, train_anns=[ann(1, 10, 3, [-0.5, 0, 10, 10]), ann(2, 10, 7, [40, 25, 8.8, 7.5])])
    dm = get_dataset("coco", root=str(tmp_path))
    dm.setup()
    assert torch.allclose(by_id(dm)[10][1]["boxes"], torch.tensor([[0, 0, 9.5, 10], [40, 25, W, H]]))


def test_degenerate_boxes_are_skipped_and_counted(tmp_path):
    coco_folder(tmp_path, train_anns=[*TRAIN_ANNS, ann(7, 11, 3, [5, 5, 0, 4]), ann(8, 13, 7, [5, 5, 3, 0])])
    dm = get_dataset("coco", root=str(tmp_path))
    assert dm.skipped == {"train": 2, "val": 0, "test": 0}
    with pytest.warns(UserWarning, match="train split: skipped 2 degenerate") as record:
        dm.setup()
    assert len([w for w in record if "degenerate" in str(w.message)]) == 1
    samples = by_id(dm)
    assert samples[11][1]["labels"].tolist() == [1] and samples[13][1]["labels"].tolist() == [0]


def test_categories_must_agree_across_splits(tmp_path):
    coco_folder(tmp_path)
    write_split(tmp_path, "val", [image(20)], [], [{"id": 3, "name": "cat"}, {"id": 7, "name": "wolf"}])
    with pytest.raises(UsageError) as err:
        get_dataset("coco", root=str(tmp_path))
    assert_one_line_naming(err, str(tmp_path / "val" / "annotations.json"), "7:wolf", "7:dog")


def test_image_files_are_checked_at_setup(tmp_path):
    coco_folder(tmp_path)
    missing = tmp_path / "train" / "images" / "11.png"
    missing.unlink()
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("coco", root=str(tmp_path)).setup()
    assert_one_line_naming(err, str(missing))

    write_png(missing, (W + 2, H))  # a size the JSON does not give
    with pytest.raises(UsageError) as err:
        get_dataset("coco", root=str(tmp_path)).setup()
    assert_one_line_naming(err, str(missing), "50x32", "48x32")

    missing.write_bytes(b"not an image at all")
    with pytest.raises(UsageError) as err:
        get_dataset("coco", root=str(tmp_path)).setup()
    assert_one_line_naming(err, str(missing), "cannot decode")


def test_an_image_that_breaks_after_setup_is_named_where_it_is_decoded(tmp_path):
    dm = get_dataset("coco", root=str(coco_folder(tmp_path)))
    dm.setup()
    broken = tmp_path / "test" / "images" / "30.png"
    broken.write_bytes(broken.read_bytes()[:60])  # truncated after the header
    with pytest.raises(UsageError) as err:
        dm.splits["test"][0]
    assert_one_line_naming(err, str(broken))
    assert isinstance(dm.splits["test"].base, DetectionImages)


def test_load_input_reads_an_image_at_its_own_size(tmp_path):
    dm = get_dataset("coco", root=str(coco_folder(tmp_path)), image_size=64)
    x = dm.load_input(tmp_path / "val" / "images" / "20.png")
    assert x.shape == (3, H, W) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    with pytest.raises(DataNotFoundError) as err:
        dm.load_input(tmp_path / "nope.png")
    assert_one_line_naming(err, "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(UsageError) as err:
        dm.load_input(bad)
    assert_one_line_naming(err, str(bad))


def test_a_bad_image_size_is_refused(tmp_path):
    with pytest.raises(UsageError) as err:
        get_dataset("coco", root=str(coco_folder(tmp_path)), image_size=0)
    assert_one_line_naming(err, "data.image_size")


def test_list_datasets_shows_coco_and_voc(cli):
    proc = cli("list", "datasets")
    assert proc.returncode == 0, proc.stderr
    names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert {"coco", "voc"} <= names, proc.stdout


def test_shapes_exported_as_coco_load_back_with_the_same_boxes_and_labels(tmp_path):
    from dlcamp.data.shapes import (
        CATEGORY_IDS,
        SPLIT_SEED_OFFSET,
        THING_CLASSES,
        ShapesConfig,
        export_coco,
        render_scene,
    )

    config = ShapesConfig(image_size=32, min_size=6, max_size=14, min_objects=1, max_objects=3, clutter=0.0)
    for split in ("train", "val", "test"):
        export_coco(tmp_path, split, 3, config, scene_seed=4)
    dm = get_dataset("coco", root=str(tmp_path))
    assert dm.class_names == THING_CLASSES and dm.category_ids == CATEGORY_IDS
    dm.setup()
    for split in ("train", "val", "test"):
        samples = by_id(dm, split)
        assert sorted(samples) == [0, 1, 2]
        for index, (x, target) in samples.items():
            scene = render_scene(4 + SPLIT_SEED_OFFSET[split], index, config)
            assert torch.equal(x, torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255)
            assert torch.allclose(target["boxes"], torch.from_numpy(scene.boxes))
            assert target["labels"].tolist() == scene.labels.tolist()
            assert not target["iscrowd"].any()
