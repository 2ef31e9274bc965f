"""Segmentation folders and PASCAL VOC: label PNGs read as ids, what is refused, crops and padded batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcamp.data import get_dataset, list_datasets
from dlcamp.data.contracts import SegmentationData
from dlcamp.data.module import SeededView
from dlcamp.data.segmentation import (
    VOC_SEGMENTATION_CLASSES,
    SegmentationTransform,
    pad_collate,
    save_label,
    voc_colormap,
)
from dlcamp.data.voc import VOC_CLASSES
from dlcamp.errors import DataNotFoundError, UsageError

H, W = 6, 8


def label_map(seed: int, num_classes: int = 3, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """Random ids 0..num_classes-1 with a VOC-style ignore (255) border on the left column."""
    label = np.random.default_rng(seed).integers(0, num_classes, size).astype(np.uint8)
    label[:, 0] = 255
    return label


def write_pair(root: Path, name: str, label: np.ndarray, image_size: tuple[int, int] | None = None) -> None:
    """root/images/<name>.png (RGB, of the label's size unless given) and root/labels/<name>.png (palette)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    h, w = image_size or label.shape
    pixels = np.random.default_rng(len(name)).integers(0, 256, (h, w, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(root / "images" / f"{name}.png")
    save_label(root / "labels" / f"{name}.png", label, voc_colormap(3))


def folder(root: Path, n: int = 5, num_classes: int = 3) -> dict[str, np.ndarray]:
    labels = {f"img{i}": label_map(i, num_classes) for i in range(n)}
    for name, label in labels.items():
        write_pair(root, name, label)
    (root / "classes.txt").write_text("".join(f"c{k}\n" for k in range(num_classes)))
    return labels


def assert_one_line_naming(err: pytest.ExceptionInfo, *expected: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for word in expected:
        assert word in message, message


# -- the generic folder -------------------------------------------------------------------------
def test_a_folder_reads_palette_labels_as_class_ids_with_ignore_kept(tmp_path):
    labels = folder(tmp_path, n=4)
    (tmp_path / "splits").mkdir()
    for split, names in {"train": ["img0", "img1"], "val": ["img2"], "test": ["img3"]}.items():
        (tmp_path / "splits" / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    dm = get_dataset("segmentation_folder", root=str(tmp_path))
    assert isinstance(dm, SegmentationData)
    assert dm.class_names == ["c0", "c1", "c2"] and dm.num_classes == 3 and dm.ignore_index == 255
    assert dm.input_shape == (3, H, W) and dm.palette == voc_colormap(3)
    dm.setup()
    assert {split: len(view) for split, view in dm.splits.items()} == {"train": 2, "val": 1, "test": 1}
    image, label = dm.splits["val"][0]
    assert image.dtype == torch.float32 and image.shape == (3, H, W)
    assert label.dtype == torch.long and torch.equal(label, torch.from_numpy(labels["img2"]).long())
    assert (label[:, 0] == 255).all()
    with Image.open(tmp_path / "labels" / "img2.png") as png:
        assert png.mode == "P"  # read as its indices, not as the palette's colours


def test_greyscale_labels_and_classes_from_an_option_or_a_count(tmp_path):
    labels = folder(tmp_path, n=5)
    Image.fromarray(labels["img4"]).save(tmp_path / "labels" / "img4.png")  # mode 'L'
    dm = get_dataset("segmentation_folder", root=str(tmp_path), classes=["a", "b", "c"])
    assert dm.class_names == ["a", "b", "c"]
    dm.setup()
    got = {view.base.pairs[i][0].stem: view[i][1] for view in dm.splits.values() for i in range(len(view))}
    assert sorted(got) == sorted(labels)  # val and test carved from all five images
    assert all(torch.equal(got[name], torch.from_numpy(labels[name]).long()) for name in labels)
    (tmp_path / "classes.txt").unlink()
    assert get_dataset("segmentation_folder", root=str(tmp_path), num_classes=4).class_names == [
        "class_0",
        "class_1",
        "class_2",
        "class_3",
    ]
    with pytest.raises(UsageError) as err:
        get_dataset("segmentation_folder", root=str(tmp_path))
    assert_one_line_naming(err, "data.classes", "data.num_classes", "classes.txt")


def test_missing_val_and_test_lists_are_carved_from_train_by_a_fixed_seed(tmp_path):
    folder(tmp_path, n=10)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("".join(f"img{i}\n" for i in range(10)))
    runs = [get_dataset("segmentation_folder", root=str(tmp_path), seed=seed).records for seed in (0, 1)]
    assert runs[0] == runs[1]  # whatever the run's seed
    names = {split: [image.stem for image, _ in pairs] for split, pairs in runs[0].items()}
    assert [len(names[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert sorted(names["train"] + names["val"] + names["test"]) == [f"img{i}" for i in range(10)]


# -- what is refused ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case, words",
    [
        ("size", ("8x6", "9x6")),
        ("id", ("class id 7", "3 classes")),
        ("rgb", ("RGB", "palette", "greyscale")),
    ],
)
def test_a_bad_label_is_refused_when_its_item_loads_naming_the_file(tmp_path, case, words):
    folder(tmp_path, n=3)
    bad = tmp_path / "labels" / "img1.png"
    if case == "size":
        write_pair(tmp_path, "img1", label_map(1), image_size=(H, W + 1))
    elif case == "id":
        label = label_map(1)
        label[2, 3] = 7
        save_label(bad, label, voc_colormap(3))
    else:
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(bad)
    dm = get_dataset("segmentation_folder", root=str(tmp_path))  # files exist: accepted up front
    view = next(v for v in (SeededView(ds, None, 0) for ds in dm.build_splits().values()) if _holds(v, "img1"))
    index = [image.stem for image, _ in view.base.pairs].index("img1")
    with pytest.raises(UsageError) as err:
        view[index]
    assert_one_line_naming(err, str(bad), *words)


def _holds(view: SeededView, name: str) -> bool:
    return any(image.stem == name for image, _ in view.base.pairs)


def test_missing_files_and_folders_are_refused_up_front_naming_them(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("segmentation_folder", root=str(tmp_path / "nowhere"))
    assert_one_line_naming(err, str(tmp_path / "nowhere"))
    (tmp_path / "images").mkdir()
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("segmentation_folder", root=str(tmp_path), num_classes=3)
    assert_one_line_naming(err, str(tmp_path / "labels"))
    (tmp_path / "labels").mkdir()
    with pytest.raises(UsageError) as err:
        get_dataset("segmentation_folder", root=str(tmp_path), num_classes=3)
    assert_one_line_naming(err, str(tmp_path / "images"), "no images")
    folder(tmp_path, n=3)
    (tmp_path / "labels" / "img2.png").unlink()
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("segmentation_folder", root=str(tmp_path))
    assert_one_line_naming(err, str(tmp_path / "labels" / "img2.png"), str(tmp_path / "images" / "img2.png"))
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("img0\nimg9\n")
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("segmentation_folder", root=str(tmp_path))
    assert_one_line_naming(err, str(tmp_path / "images" / "img9"), str(tmp_path / "splits" / "train.txt"))


@pytest.mark.parametrize(
    "options, words",
    [
        ({"crop_size": 0}, ("data.crop_size",)),
        ({"ignore_index": 2}, ("data.ignore_index", "3")),
        ({"num_classes": 5}, ("data.num_classes", "classes.txt")),
    ],
)
def test_bad_options_are_refused(tmp_path, options, words):
    folder(tmp_path, n=3)
    with pytest.raises(UsageError) as err:
        get_dataset("segmentation_folder", root=str(tmp_path), **options)
    assert_one_line_naming(err, *words)


def test_an_error_in_a_loader_worker_is_still_a_usage_error_naming_the_file(tmp_path):
    folder(tmp_path, n=3)
    bad = tmp_path / "labels" / "img0.png"
    label = label_map(0)
    label[0, 1] = 9
    save_label(bad, label, voc_colormap(3))
    dm = get_dataset("segmentation_folder", root=str(tmp_path), num_workers=1, batch_size=3)
    with pytest.raises(UsageError, match="img0.png"):
        for split in ("train", "val", "test"):
            list(dm.split_loader(split))


# -- crops and padded batches ---------------------------------------------------------------------
def test_pad_collate_pads_images_with_zero_and_labels_with_ignore():
    small = (torch.ones(3, 2, 3), torch.zeros(2, 3, dtype=torch.long))
    large = (torch.ones(3, 4, 2), torch.ones(4, 2, dtype=torch.long))
    images, labels = pad_collate([small, large], ignore_index=255)
    assert images.shape == (2, 3, 4, 3) and labels.shape == (2, 4, 3) and labels.dtype == torch.long
    assert images[0, :, :2, :3].eq(1).all() and images[0, :, 2:].eq(0).all()
    assert labels[0, :2].eq(0).all() and labels[0, 2:].eq(255).all()
    assert labels[1, :, :2].eq(1).all() and labels[1, :, 2].eq(255).all() and images[1, :, :, 2].eq(0).all()


def test_evaluation_batches_of_mixed_sizes_are_padded_and_never_cropped(tmp_path):
    folder(tmp_path, n=3)
    write_pair(tmp_path, "img1", label_map(1, size=(4, 11)))
    (tmp_path / "splits").mkdir()
    for split in ("train", "val", "test"):
        (tmp_path / "splits" / f"{split}.txt").write_text("img0\nimg1\nimg2\n")
    dm = get_dataset("segmentation_folder", root=str(tmp_path), crop_size=5, batch_size=3, eval_batch_size=3)
    assert dm.input_shape == (3, 5, 5)
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (3, 3, H, 11) and labels.shape == (3, H, 11)
    assert labels[1, 4:].eq(255).all() and images[1, :, 4:].eq(0).all()
    assert torch.equal(labels[1, :4], torch.from_numpy(label_map(1, size=(4, 11))).long())
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (3, 3, 5, 5) and labels.shape == (3, 5, 5)


def test_a_crop_larger_than_the_image_pads_it_with_ignore():
    transform = SegmentationTransform(hflip=False, crop_size=5, ignore_index=255)
    image, label = transform(torch.rand(3, 3, 4), torch.zeros(3, 4, dtype=torch.long))
    assert image.shape == (3, 5, 5) and label.shape == (5, 5)
    assert (label == 255).sum() == 25 - 12 and (image.sum(0) == 0).sum() >= 25 - 12


def test_the_random_crop_is_fixed_by_seed_epoch_and_index():
    image = torch.arange(3 * 20 * 20, dtype=torch.float32).reshape(3, 20, 20)
    label = torch.arange(20 * 20).reshape(20, 20)
    transform = SegmentationTransform(hflip=True, crop_size=7, ignore_index=255)
    view = SeededView([(image, label)] * 4, transform, seed=0)
    crops = {key: view[key][1] for key in [(e, i) for e in range(3) for i in range(4)]}
    assert all(torch.equal(view[key][1], crop) for key, crop in crops.items())  # same key, same crop
    assert all(view[key][0].shape == (3, 7, 7) for key in crops)
    assert len({tuple(crop.flatten().tolist()) for crop in crops.values()}) > 6  # and keys differ
    other = SeededView([(image, label)] * 4, transform, seed=1)
    assert any(not torch.equal(other[key][1], crop) for key, crop in crops.items())
    for crop in crops.values():  # a window of the label, possibly mirrored
        top, left = divmod(int(crop.min()), 20)
        window = label[top : top + 7, left : left + 7]
        assert torch.equal(crop, window) or torch.equal(crop, window.flip(-1))


# -- PASCAL VOC -----------------------------------------------------------------------------------
def voc_folder(root: Path, labels: dict[str, np.ndarray], splits: dict[str, list[str]]) -> Path:
    """root/JPEGImages/<id>.jpg, root/SegmentationClass/<id>.png, root/ImageSets/Segmentation/<split>.txt."""
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, label in labels.items():
        pixels = np.random.default_rng(0).integers(0, 256, (*label.shape, 3)).astype(np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg")
        save_label(root / "SegmentationClass" / f"{image_id}.png", label, voc_colormap())
    for split, ids in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def voc_label(seed: int) -> np.ndarray:
    label = np.zeros((H, W), np.uint8)
    label[1:5, 2:6] = 15  # a person
    label[1, 2:6] = label[4, 2:6] = 255  # with VOC's void border
    label[5, 7] = np.random.default_rng(seed).integers(1, 21)
    return label


def test_the_voc_colour_map_is_the_devkits():
    colours = voc_colormap()
    assert colours[:4] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]
    assert colours[15] == (192, 128, 128) and colours[20] == (0, 64, 128) and colours[255] == (224, 224, 192)


def test_voc_segmentation_reads_ids_and_keeps_the_void_border(tmp_path):
    labels = {"2007_000001": voc_label(1), "2007_000002": voc_label(2), "2007_000003": voc_label(3)}
    root = voc_folder(tmp_path, labels, {"train": ["2007_000001", "2007_000002"], "val": ["2007_000003"]})
    assert "voc_segmentation" in list_datasets()
    dm = get_dataset("voc_segmentation", root=str(root))
    assert dm.class_names == ["background", *VOC_CLASSES] == list(VOC_SEGMENTATION_CLASSES) and dm.num_classes == 21
    assert dm.palette == voc_colormap(21) and dm.ignore_index == 255
    dm.setup()
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    for split, image_id in (("train", "2007_000002"), ("val", "2007_000003"), ("test", "2007_000003")):
        index = 1 if split == "train" else 0
        image, label = dm.splits[split][index]
        assert image.shape == (3, H, W) and torch.equal(label, torch.from_numpy(labels[image_id]).long())
    assert (dm.splits["val"][0][1] == 255).sum() == 8


def test_voc_segmentation_names_what_is_missing(tmp_path):
    labels = {"2007_000001": voc_label(1), "2007_000002": voc_label(2)}
    root = voc_folder(tmp_path / "VOCdevkit" / "VOC2012", labels, {"train": ["2007_000001"], "val": ["2007_000002"]})
    with pytest.raises(DataNotFoundError) as err:  # root one level too high: the message says where
        get_dataset("voc_segmentation", root=str(tmp_path))
    assert_one_line_naming(err, f"data.root={root}")
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("voc_segmentation", root=str(root), train_set="trainval")
    assert_one_line_naming(err, str(root / "ImageSets" / "Segmentation" / "trainval.txt"))
    (root / "SegmentationClass" / "2007_000002.png").unlink()
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("voc_segmentation", root=str(root))
    assert_one_line_naming(err, str(root / "SegmentationClass" / "2007_000002.png"), "val.txt")


# -- through the command line ---------------------------------------------------------------------
@pytest.mark.parametrize("num_workers", [0, 1])  # 1: the error crosses a worker process
def test_a_bad_label_stops_training_with_one_line_naming_the_file(cli, usage_error, tmp_path, num_workers):
    root = tmp_path / "data"
    folder(root, n=3)
    label = label_map(0)
    label[3, 3] = 9
    save_label(root / "labels" / "img0.png", label, voc_colormap(3))
    (root / "splits").mkdir()
    for split in ("train", "val", "test"):
        (root / "splits" / f"{split}.txt").write_text("img0\nimg1\nimg2\n")
    # Any model and task will do: the error comes with the first batch, before a model sees it.
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "name: tiny-seg\nseed: 0\nmodel: {name: mlp, depth: 1, width: 8}\n"
        f"data: {{name: segmentation_folder, root: {root}, batch_size: 3, num_workers: {num_workers}}}\n"
        "task: {name: classification}\noptim: {name: sgd, lr: 0.1}\ntrainer: {max_epochs: 1}\n"
    )
    proc = cli("train", str(recipe), "-o", str(tmp_path / "run"))
    usage_error(proc, str(root / "labels" / "img0.png"), "class id 9")
