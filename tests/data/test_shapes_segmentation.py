"""The shapes world as segmentation data: items, splits, the flip, and export read back by the folder reader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dlcamp.data import get_dataset, list_datasets
from dlcamp.data.contracts import Exportable, SegmentationData
from dlcamp.data.shapes import SEMANTIC_CLASSES, ShapesSegmentationData, render_scene, shapes_segmentation
from dlcamp.errors import UsageError

TINY = dict(image_size=24, min_size=6, max_size=12, train_size=6, val_size=4, test_size=3, batch_size=3)


def tiny_module(**kwargs) -> ShapesSegmentationData:
    return get_dataset("shapes_segmentation", **{**TINY, **kwargs})


def test_shapes_segmentation_is_registered_with_its_class_facts():
    from dlcamp.cli.main import exportable_datasets

    assert "shapes_segmentation" in list_datasets() and "shapes_segmentation" in exportable_datasets()
    dm = tiny_module()
    assert isinstance(dm, SegmentationData) and isinstance(dm, Exportable)
    assert (
        dm.num_classes == 9
        and dm.class_names == SEMANTIC_CLASSES
        and dm.class_names[:4] == ["sky", "grass", "sand", "water"]
    )
    assert dm.input_shape == (3, 24, 24) and dm.ignore_index == 255
    assert len(dm.palette) == 9 and len(set(dm.palette)) == 9
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in dm.palette)


def test_an_item_is_the_scene_image_and_its_semantic_map():
    dm = tiny_module(scene_seed=3)
    dm.setup()
    for index in range(4):
        image, label = dm.splits["val"][index]
        scene = render_scene(4, index, dm.config)  # val: scene seed + 1
        assert image.dtype == torch.float32 and image.shape == (3, 24, 24) and 0 <= image.min() and image.max() <= 1
        assert torch.equal(image, torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255)
        assert label.dtype == torch.long and label.shape == (24, 24)
        assert torch.equal(label, torch.from_numpy(scene.semantic))
        assert 0 <= label.min() and label.max() < 9


def test_splits_are_held_out_by_seed():
    dm = tiny_module(scene_seed=7)
    dm.setup()
    first = {split: dm.splits[split][0][1] for split in ("train", "val", "test")}
    assert not torch.equal(first["train"], first["val"]) and not torch.equal(first["val"], first["test"])
    assert torch.equal(first["test"], torch.from_numpy(render_scene(9, 0, dm.config).semantic))


def test_hflip_flips_image_and_label_together_seeded_per_sample():
    plain, flipping = tiny_module(), tiny_module(hflip=True)
    plain.setup()
    flipping.setup()
    assert plain.train_transform is None
    flipped = 0
    for epoch in range(3):
        for index in range(6):
            image, label = flipping.splits["train"][(epoch, index)]
            original_image, original_label = plain.splits["train"][index]
            if not torch.equal(image, original_image):  # a textured scene is never its own mirror image
                assert torch.equal(image, original_image.flip(-1)) and torch.equal(label, original_label.flip(-1))
                flipped += 1
            else:
                assert torch.equal(label, original_label) and torch.equal(image, original_image)
            again = flipping.splits["train"][(epoch, index)]
            assert torch.equal(again[0], image) and torch.equal(again[1], label)  # same key, same flip
    assert 0 < flipped < 18
    # evaluation never flips
    assert torch.equal(flipping.split_loader("train").dataset[2][1], plain.splits["train"][2][1])


def test_a_batch_is_images_and_label_maps():
    images, labels = next(iter(tiny_module().train_dataloader()))
    assert images.shape == (3, 3, 24, 24) and images.dtype == torch.float32
    assert labels.shape == (3, 24, 24) and labels.dtype == torch.long


def test_bad_options_are_refused():
    with pytest.raises(UsageError, match="hflip"):
        shapes_segmentation(hflip="yes")
    with pytest.raises(UsageError, match="split"):
        tiny_module().export("unused", "dev", 1)


def test_export_reads_back_through_segmentation_folder_unchanged(tmp_path):
    dm = tiny_module(scene_seed=2)
    folder = dm.export(tmp_path, "val", 4)
    assert folder == tmp_path / "val" and sorted(p.name for p in tmp_path.iterdir()) == ["val"]  # no temporary left
    assert (folder / "classes.txt").read_text().split() == SEMANTIC_CLASSES
    with Image.open(folder / "labels" / "000000.png") as label_png:
        assert label_png.mode == "P"
        assert label_png.getpalette()[: 3 * 9] == [v for colour in dm.palette for v in colour]

    back = get_dataset("segmentation_folder", root=str(folder))
    assert back.class_names == SEMANTIC_CLASSES and back.num_classes == 9 and back.input_shape == (3, 24, 24)
    back.setup()
    seen = []
    for split, view in back.splits.items():
        for i, (image_path, _) in enumerate(view.base.pairs):
            index = int(image_path.stem)
            scene = render_scene(3, index, dm.config)  # val of scene seed 2
            image, label = view[i]
            assert torch.equal(label, torch.from_numpy(scene.semantic)), (split, index)
            assert torch.equal(image, torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255)
            seen.append(index)
    assert sorted(seen) == [0, 1, 2, 3]

    with pytest.raises(UsageError, match="not empty"):
        dm.export(tmp_path, "val", 1)


def test_dlcamp_data_export_writes_the_folder_layout(cli, tmp_path):
    out = tmp_path / "seg"
    proc = cli(
        "data", "export", "shapes_segmentation", "-o", str(out), "--split", "test", "-n", "2",
        "--set", "image_size=16", "--set", "min_size=4", "--set", "max_size=8",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("test: 2 items")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "test/classes.txt",
        "test/images/000000.png",
        "test/images/000001.png",
        "test/labels/000000.png",
        "test/labels/000001.png",
    ]
    label = np.array(Image.open(out / "test" / "labels" / "000001.png"))
    config = tiny_module(image_size=16, min_size=4, max_size=8).config
    assert np.array_equal(label, render_scene(2, 1, config).semantic)
