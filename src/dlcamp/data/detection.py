"""Detection data: the target format, batching, transforms, and COCO-format folders.

A sample is ``(image, target)``: the image a float Tensor[3, H, W] in [0, 1] (models
normalise inside), the target a dict

- ``boxes``: float Tensor[N, 4], (x1, y1, x2, y2) in pixels of the image as served
  (after any resize), x2 > x1 and y2 > y1;
- ``labels``: long Tensor[N], contiguous class indices 0..K-1 (no background index: each
  model adds its own);
- ``iscrowd``: bool Tensor[N]; crowd regions are never trained on, and in evaluation a
  detection that falls on one is neither a true nor a false positive (COCO's rule);
- ``image_id``: int, the image's id (the COCO id for COCO data).

A batch is ``(images, targets)``: images stacked into Tensor[B, 3, H, W] when all have
one size, else a list of Tensor[3, H_i, W_i] (Faster R-CNN pads them itself); targets a
list of dicts.

Transforms. ``detection_transform`` moves the boxes with the pixels: the image and boxes
are handed to torchvision.transforms.v2 as ``tv_tensors`` (an ``Image`` and XYXY
``BoundingBoxes``), so a flip mirrors the boxes, a resize scales them and a crop cuts
them; ``SanitizeBoundingBoxes`` then drops the boxes a transform squashed to nothing,
with their labels and crowd flags.

Files. ``coco`` reads COCO-format JSON (the format of COCO 2017 and of most detection
competitions) and an image folder; ``voc`` (in ``dlcamp.data.voc``) reads PASCAL VOC XML.
Everything a user can get wrong in the files is checked before training starts and
refused with one line naming the file and the record.
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from dlcamp.data import register_dataset
from dlcamp.data.augment import build_augment
from dlcamp.data.module import DataModule
from dlcamp.data.vision import SPLIT_SEED, VAL_FRACTION, read_image
from dlcamp.errors import DataNotFoundError, UsageError

BOX_TOLERANCE = 1.0  # pixels a box may stick out of its image (rounding in the labelling tool); clipped


def detection_collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[Any, list[dict[str, Any]]]:
    """Images stacked when they share a size (else a list), targets as a list of dicts."""
    images = [b[0] for b in batch]
    targets = [b[1] for b in batch]
    if all(im.shape == images[0].shape for im in images):
        return torch.stack(images), targets
    return images, targets


def empty_target(image_id: int) -> dict[str, Any]:
    """The target of an image with no objects."""
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
            "iscrowd": torch.zeros(0, dtype=torch.bool), "image_id": int(image_id)}


class DetectionData(DataModule):
    """Base of detection data modules: class facts, COCO category ids and the collate.

    A subclass sets ``class_names`` (K things), ``num_classes`` (= K), ``input_shape``
    (3, H, W: the size served, or the nominal size when images vary) and
    ``category_ids`` (the COCO category id of each class index, for results files).
    """

    collate_fn = staticmethod(detection_collate)
    category_ids: list[int] = []

    def info(self) -> dict[str, Any]:
        return {**super().info(), "category_ids": list(self.category_ids)}


# -- transforms -----------------------------------------------------------------------------
def _labels_and_crowd(inputs: tuple[Any, dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    # What SanitizeBoundingBoxes must drop together with each dropped box.
    target = inputs[1]
    return target["labels"], target["iscrowd"]


class DetectionTransform:
    """A per-sample ``(image, target) -> (image, target)`` transform that keeps boxes in sync.

    Steps: the augmentation (v2 specs, see ``dlcamp.data.augment``), a resize to
    ``image_size`` x ``image_size`` (none when None), a clamp of the boxes to the image,
    and ``SanitizeBoundingBoxes`` (drops boxes under 1 pixel wide or high, or under 1 pixel
    of area, with their labels, crowd flags and instance ``masks`` if the target has them).
    Evaluation splits skip the sanitizing (``sanitize=False``): a resize never squashes a box
    to nothing, and the ground truth the mAP is computed on must keep every annotated
    object, however small. Other target keys pass through untouched, so they must not be per-box. A class, not a
    closure, so data modules stay picklable for DataLoader workers.
    """

    def __init__(self, image_size: int | None, augment: list[dict] | None, *, sanitize: bool = True) -> None:
        if image_size is not None and (not isinstance(image_size, int) or isinstance(image_size, bool)
                                       or image_size < 1):
            raise UsageError(f"data.image_size must be a positive integer or null (keep each image's size), "
                             f"got {image_size!r}")
        steps: list[Any] = []
        augmentation = build_augment(augment)
        if augmentation is not None:
            steps.append(augmentation)
        if image_size is not None:
            steps.append(v2.Resize([image_size, image_size], antialias=True))
        steps.append(v2.ClampBoundingBoxes())
        if sanitize:
            steps.append(v2.SanitizeBoundingBoxes(labels_getter=_labels_and_crowd))
        self.image_size = image_size
        self.pipeline = v2.Compose(steps)

    def __call__(self, image: torch.Tensor, target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        height, width = image.shape[-2:]
        boxes = tv_tensors.BoundingBoxes(target["boxes"], format=tv_tensors.BoundingBoxFormat.XYXY,
                                         canvas_size=(height, width))
        inner = {"boxes": boxes, "labels": target["labels"], "iscrowd": target["iscrowd"]}
        if "masks" in target:  # instance masks Tensor[N, H, W] move (and are dropped) with their boxes
            inner["masks"] = tv_tensors.Mask(target["masks"])
        out_image, out = self.pipeline(tv_tensors.Image(image), inner)
        return out_image.as_subclass(torch.Tensor), {
            **target, **{key: value.as_subclass(torch.Tensor) for key, value in out.items()},
            "boxes": out["boxes"].as_subclass(torch.Tensor).float(),
        }

    def __repr__(self) -> str:
        return f"DetectionTransform({self.pipeline!r})"


def detection_transform(image_size: int | None, augment: list[dict] | None, *, sanitize: bool = True
                        ) -> DetectionTransform:
    """The ``(image, target)`` transform of a detection split: ``augment`` specs, then a resize.

    Train splits take ``detection_transform(image_size, augment)``, evaluation splits
    ``detection_transform(image_size, None)``. Random draws use torch's global generator,
    which the data module's per-sample hook seeds by (seed, epoch, index).
    ``RandomIoUCrop`` keeps trying crops until one holds a box or it draws its "leave as is"
    option (1.0, among the defaults): keep that option, since some images have no boxes.
    """
    return DetectionTransform(image_size, augment, sanitize=sanitize)


# -- image files ----------------------------------------------------------------------------
def load_image(path: str | Path) -> torch.Tensor:
    """An image file as float Tensor[3, H, W] in [0, 1], at its own size.

    Raises ``DataNotFoundError`` for a missing file, ``UsageError`` naming the file for one
    that does not decode.
    """
    return read_image(path, mode="RGB", size=None)


def check_image_file(path: Path, size: tuple[int, int], listed_in: str) -> None:
    """Refuse a missing, undecodable or wrongly sized (``size`` = (W, H)) image file, by name.

    PIL's ``verify`` reads the headers (and a PNG's chunks) without decoding the pixels:
    cheap enough to run over every file before training.
    """
    if not path.is_file():
        raise DataNotFoundError(f"image not found: {path} (listed in {listed_in})")
    try:
        with Image.open(path) as img:
            found = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UsageError(f"cannot decode image {path}: {' '.join(str(err).split())}") from None
    if found != tuple(size):
        raise UsageError(f"image {path} is {found[0]}x{found[1]} pixels but {listed_in} gives "
                         f"{size[0]}x{size[1]}; its boxes would be misplaced")


@dataclass
class ImageRecord:
    """One annotated image: its file, id, size and objects (boxes XYXY in its own pixels)."""

    path: Path
    image_id: int
    width: int
    height: int
    boxes: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    iscrowd: list[bool] = field(default_factory=list)
    skipped: int = 0  # degenerate boxes left out
    source: str = ""  # the annotation file that lists it, for messages

    def target(self) -> dict[str, Any]:
        if not self.boxes:
            return empty_target(self.image_id)
        return {"boxes": torch.tensor(self.boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor(self.labels, dtype=torch.long),
                "iscrowd": torch.tensor(self.iscrowd, dtype=torch.bool), "image_id": self.image_id}


class DetectionImages(Dataset):
    """Image records served as ``(image, target)``, the image decoded when asked for."""

    def __init__(self, records: Sequence[ImageRecord]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        record = self.records[index]
        return load_image(record.path), record.target()


def check_box(x1: float, y1: float, x2: float, y2: float, *, width: int, height: int,
              where: str) -> list[float] | None:
    """A box (XYXY pixels) checked against its image: clipped within tolerance, None if degenerate.

    Raises ``UsageError`` naming ``where`` for a non-finite value, a negative width or
    height, or a box more than ``BOX_TOLERANCE`` pixels outside the ``width`` x ``height``
    image; returns None for a box of zero width or height (after clipping).
    """
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise UsageError(f"{where}: box {[x1, y1, x2, y2]} has a value that is not a finite number")
    if x2 < x1 or y2 < y1:
        raise UsageError(f"{where}: box (x1, y1, x2, y2) = {[x1, y1, x2, y2]} has negative "
                         f"{'width' if x2 < x1 else 'height'}")
    t = BOX_TOLERANCE
    if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
        raise UsageError(f"{where}: box (x1, y1, x2, y2) = {[x1, y1, x2, y2]} lies outside its "
                         f"{width}x{height} image (beyond the {t:g}-pixel tolerance)")
    box = [min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height)]
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    return box


def carve_splits(train: list[ImageRecord], missing: Sequence[str], source: str) -> dict[str, list[ImageRecord]]:
    """Hold out ``VAL_FRACTION`` of ``train``'s images for each missing split (seed ``SPLIT_SEED``).

    The held-out images are drawn with the fixed seed whatever the run's seed, so every run
    validates on the same images. Returns the new train list and one list per missing split.
    """
    n = len(train)
    held = {split: math.ceil(VAL_FRACTION * n) for split in missing}
    if n - sum(held.values()) < 1:
        raise UsageError(f"{source} has {n} image(s): too few to carve {' and '.join(missing)} from; "
                         f"give their own annotation files")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    splits: dict[str, list[ImageRecord]] = {}
    start = 0
    for split in missing:
        splits[split] = [train[i] for i in sorted(order[start:start + held[split]])]
        start += held[split]
    splits["train"] = [train[i] for i in sorted(order[start:])]
    return splits


class DetectionFolderData(DetectionData):
    """Detection splits read from annotation files and an image folder (COCO, VOC).

    The builder parses and checks the annotations; ``setup()`` checks that every image
    file exists, decodes and has the size its annotations give, and warns once per split
    with the number of degenerate boxes that were skipped (also in ``skipped``).
    """

    def __init__(self, *, splits: dict[str, list[ImageRecord]], class_names: Sequence[str],
                 category_ids: Sequence[int], image_size: int | None, augment: list[dict] | None,
                 **loader_args: Any) -> None:
        super().__init__(**loader_args)
        self.records = splits
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.category_ids = list(category_ids)
        self.image_size = image_size
        self.train_transform = detection_transform(image_size, augment)
        self.eval_transform = detection_transform(image_size, None, sanitize=False)
        if image_size is not None:
            self.input_shape = (3, image_size, image_size)
        else:  # nominal: images keep their own sizes
            self.input_shape = (3, statistics.median_low(r.height for r in splits["train"]),
                                statistics.median_low(r.width for r in splits["train"]))
        self.skipped = {split: sum(r.skipped for r in records) for split, records in splits.items()}

    def build_splits(self) -> dict[str, Dataset]:
        for records in self.records.values():
            for record in records:
                check_image_file(record.path, (record.width, record.height), record.source)
        for split, count in self.skipped.items():
            if count:
                sources = ", ".join(sorted({str(r.source) for r in self.records[split] if r.skipped}))
                warnings.warn(f"{split} split: skipped {count} degenerate box(es) of zero width or height "
                              f"(in {sources})", stacklevel=2)
        return {split: DetectionImages(records) for split, records in self.records.items()}

    def load_input(self, path: Path) -> torch.Tensor:
        return load_image(path)


# -- COCO -----------------------------------------------------------------------------------
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
    "bbox": (lambda v: isinstance(v, list) and len(v) == 4
             and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v), "[x, y, width, height]"),
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
        raise UsageError(f"{path} is not a COCO annotation file: expected an object with images, annotations, "
                         f"categories; got a JSON {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise UsageError(f"{path} has no '{key}' list (a COCO detection file has images, annotations "
                             f"and categories)")
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
        images[image_id] = ImageRecord(path=images_dir / _field(img, "file_name", "str", where), image_id=image_id,
                                       width=_field(img, "width", "size", where),
                                       height=_field(img, "height", "size", where), source=str(path))

    for i, ann in enumerate(data["annotations"]):
        where = _named(ann, "annotations", i, path)
        _field(ann, "id", "int", where)
        image_id = _field(ann, "image_id", "int", where)
        category_id = _field(ann, "category_id", "int", where)
        x, y, w, h = (float(v) for v in _field(ann, "bbox", "bbox", where))
        if image_id not in images:
            raise UsageError(f"{where}: image_id {image_id} is not among the file's images")
        if category_id not in categories:
            raise UsageError(f"{where}: category_id {category_id} is not among the file's categories "
                             f"({', '.join(map(str, sorted(categories)))})")
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


def data_root(root: Any, name: str) -> Path:
    """``root`` as an existing folder, or a one-line refusal saying how to set it."""
    if not isinstance(root, (str, Path)) or not str(root):
        raise UsageError(f"{name} reads local files: set data.root=PATH to the folder that holds them")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataNotFoundError(f"{name} data folder not found: {path} (data.root)")
    return path


COCO_DEFAULTS = {"train": ("train/annotations.json", "train/images"), "val": ("val/annotations.json", "val/images"),
                 "test": ("test/annotations.json", "test/images")}


@register_dataset("coco")
def coco(*, root: str, train_json: str = "train/annotations.json", train_images: str = "train/images",
         val_json: str = "val/annotations.json", val_images: str = "val/images",
         test_json: str = "test/annotations.json", test_images: str = "test/images",
         image_size: int | None = None, augment: list[dict] | None = None, batch_size: int = 8,
         eval_batch_size: int = 8, num_workers: int = 0, seed: int = 0) -> DetectionFolderData:
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
    for split, parsed in files.items():
        if parsed.categories != categories:
            raise UsageError(f"{parsed.path} lists categories {_show_categories(parsed.categories)} but "
                             f"{files['train'].path} lists {_show_categories(categories)}; every split must agree")
    splits = {split: parsed.records for split, parsed in files.items()}
    if missing:
        splits.update(carve_splits(splits["train"], missing, str(files["train"].path)))
    return DetectionFolderData(splits=splits, class_names=[name for _, name in categories],
                               category_ids=[cat_id for cat_id, _ in categories], image_size=image_size,
                               augment=augment, batch_size=batch_size, eval_batch_size=eval_batch_size,
                               num_workers=num_workers, seed=seed)


def _show_categories(categories: list[tuple[int, str]], limit: int = 6) -> str:
    shown = ", ".join(f"{cat_id}:{name}" for cat_id, name in categories[:limit])
    return f"[{shown}{', ...' if len(categories) > limit else ''}] ({len(categories)})"
