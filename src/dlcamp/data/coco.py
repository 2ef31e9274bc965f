"""The ``coco`` dataset: COCO-format detection files, parsed and checked before training.

Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014, arXiv:1405.0312. A
COCO detection file is JSON with ``images`` (id, file_name, width, height),
``annotations`` (id, image_id, category_id, bbox [x, y, width, height], iscrowd) and
``categories`` (id, name): the format of COCO 2017 and of most detection competitions.
Everything a user can get wrong in the files is refused with one line naming the file
and the record (by its id where it has one); images are checked when the data module is
set up (``DetectionFolderData``). Targets follow ``dlcamp.data.detection``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcamp.data import register_dataset
from dlcamp.data.detection import FROM_ANNOTATIONS, DetectionFolderData, ImageRecord, carve_splits, check_box, data_root
from dlcamp.errors import DataNotFoundError, UsageError
from dlcamp.registry import forwards


def read_json(path: Path) -> Any:
    """A JSON file, refused by name when missing or malformed."""
    if not path.is_file():
        raise DataNotFoundError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise UsageError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} is not UTF-8 JSON text: {err.reason} at byte {err.start}") from None


_KINDS = {  # field kind -> (test, what the message says it must be)
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer"),
    "str": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "bbox": (
        lambda v: (
            isinstance(v, list)
            and len(v) == 4
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        ),
        "[x, y, width, height]",
    ),
}


def _field(record: Any, key: str, kind: str, where: str) -> Any:
    if not isinstance(record, dict):
        raise UsageError(f"{where} is not a JSON object: {record!r:.80}")
    if key not in record:
        raise UsageError(f"{where} has no '{key}' field")
    test, expected = _KINDS[kind]
    if not test(record[key]):
        raise UsageError(f"{where}: '{key}' must be {expected}, got {record[key]!r:.80}")
    return record[key]


def _named(record: Any, section: str, index: int, path: Path) -> str:
    """How a message names a record: by its id where it has a usable one, else by its index."""
    record_id = record.get("id") if isinstance(record, dict) else None
    if _KINDS["int"][0](record_id):
        return f"{path}: {_NOUNS[section]} id {record_id}"
    return f"{path}: {section}[{index}]"


_NOUNS = {"images": "image", "annotations": "annotation", "categories": "category"}


@dataclass
class CocoFile:
    """One parsed COCO JSON: its categories (id, name) sorted by id and its image records."""

    path: Path
    categories: list[tuple[int, str]]
    records: list[ImageRecord]


def parse_coco(path: Path, images_dir: Path) -> CocoFile:
    """Read and check one COCO JSON whose ``file_name``s live under ``images_dir``.

    Labels are the positions of the category ids in sorted order (0..K-1). Boxes go from
    COCO's (x, y, width, height) to (x1, y1, x2, y2); see ``check_box`` for what is refused,
    clipped or skipped. Crowd annotations are kept with ``iscrowd`` True; images without
    annotations are kept with empty targets.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise UsageError(
            f"{path} is not a COCO annotation file: expected an object with images, annotations, "
            f"categories; got a JSON {type(data).__name__}"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise UsageError(
                f"{path} has no '{key}' list (a COCO detection file has images, annotations and categories)"
            )
    if not images_dir.is_dir():
        raise DataNotFoundError(f"image folder not found: {images_dir} (for the images of {path})")

    categories: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        where = _named(cat, "categories", i, path)
        cat_id, name = _field(cat, "id", "int", where), _field(cat, "name", "str", where)
        if cat_id in categories:
            raise UsageError(f"{where} appears twice in categories")
        categories[cat_id] = name
    if not categories:
        raise UsageError(f"{path} lists no categories: a detector needs at least one class")
    label_of = {cat_id: label for label, cat_id in enumerate(sorted(categories))}

    images: dict[int, ImageRecord] = {}
    for i, img in enumerate(data["images"]):
        where = _named(img, "images", i, path)
        image_id = _field(img, "id", "int", where)
        if image_id in images:
            raise UsageError(f"{where} appears twice in images")
        images[image_id] = ImageRecord(
            path=images_dir / _field(img, "file_name", "str", where),
            image_id=image_id,
            width=_field(img, "width", "size", where),
            height=_field(img, "height", "size", where),
            source=str(path),
        )

    for i, ann in enumerate(data["annotations"]):
        where = _named(ann, "annotations", i, path)
        _field(ann, "id", "int", where)
        image_id = _field(ann, "image_id", "int", where)
        category_id = _field(ann, "category_id", "int", where)
        x, y, w, h = (float(v) for v in _field(ann, "bbox", "bbox", where))
        if image_id not in images:
            raise UsageError(f"{where}: image_id {image_id} is not among the file's images")
        if category_id not in categories:
            raise UsageError(
                f"{where}: category_id {category_id} is not among the file's categories "
                f"({', '.join(map(str, sorted(categories)))})"
            )
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1):  # True and False compare equal to 1 and 0
            raise UsageError(f"{where}: 'iscrowd' must be 0 or 1, got {crowd!r:.80}")
        record = images[image_id]
        box = check_box(x, y, x + w, y + h, width=record.width, height=record.height, where=where)
        if box is None:
            record.skipped += 1
            continue
        record.boxes.append(box)
        record.labels.append(label_of[category_id])
        record.iscrowd.append(bool(crowd))
    return CocoFile(path, sorted(categories.items()), list(images.values()))


COCO_DEFAULTS = {
    "train": ("train/annotations.json", "train/images"),
    "val": ("val/annotations.json", "val/images"),
    "test": ("test/annotations.json", "test/images"),
}


@register_dataset("coco")
@forwards(DetectionFolderData, drop=FROM_ANNOTATIONS)
def coco(
    *,
    root: str,
    train_json: str = "train/annotations.json",
    train_images: str = "train/images",
    val_json: str = "val/annotations.json",
    val_images: str = "val/images",
    test_json: str = "test/annotations.json",
    test_images: str = "test/images",
    image_size: int | None = None,
    augment: list[dict] | None = None,
    **loader_args: Any,
) -> DetectionFolderData:
    """COCO-format detection: root/<split>/annotations.json + root/<split>/images/ (paths settable).

    Paths are relative to ``root``. COCO 2017 itself, unpacked in root::

        --set data.train_json=annotations/instances_train2017.json --set data.train_images=train2017
        --set data.val_json=annotations/instances_val2017.json --set data.val_images=val2017

    A val or test file left at its default path and absent there is carved from train's
    images (10% each, drawn with the fixed seed 0); one given explicitly must exist. Classes
    are the categories in id order, served as labels 0..K-1 (``category_ids`` keeps the COCO
    ids); every split must list the same categories. ``image_size`` resizes every image to
    a square (boxes follow); None keeps each image's size (batches are then lists).
    ``augment`` is a list of torchvision.transforms.v2 specs applied to training images.
    """
    base = data_root(root, "coco")
    given = {"train": (train_json, train_images), "val": (val_json, val_images), "test": (test_json, test_images)}
    files: dict[str, CocoFile] = {}
    missing: list[str] = []
    for split, (json_name, images_name) in given.items():
        path = base / json_name
        if split != "train" and json_name == COCO_DEFAULTS[split][0] and not path.is_file():
            missing.append(split)
            continue
        files[split] = parse_coco(path, base / images_name)
    categories = files["train"].categories
    for parsed in files.values():
        if parsed.categories != categories:
            raise UsageError(
                f"{parsed.path} lists categories {_show_categories(parsed.categories)} but "
                f"{files['train'].path} lists {_show_categories(categories)}; every split must agree"
            )
    splits = {split: parsed.records for split, parsed in files.items()}
    if missing:
        splits.update(carve_splits(splits["train"], missing, str(files["train"].path)))
    return DetectionFolderData(
        splits=splits,
        class_names=[name for _, name in categories],
        category_ids=[cat_id for cat_id, _ in categories],
        image_size=image_size,
        augment=augment,
        **loader_args,
    )


def _show_categories(categories: list[tuple[int, str]], limit: int = 6) -> str:
    shown = ", ".join(f"{cat_id}:{name}" for cat_id, name in categories[:limit])
    return f"[{shown}{', ...' if len(categories) > limit else ''}] ({len(categories)})"


__all__ = ["COCO_DEFAULTS", "CocoFile", "coco", "parse_coco", "read_json"]
