"""PASCAL VOC folders: XML parsing, 1-based boxes, difficult objects, and what is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcamp.data import get_dataset
from dlcamp.data.voc import VOC_CLASSES
from dlcamp.errors import DataNotFoundError, UsageError

W, H = 48, 32


def xml(objects: list[tuple[str, int, int, int, int, int]], file_name: str, size: tuple[int, int] = (W, H)) -> str:
    objs = "".join(
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, x1, y1, x2, y2, difficult in objects
    )
    return (
        f"<annotation><filename>{file_name}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"<depth>3</depth></size>{objs}</annotation>"
    )


def voc_folder(root: Path, annotations: dict[str, list], splits: dict[str, list[str]]) -> Path:
    """root/Annotations/<id>.xml, root/JPEGImages/<id>.jpg, root/ImageSets/Main/<split>.txt."""
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (H, W, 3)).astype(np.uint8)
    for image_id, objects in annotations.items():
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg")
        (root / "Annotations" / f"{image_id}.xml").write_text(xml(objects, f"{image_id}.jpg"))
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


TWO = {
    "000001": [("dog", 1, 1, 10, 20, 0), ("person", 5, 6, 48, 32, 1)],  # the person is difficult
    "000002": [("cat", 3, 4, 12, 14, 0)],
}
SPLITS = {"train": ["000001"], "val": ["000002"], "test": ["000002"]}


def assert_one_line_naming(err: pytest.ExceptionInfo, *expected: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for word in expected:
        assert word in message, message


def test_voc_folder_loads_with_zero_based_boxes_and_difficult_flagged(tmp_path):
    dm = get_dataset("voc", root=str(voc_folder(tmp_path, TWO, SPLITS)))
    assert dm.class_names == list(VOC_CLASSES) and dm.num_classes == 20 and dm.input_shape == (3, H, W)
    dm.setup()
    x, target = dm.splits["train"][0]
    assert x.shape == (3, H, W)
    assert target["image_id"] == 1
    # 1-based inclusive (1, 1, 10, 20) covers pixels 0..9 x 0..19: edges (0, 0, 10, 20)
    assert target["boxes"].tolist() == [[0, 0, 10, 20], [4, 5, 48, 32]]
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")]
    assert target["iscrowd"].tolist() == [False, True]
    _, val_target = dm.splits["val"][0]
    assert val_target["image_id"] == 2 and val_target["boxes"].tolist() == [[2, 3, 12, 14]]


def test_classes_can_be_given_and_an_unknown_class_is_refused(tmp_path):
    root = voc_folder(tmp_path, TWO, SPLITS)
    dm = get_dataset("voc", root=str(root), classes=["cat", "dog", "person"])
    dm.setup()
    assert dm.splits["train"][0][1]["labels"].tolist() == [1, 2] and dm.category_ids == [1, 2, 3]
    with pytest.raises(UsageError) as err:
        get_dataset("voc", root=str(root), classes=["cat", "dog"])
    assert_one_line_naming(err, str(root / "Annotations" / "000001.xml"), "'person'")


def test_missing_val_and_test_files_are_carved_from_train(tmp_path):
    annotations = {f"{i:06d}": [("cat", 2, 2, 9, 9, 0)] for i in range(1, 11)}
    dm = get_dataset(
        "voc", root=str(voc_folder(tmp_path, annotations, {"trainval": list(annotations)})), train_set="trainval"
    )
    dm.setup()
    ids = {split: sorted(view[i][1]["image_id"] for i in range(len(view))) for split, view in dm.splits.items()}
    assert [len(ids[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(1, 11))


@pytest.mark.parametrize(
    "objects, words",
    [
        ([("cat", 10, 4, 5, 14, 0)], ("object 0 (cat)", "negative width")),
        ([("cat", 3, 4, 50, 14, 0)], ("object 0 (cat)", "48x32")),
        ([("cat", 3, 4, "x", 14, 0)], ("object 0 (cat)", "bndbox/xmax")),
    ],
)
def test_a_bad_box_is_refused_naming_the_xml_and_object(tmp_path, objects, words):
    root = voc_folder(tmp_path, {**TWO, "000002": objects}, SPLITS)
    with pytest.raises(UsageError) as err:
        get_dataset("voc", root=str(root))
    assert_one_line_naming(err, str(root / "Annotations" / "000002.xml"), *words)


def test_missing_and_malformed_files_are_named(tmp_path):
    root = voc_folder(tmp_path / "VOCdevkit" / "VOC2007", TWO, SPLITS)
    with pytest.raises(DataNotFoundError) as err:  # root one level too high: the message says where
        get_dataset("voc", root=str(tmp_path))
    assert_one_line_naming(err, f"data.root={root}")
    xml_path = root / "Annotations" / "000002.xml"
    xml_path.write_text("<annotation><size>")
    with pytest.raises(UsageError) as err:
        get_dataset("voc", root=str(root))
    assert_one_line_naming(err, str(xml_path), "not valid XML")
    xml_path.unlink()
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("voc", root=str(root))
    assert_one_line_naming(err, str(xml_path))
    with pytest.raises(DataNotFoundError) as err:
        get_dataset("voc", root=str(root), train_set="trainval")
    assert_one_line_naming(err, "trainval.txt")


def test_a_degenerate_box_is_skipped_and_counted(tmp_path):
    # xmax = xmin - 1 is zero pixels wide in VOC's inclusive convention
    root = voc_folder(tmp_path, {**TWO, "000002": [("cat", 5, 4, 4, 14, 0), ("dog", 1, 1, 6, 6, 0)]}, SPLITS)
    dm = get_dataset("voc", root=str(root))
    assert dm.skipped == {"train": 0, "val": 1, "test": 1}
    with pytest.warns(UserWarning, match="skipped 1 degenerate"):
        dm.setup()
    assert dm.splits["val"][0][1]["labels"].tolist() == [VOC_CLASSES.index("dog")]
    assert isinstance(dm.splits["val"][0][0], torch.Tensor)
