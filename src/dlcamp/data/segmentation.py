"""Semantic segmentation data: label PNGs, crops and padded batches, image folders and PASCAL VOC.

A sample is ``(image, label)``: the image a float Tensor[3, H, W] in [0, 1], the label a
long Tensor[H, W] holding a class id 0..K-1 per pixel, or ``ignore_index`` (255) for
pixels neither trained on nor scored (VOC marks object borders and ambiguous regions so).
A batch is ``(images float [B, 3, H, W], labels long [B, H, W])``.

Label files. A label is a PNG of class ids, one per pixel: a palette PNG (mode 'P', as
VOC's SegmentationClass: each pixel stores an index, the palette only colours it for
people) or a greyscale PNG ('L'). The stored indices are the ids; converting to RGB
would turn them into colours, so it is never done, and an RGB label PNG is refused.

When files are checked. That every listed image and label file exists is checked by the
builder, before training. A label whose size differs from its image's, or that holds an
id outside 0..K-1 other than ``ignore_index``, is refused (naming the file) when the item
is loaded: decoding every label of a large dataset up front would cost a full pass over
it. The error then surfaces in the first batch that holds the item.

Batching images of different sizes. Training takes a random ``crop_size`` x ``crop_size``
crop of each sample (an image smaller than that is first padded, with 0 and its label
with ``ignore_index``), drawn from torch's generator, which the data module seeds by
(seed, epoch, index). Evaluation never crops: ``pad_collate`` pads every sample of a batch
to the batch's largest height and width, the label with ``ignore_index``, so padding is
never scored. Without ``crop_size``, training batches are padded the same way.

Shape letters: B batch, H, W height and width, K classes.
"""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from dlcamp.data import register_dataset
from dlcamp.data.contracts import SegmentationData
from dlcamp.data.detection import carve_splits, data_root, load_image
from dlcamp.data.module import DataModule
from dlcamp.data.voc import VOC_CLASSES
from dlcamp.errors import DataNotFoundError, UsageError
from dlcamp.io import atomic_dir, write_bytes
from dlcamp.registry import forwards

IGNORE_INDEX = 255  # VOC's "void": object borders and regions too ambiguous to label
IGNORE_COLOUR = (224, 224, 192)  # how VOC's label PNGs draw it (entry 255 of its colour map)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VOC_SEGMENTATION_CLASSES = ("background", *VOC_CLASSES)


def voc_colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """The VOC devkit's colour map: the bits of index i spread over R, G, B, most significant first.

    Bits 0, 1, 2 of i become the top bits of R, G, B; bits 3, 4, 5 the next ones; and so on.
    Neighbouring ids therefore get very different colours (1: (128, 0, 0), 2: (0, 128, 0),
    15 "person": (192, 128, 128)), and 255 is the pale (224, 224, 192) of VOC's borders.
    """
    colours = []
    for index in range(n):
        r = g = b = 0
        bits = index
        for shift in range(7, -1, -1):
            r |= (bits & 1) << shift
            g |= (bits >> 1 & 1) << shift
            b |= (bits >> 2 & 1) << shift
            bits >>= 3
        colours.append((r, g, b))
    return colours


# -- label files ----------------------------------------------------------------------------
def read_label(path: Path) -> np.ndarray:
    """A label PNG as its stored indices: uint8 [H, W] (palette or greyscale only, never RGB)."""
    if not path.is_file():
        raise DataNotFoundError(f"label not found: {path}")
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise UsageError(
                    f"label {path} is a {img.mode} image; a label must be a palette ('P') or greyscale ('L') "
                    "PNG of class ids, one per pixel"
                )
            return np.array(img)  # the indices, not the palette's colours
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UsageError(f"cannot decode label {path}: {' '.join(str(err).split())}") from None


def save_label(
    path: Path, label: np.ndarray, palette: Sequence[tuple[int, int, int]], ignore_index: int = IGNORE_INDEX
) -> None:
    """Write class ids [H, W] (0..255) as a palette PNG: class k drawn in ``palette[k]``, ignore pale."""
    if label.min(initial=0) < 0 or label.max(initial=0) > 255:
        raise ValueError(f"a label PNG holds ids 0..255, got {label.min()}..{label.max()}")
    colours = list(palette) + [(0, 0, 0)] * (256 - len(palette))
    if 0 <= ignore_index < 256:
        colours[ignore_index] = IGNORE_COLOUR
    img = Image.fromarray(label.astype(np.uint8))  # 'L'; putpalette makes it 'P' with the same indices
    img.putpalette([channel for colour in colours[:256] for channel in colour])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_bytes(path, buf.getvalue())  # atomic: a killed run leaves the old file or the new one


def check_label(label: np.ndarray, image: torch.Tensor, *, num_classes: int, ignore_index: int, files: str) -> None:
    """Refuse a label [H, W] whose size is not its image's [3, H, W] or that holds an unknown id."""
    if label.shape != tuple(image.shape[-2:]):
        raise UsageError(
            f"{files}: the label is {label.shape[1]}x{label.shape[0]} pixels but its image is "
            f"{image.shape[-1]}x{image.shape[-2]} (width x height); they must match"
        )
    bad = (label >= num_classes) & (label != ignore_index)
    if bad.any():
        ids = sorted({int(v) for v in np.unique(label[bad])})
        raise UsageError(
            f"{files}: the label holds class id {ids[0]}"
            + (f" (and {', '.join(map(str, ids[1:]))})" if len(ids) > 1 else "")
            + f", but there are {num_classes} classes (ids 0..{num_classes - 1}, and {ignore_index} for ignore)"
        )


class SegmentationImages(Dataset):
    """(image file, label file) pairs served as (float [3, H, W], long [H, W]), checked as they load."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]], *, num_classes: int, ignore_index: int) -> None:
        self.pairs, self.num_classes, self.ignore_index = list(pairs), num_classes, ignore_index

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.pairs[index]
        label = read_label(label_path)
        image = load_image(image_path)
        files = f"label {label_path} (image {image_path})"
        check_label(label, image, num_classes=self.num_classes, ignore_index=self.ignore_index, files=files)
        return image, torch.from_numpy(label.astype(np.int64))


# -- crops and padded batches -------------------------------------------------------------
def pad_to(
    image: torch.Tensor, label: torch.Tensor, height: int, width: int, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad image [C, h, w] with 0 and label [h, w] with ``ignore_index`` at the bottom and right to [height, width]."""
    pad = (0, width - label.shape[-1], 0, height - label.shape[-2])  # (left, right, top, bottom)
    if not any(pad):
        return image, label
    return F.pad(image, pad, value=0.0), F.pad(label, pad, value=ignore_index)


def random_crop(
    image: torch.Tensor, label: torch.Tensor, size: int, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``size`` x ``size`` window of image [C, H, W] and label [H, W] (padded first if smaller)."""
    height, width = max(label.shape[0], size), max(label.shape[1], size)
    image, label = pad_to(image, label, height, width, ignore_index)
    top = int(torch.randint(height - size + 1, ()))
    left = int(torch.randint(width - size + 1, ()))
    return image[:, top : top + size, left : left + size], label[top : top + size, left : left + size]


class SegmentationTransform:
    """The training transform: a horizontal flip (p = 0.5, of image and label together), then a random crop.

    Draws from torch's global generator, which ``SeededView`` forks and seeds per sample. A
    class, not a closure, so data modules stay picklable for DataLoader workers.
    """

    def __init__(self, *, hflip: bool, crop_size: int | None, ignore_index: int) -> None:
        self.hflip, self.crop_size, self.ignore_index = hflip, crop_size, ignore_index

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.hflip and bool(torch.rand(()) < 0.5):
            image, label = image.flip(-1), label.flip(-1)
        if self.crop_size is not None:
            image, label = random_crop(image, label, self.crop_size, self.ignore_index)
        return image, label

    def __repr__(self) -> str:
        return f"SegmentationTransform(hflip={self.hflip}, crop_size={self.crop_size})"


def pad_collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]], ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples padded to the batch's largest H and W: images [B, 3, H, W] (0), labels [B, H, W] (ignore)."""
    height = max(label.shape[0] for _, label in batch)
    width = max(label.shape[1] for _, label in batch)
    padded = [pad_to(image, label, height, width, ignore_index) for image, label in batch]
    return torch.stack([image for image, _ in padded]), torch.stack([label for _, label in padded])


def segmentation_collate(ignore_index: int) -> partial:
    """``pad_collate`` for one ``ignore_index`` (a partial of a module function: picklable for workers)."""
    return partial(pad_collate, ignore_index=ignore_index)


# -- the data module ------------------------------------------------------------------------
def check_ignore_index(ignore_index: Any, num_classes: int) -> int:
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool) or ignore_index < num_classes:
        raise UsageError(
            f"data.ignore_index must be an integer >= the number of classes ({num_classes}), "
            f"so that it is no class id; got {ignore_index!r} (VOC uses 255)"
        )
    return ignore_index


class SegmentationFolderData(DataModule, SegmentationData):
    """Segmentation splits of (image file, label file) pairs: ``segmentation_folder``, ``voc_segmentation``.

    The builder lists and checks the files and sets ``FROM_FILES``; this class checks the
    options, crops and flips the training samples and pads batches. ``input_shape`` is
    (3, crop_size, crop_size), or without a crop the first training image's size (nominal:
    images keep their own sizes). Loader defaults: batches of 8 photographs.
    """

    @forwards(DataModule)
    def __init__(
        self,
        *,
        splits: dict[str, list[tuple[Path, Path]]],
        class_names: Sequence[str],
        palette: Sequence[tuple[int, int, int]] | None = None,
        ignore_index: int = IGNORE_INDEX,
        crop_size: int | None = None,
        hflip: bool = False,
        batch_size: int = 8,
        eval_batch_size: int = 8,
        **loader_args: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, **loader_args)
        if crop_size is not None and (not isinstance(crop_size, int) or isinstance(crop_size, bool) or crop_size < 1):
            raise UsageError(f"data.crop_size must be a positive integer or null (no crop), got {crop_size!r}")
        if not isinstance(hflip, bool):
            raise UsageError(f"data.hflip must be true or false, got {hflip!r}")
        self.records = splits
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.palette = list(palette) if palette is not None else voc_colormap(self.num_classes)
        self.ignore_index = check_ignore_index(ignore_index, self.num_classes)
        self.crop_size = crop_size
        if crop_size is not None or hflip:
            self.train_transform = SegmentationTransform(hflip=hflip, crop_size=crop_size, ignore_index=ignore_index)
        self.collate_fn = segmentation_collate(self.ignore_index)
        if crop_size is not None:
            self.input_shape = (3, crop_size, crop_size)
        else:
            self.input_shape = tuple(load_image(splits["train"][0][0]).shape)

    def build_splits(self) -> dict[str, Dataset]:
        return {
            split: SegmentationImages(pairs, num_classes=self.num_classes, ignore_index=self.ignore_index)
            for split, pairs in self.records.items()
        }

    def load_input(self, path: Path) -> torch.Tensor:
        return load_image(path)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "ignore_index": self.ignore_index, "palette": [list(c) for c in self.palette]}


FROM_FILES = ("splits", "class_names", "palette")  # what a folder builder reads from the files


def _read_names(path: Path) -> list[str]:
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise UsageError(f"split file {path} lists no names")
    return names


def _class_names(classes: Any, num_classes: Any, classes_file: Path) -> list[str]:
    """``classes`` if given, else ``classes_file`` (one per line) if present, else ``num_classes`` generic names."""
    if classes is None and classes_file.is_file():
        classes = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
        where = str(classes_file)
    else:
        where = "data.classes"
    if classes is not None:
        if (
            not isinstance(classes, (list, tuple))
            or not classes
            or not all(isinstance(n, str) and n for n in classes)
            or len(set(classes)) != len(classes)
        ):
            raise UsageError(f"{where} must be a list of distinct class names, got {classes!r}")
        if num_classes is not None and num_classes != len(classes):
            raise UsageError(f"data.num_classes is {num_classes} but {where} names {len(classes)} classes")
        return list(classes)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise UsageError(
            f"segmentation_folder needs its classes: set data.classes=[...] or data.num_classes=K, "
            f"or write {classes_file} (one name per line); got num_classes={num_classes!r}"
        )
    return [f"class_{k}" for k in range(num_classes)]


@register_dataset("segmentation_folder")
@forwards(SegmentationFolderData, drop=FROM_FILES)
def segmentation_folder(
    *, root: str, classes: list[str] | None = None, num_classes: int | None = None, **options: Any
) -> SegmentationFolderData:
    """Segmentation images and label PNGs in a folder: root/images/*.png|jpg, root/labels/*.png, root/splits/.

    Each ``root/images/<name>.(png|jpg|jpeg)`` has its label ``root/labels/<name>.png``.
    Splits: ``root/splits/{train,val,test}.txt`` (one name per line, no extension) where
    ``root/splits/train.txt`` exists, a missing val or test list being carved from it;
    otherwise val and test are carved from all the images (10% each, fixed seed 0, as for
    ``voc``). Classes: ``classes`` (a list), else ``root/classes.txt`` (one per line), else
    ``num_classes`` names them class_0, class_1, ...
    """
    base = data_root(root, "segmentation_folder")
    image_dir, label_dir = base / "images", base / "labels"
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DataNotFoundError(
                f"segmentation folder not found: {folder} (expected images/ and labels/ in data.root)"
            )
    images: dict[str, Path] = {}
    for path in sorted(image_dir.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            if path.stem in images:
                raise UsageError(f"two images are named {path.stem!r}: {images[path.stem]} and {path}; keep one")
            images[path.stem] = path
    if not images:
        raise UsageError(f"{image_dir} holds no images ({', '.join(IMAGE_SUFFIXES)} files)")
    names = _class_names(classes, num_classes, base / "classes.txt")

    def pairs_of(image_names: list[str], where: str) -> list[tuple[Path, Path]]:
        pairs = []
        for name in image_names:
            if name not in images:
                raise DataNotFoundError(
                    f"image not found: {image_dir / name}.(png|jpg|jpeg) ({where}; names have no extension)"
                )
            label = label_dir / f"{name}.png"
            if not label.is_file():
                raise DataNotFoundError(f"label not found: {label} (the label of {images[name]})")
            pairs.append((images[name], label))
        return pairs

    lists = base / "splits"
    if (lists / "train.txt").is_file():
        splits = {
            split: pairs_of(_read_names(lists / f"{split}.txt"), f"listed in {lists / f'{split}.txt'}")
            for split in ("train", "val", "test")
            if (lists / f"{split}.txt").is_file()
        }
        source = str(lists / "train.txt")
    else:
        splits = {"train": pairs_of(sorted(images), f"in {image_dir}")}
        source = f"{image_dir} (no splits/train.txt)"
    missing = [split for split in ("val", "test") if split not in splits]
    if missing:
        splits.update(carve_splits(splits["train"], missing, source))  # pairs, not image records: it only shuffles
    return SegmentationFolderData(splits=splits, class_names=names, **options)


@register_dataset("voc_segmentation")
@forwards(SegmentationFolderData, drop=FROM_FILES)
def voc_segmentation(
    *, root: str, train_set: str = "train", val_set: str = "val", test_set: str = "val", **options: Any
) -> SegmentationFolderData:
    """PASCAL VOC segmentation: root/JPEGImages/*.jpg, SegmentationClass/*.png, ImageSets/Segmentation/.

    Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010.
    ``root`` is a VOCdevkit/VOC2012-like folder. 21 classes: background and the 20 of
    ``voc``; SegmentationClass holds palette PNGs of those ids, 255 on object borders
    (ignored). ``train_set`` etc. name the split files in ImageSets/Segmentation (train,
    val, trainval). The test split defaults to val.txt: VOC's test labels are not public
    (its test set is scored by the evaluation server only).
    """
    base = data_root(root, "voc_segmentation")
    if not (base / "SegmentationClass").is_dir():
        nested = sorted(p.name for p in base.glob("VOC*") if (p / "SegmentationClass").is_dir())
        nested += sorted(
            f"VOCdevkit/{p.name}" for p in base.glob("VOCdevkit/VOC*") if (p / "SegmentationClass").is_dir()
        )
        hint = f"; did you mean data.root={base / nested[0]}?" if nested else ""
        raise DataNotFoundError(
            f"VOC segmentation folder not found: expected {base / 'SegmentationClass'}/ with JPEGImages/ and "
            f"ImageSets/Segmentation/ beside it{hint}"
        )
    splits: dict[str, list[tuple[Path, Path]]] = {}
    for split, set_name in {"train": train_set, "val": val_set, "test": test_set}.items():
        path = base / "ImageSets" / "Segmentation" / f"{set_name}.txt"
        if not path.is_file():
            raise DataNotFoundError(f"VOC split file not found: {path} (data.{split}_set={set_name})")
        pairs = [(base / "JPEGImages" / f"{i}.jpg", base / "SegmentationClass" / f"{i}.png") for i in _read_names(path)]
        for image, label in pairs:
            for file in (image, label):
                if not file.is_file():
                    raise DataNotFoundError(f"VOC file not found: {file} (listed in {path})")
        splits[split] = pairs
    return SegmentationFolderData(
        splits=splits,
        class_names=VOC_SEGMENTATION_CLASSES,
        palette=voc_colormap(len(VOC_SEGMENTATION_CLASSES)),
        **options,
    )


# -- writing the folder layout --------------------------------------------------------------
def write_segmentation_folder(
    target: Path,
    samples: Iterable[tuple[str, np.ndarray, np.ndarray]],
    *,
    class_names: Sequence[str],
    palette: Sequence[tuple[int, int, int]],
    ignore_index: int = IGNORE_INDEX,
) -> Path:
    """Write (name, image uint8 [H, W, 3], label [H, W]) samples as ``segmentation_folder`` reads them.

    Layout: ``images/<name>.png``, ``labels/<name>.png`` (palette PNGs), ``classes.txt``.
    Written into a temporary folder beside ``target`` and renamed into place, so a killed
    export leaves no half folder; a non-empty existing ``target`` is refused.
    """
    target = Path(target)
    with atomic_dir(target) as tmp:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        for name, image, label in samples:
            Image.fromarray(image).save(tmp / "images" / f"{name}.png")
            save_label(tmp / "labels" / f"{name}.png", label, palette, ignore_index)
        (tmp / "classes.txt").write_text("".join(f"{name}\n" for name in class_names))
    return target


__all__ = [
    "FROM_FILES",
    "IGNORE_INDEX",
    "VOC_SEGMENTATION_CLASSES",
    "SegmentationFolderData",
    "SegmentationImages",
    "SegmentationTransform",
    "pad_collate",
    "read_label",
    "save_label",
    "segmentation_collate",
    "segmentation_folder",
    "voc_colormap",
    "voc_segmentation",
    "write_segmentation_folder",
]
