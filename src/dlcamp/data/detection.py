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

Files. ``DetectionFolderData`` serves annotated image records read from files: ``coco``
(in ``dlcamp.data.coco``) reads COCO-format JSON, ``voc`` (in ``dlcamp.data.voc``) PASCAL
VOC XML. Everything a user can get wrong in the files is checked before training starts
and refused with one line naming the file and the record.
"""

from __future__ import annotations

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

from dlcamp.data.augment import build_augment
from dlcamp.data.module import DataModule
from dlcamp.data.vision import SPLIT_SEED, VAL_FRACTION, read_image
from dlcamp.errors import DataNotFoundError, UsageError
from dlcamp.registry import forwards

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
    return {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.long),
        "iscrowd": torch.zeros(0, dtype=torch.bool),
        "image_id": int(image_id),
    }


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
        if image_size is not None and (
            not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1
        ):
            raise UsageError(
                f"data.image_size must be a positive integer or null (keep each image's size), got {image_size!r}"
            )
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
        boxes = tv_tensors.BoundingBoxes(
            target["boxes"], format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=(height, width)
        )
        inner = {"boxes": boxes, "labels": target["labels"], "iscrowd": target["iscrowd"]}
        if "masks" in target:  # instance masks Tensor[N, H, W] move (and are dropped) with their boxes
            inner["masks"] = tv_tensors.Mask(target["masks"])
        out_image, out = self.pipeline(tv_tensors.Image(image), inner)
        return out_image.as_subclass(torch.Tensor), {
            **target,
            **{key: value.as_subclass(torch.Tensor) for key, value in out.items()},
            "boxes": out["boxes"].as_subclass(torch.Tensor).float(),
        }

    def __repr__(self) -> str:
        return f"DetectionTransform({self.pipeline!r})"


def detection_transform(
    image_size: int | None, augment: list[dict] | None, *, sanitize: bool = True
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
        raise UsageError(
            f"image {path} is {found[0]}x{found[1]} pixels but {listed_in} gives "
            f"{size[0]}x{size[1]}; its boxes would be misplaced"
        )


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
        return {
            "boxes": torch.tensor(self.boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(self.labels, dtype=torch.long),
            "iscrowd": torch.tensor(self.iscrowd, dtype=torch.bool),
            "image_id": self.image_id,
        }


class DetectionImages(Dataset):
    """Image records served as ``(image, target)``, the image decoded when asked for."""

    def __init__(self, records: Sequence[ImageRecord]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        record = self.records[index]
        return load_image(record.path), record.target()


def check_box(x1: float, y1: float, x2: float, y2: float, *, width: int, height: int, where: str) -> list[float] | None:
    """A box (XYXY pixels) checked against its image: clipped within tolerance, None if degenerate.

    Raises ``UsageError`` naming ``where`` for a non-finite value, a negative width or
    height, or a box more than ``BOX_TOLERANCE`` pixels outside the ``width`` x ``height``
    image; returns None for a box of zero width or height (after clipping).
    """
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise UsageError(f"{where}: box {[x1, y1, x2, y2]} has a value that is not a finite number")
    if x2 < x1 or y2 < y1:
        raise UsageError(
            f"{where}: box (x1, y1, x2, y2) = {[x1, y1, x2, y2]} has negative {'width' if x2 < x1 else 'height'}"
        )
    t = BOX_TOLERANCE
    if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
        raise UsageError(
            f"{where}: box (x1, y1, x2, y2) = {[x1, y1, x2, y2]} lies outside its "
            f"{width}x{height} image (beyond the {t:g}-pixel tolerance)"
        )
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
        raise UsageError(
            f"{source} has {n} image(s): too few to carve {' and '.join(missing)} from; give their own annotation files"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    splits: dict[str, list[ImageRecord]] = {}
    start = 0
    for split in missing:
        splits[split] = [train[i] for i in sorted(order[start : start + held[split]])]
        start += held[split]
    splits["train"] = [train[i] for i in sorted(order[start:])]
    return splits


FROM_ANNOTATIONS = ("splits", "class_names", "category_ids")  # what a folder builder reads from the files


class DetectionFolderData(DetectionData):
    """Detection splits read from annotation files and an image folder (COCO, VOC).

    The builder parses and checks the annotations (it sets ``FROM_ANNOTATIONS`` and forwards
    the other options); ``setup()`` checks that every image file exists, decodes and has the
    size its annotations give, and warns once per split with the number of degenerate boxes
    that were skipped (also in ``skipped``). Loader defaults: batches of 8 photographs (an
    integer: never the whole set at once).
    """

    @forwards(DataModule)
    def __init__(
        self,
        *,
        splits: dict[str, list[ImageRecord]],
        class_names: Sequence[str],
        category_ids: Sequence[int],
        image_size: int | None,
        augment: list[dict] | None,
        batch_size: int = 8,
        eval_batch_size: int = 8,
        **loader_args: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, **loader_args)
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
            self.input_shape = (
                3,
                statistics.median_low(r.height for r in splits["train"]),
                statistics.median_low(r.width for r in splits["train"]),
            )
        self.skipped = {split: sum(r.skipped for r in records) for split, records in splits.items()}

    def build_splits(self) -> dict[str, Dataset]:
        for records in self.records.values():
            for record in records:
                check_image_file(record.path, (record.width, record.height), record.source)
        for split, count in self.skipped.items():
            if count:
                sources = ", ".join(sorted({str(r.source) for r in self.records[split] if r.skipped}))
                warnings.warn(
                    f"{split} split: skipped {count} degenerate box(es) of zero width or height (in {sources})",
                    stacklevel=2,
                )
        return {split: DetectionImages(records) for split, records in self.records.items()}

    def load_input(self, path: Path) -> torch.Tensor:
        return load_image(path)


def data_root(root: Any, name: str) -> Path:
    """``root`` as an existing folder, or a one-line refusal saying how to set it."""
    if not isinstance(root, (str, Path)) or not str(root):
        raise UsageError(f"{name} reads local files: set data.root=PATH to the folder that holds them")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataNotFoundError(f"{name} data folder not found: {path} (data.root)")
    return path
