"""PASCAL VOC detection data read from a local VOCdevkit folder.

Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010.
The layout (VOC2007, VOC2012, or any folder built like them)::

    root/Annotations/<id>.xml         one XML per image: size, objects with name, difficult, bndbox
    root/JPEGImages/<id>.jpg
    root/ImageSets/Main/train.txt     one image id per line (also val.txt, test.txt, trainval.txt)

VOC boxes are 1-based and inclusive (a box from xmin=1 to xmax=10 covers the first ten
pixel columns), so they become (xmin - 1, ymin - 1, xmax, ymax) in the 0-based,
edge-to-edge pixel coordinates of the detection contract (``dlcamp.data.detection``).
Objects marked ``difficult`` are kept with ``iscrowd`` True: never trained on, and, as in
VOC's evaluation, neither a hit nor a miss. The numbers dlcamp reports are still COCO's
protocol (mAP over IoU .50:.95 with 101-point interpolation, crowd regions matched by
intersection over the detection's area), not the VOC devkit's 11-point AP@0.5, where a
small box inside a difficult object would count as a false positive.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

from dlcamp.data import register_dataset
from dlcamp.data.detection import FROM_ANNOTATIONS, DetectionFolderData, ImageRecord, carve_splits, check_box, data_root
from dlcamp.errors import DataNotFoundError, UsageError
from dlcamp.registry import forwards

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def _text(node: ET.Element, path: str, where: str) -> str:
    found = node.find(path)
    if found is None or not (found.text or "").strip():
        raise UsageError(f"{where} has no <{path}>")
    return found.text.strip()  # type: ignore[union-attr]


def _number(node: ET.Element, path: str, where: str, *, positive: bool = False) -> float:
    text = _text(node, path, where)
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: <{path}> must be a number, got {text!r}") from None
    if positive and value < 1:
        raise UsageError(f"{where}: <{path}> must be a positive number, got {text!r}")
    return value


def parse_voc_xml(xml_path: Path, image_dir: Path, image_id: int, label_of: dict[str, int]) -> ImageRecord:
    """One VOC annotation file as an image record (boxes converted to 0-based XYXY)."""
    if not xml_path.is_file():
        raise DataNotFoundError(f"VOC annotation not found: {xml_path}")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        raise UsageError(f"{xml_path} is not valid XML: {err}") from None
    width = int(_number(root, "size/width", str(xml_path), positive=True))
    height = int(_number(root, "size/height", str(xml_path), positive=True))
    file_name = (root.findtext("filename") or "").strip() or f"{xml_path.stem}.jpg"
    record = ImageRecord(
        path=image_dir / file_name, image_id=image_id, width=width, height=height, source=str(xml_path)
    )
    for i, obj in enumerate(root.iter("object")):
        where = f"{xml_path}: object {i}"
        name = _text(obj, "name", where)
        where = f"{xml_path}: object {i} ({name})"
        if name not in label_of:
            raise UsageError(
                f"{xml_path}: object {i} has class {name!r}, which is not among the classes "
                f"({', '.join(label_of)}); set data.classes to the dataset's class list"
            )
        xmin, ymin, xmax, ymax = (_number(obj, f"bndbox/{k}", where) for k in ("xmin", "ymin", "xmax", "ymax"))
        box = check_box(xmin - 1, ymin - 1, xmax, ymax, width=width, height=height, where=where)
        if box is None:
            record.skipped += 1
            continue
        difficult = (obj.findtext("difficult") or "0").strip()
        record.boxes.append(box)
        record.labels.append(label_of[name])
        record.iscrowd.append(difficult == "1")
    return record


def _read_ids(path: Path) -> list[str]:
    # A VOC split file: one id per line; the per-class files (aeroplane_train.txt) add a column.
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _numeric_ids(names: Sequence[str]) -> dict[str, int]:
    """An integer image id per VOC id: its digits (2008_000123 -> 2008000123) or, failing that, its rank."""
    digits = {name: name.replace("_", "") for name in names}
    if all(d.isdigit() for d in digits.values()) and len({int(d) for d in digits.values()}) == len(digits):
        return {name: int(d) for name, d in digits.items()}
    return {name: rank for rank, name in enumerate(sorted(names))}


@register_dataset("voc")
@forwards(DetectionFolderData, drop=FROM_ANNOTATIONS)
def voc(
    *,
    root: str,
    classes: list[str] | None = None,
    train_set: str = "train",
    val_set: str = "val",
    test_set: str = "test",
    image_size: int | None = None,
    augment: list[dict] | None = None,
    **loader_args: Any,
) -> DetectionFolderData:
    """PASCAL VOC detection: root/Annotations/*.xml, JPEGImages/, ImageSets/Main/{train,val,test}.txt.

    ``root`` is a VOCdevkit/VOC2007-like folder. ``train_set`` etc. name the split files in
    ImageSets/Main (VOC2007's usual choice: train_set=trainval); a val or test file left at
    its default name and absent is carved from train (10% each, fixed seed 0). ``classes``
    defaults to the 20 VOC classes; labels are their positions. ``image_size`` and
    ``augment`` as for ``coco``. Image ids are the VOC ids' digits (2008_000123 -> 2008000123).
    """
    base = data_root(root, "voc")
    if not (base / "Annotations").is_dir():
        nested = sorted(p.name for p in base.glob("VOC*") if (p / "Annotations").is_dir())
        nested += sorted(f"VOCdevkit/{p.name}" for p in base.glob("VOCdevkit/VOC*") if (p / "Annotations").is_dir())
        hint = f"; did you mean data.root={base / nested[0]}?" if nested else ""
        raise DataNotFoundError(
            f"VOC folder not found: expected {base / 'Annotations'}/ with JPEGImages/ and "
            f"ImageSets/Main/ beside it{hint}"
        )
    names = list(VOC_CLASSES) if classes is None else classes
    if (
        not isinstance(names, (list, tuple))
        or not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise UsageError(f"data.classes must be a list of distinct class names, got {classes!r}")
    label_of = {name: label for label, name in enumerate(names)}

    lists = base / "ImageSets" / "Main"
    given = {"train": train_set, "val": val_set, "test": test_set}
    ids: dict[str, list[str]] = {}
    missing: list[str] = []
    for split, set_name in given.items():
        path = lists / f"{set_name}.txt"
        if not path.is_file():
            if split != "train" and set_name == split:
                missing.append(split)
                continue
            raise DataNotFoundError(f"VOC split file not found: {path} (data.{split}_set={set_name})")
        ids[split] = _read_ids(path)
        if not ids[split]:
            raise UsageError(f"VOC split file {path} lists no image ids")
    image_ids = _numeric_ids(sorted({i for split_ids in ids.values() for i in split_ids}))
    splits = {
        split: [
            parse_voc_xml(base / "Annotations" / f"{i}.xml", base / "JPEGImages", image_ids[i], label_of)
            for i in split_ids
        ]
        for split, split_ids in ids.items()
    }
    if missing:
        splits.update(carve_splits(splits["train"], missing, str(lists / f"{train_set}.txt")))
    return DetectionFolderData(
        splits=splits,
        class_names=names,
        category_ids=list(range(1, len(names) + 1)),
        image_size=image_size,
        augment=augment,
        **loader_args,
    )


__all__ = ["VOC_CLASSES", "parse_voc_xml", "voc"]
