"""Real image datasets read from a local folder: MNIST, Fashion-MNIST, CIFAR-10, ImageFolder.

Files are parsed by torchvision's dataset classes (``torchvision.datasets.MNIST``,
``FashionMNIST``, ``CIFAR10``, ``ImageFolder``) with ``download=False``: nothing is ever
downloaded. Each builder checks that the files exist before anything else, so a wrong
``data.root`` is refused with one line naming the file expected and where it is published,
before a run directory is made.

Splits. ``val`` is a stratified 10% of the official training set, drawn with the fixed
seed 0 whatever the run's seed (so every run validates on the same images); ``train`` is
the other 90%; ``test`` is the official test set. ImageFolder reads ``root/train/`` and,
where present, ``root/val/`` and ``root/test/``; a missing one is carved from ``train/``
the same way (stratified, 10% of ``train/`` each, seed 0). Where a folder is too small to
stratify (a class with a single image, fewer held-out images than classes), the carve
falls back to a plain seeded random split.

Inputs are float Tensor[C, H, W] in [0, 1]; with ``normalize=True`` they are standardised
with the dataset's channel mean and std (ImageNet's for ImageFolder) after augmentation,
and ``denormalize`` undoes it for figures.
"""

from __future__ import annotations

import gzip
import os
import pickle
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Subset
from torchvision import datasets
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from dlcamp.data import register_dataset
from dlcamp.data.augment import build_augment, input_transform
from dlcamp.data.module import DataModule
from dlcamp.errors import DataNotFoundError, UsageError
from dlcamp.registry import forwards

SPLIT_SEED = 0  # the held-out splits never depend on the run's seed
VAL_FRACTION = 0.1

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/ (mirror of yann.lecun.com/exdb/mnist)"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ (listed at https://github.com/zalandoresearch/fashion-mnist)"
CIFAR10_FILES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "batches.meta",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# Channel statistics of the training sets (ImageNet's for arbitrary image folders).
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# -- reading one image file ---------------------------------------------------------------
def read_image(path: str | Path, *, mode: str, size: int | None) -> torch.Tensor:
    """An image file as float Tensor[C, size, size] in [0, 1] (``mode`` "L": C=1, "RGB": C=3).

    Resized to a square (bilinear, antialiased), so the aspect ratio is not kept; with
    ``size`` None, kept at its own size (detection data: boxes are in the file's pixels).
    Raises ``DataNotFoundError`` for a missing file, ``UsageError`` naming the file for one
    that does not decode.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img = img.convert(mode)  # forces the decode, so a truncated file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UsageError(f"cannot decode image {path}: {' '.join(str(err).split())}") from None
    x = TF.pil_to_tensor(img)  # (C, H, W) uint8
    if size is not None:
        x = TF.resize(x, [size, size], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
    return x.float().div_(255)


def light_on_dark(x: torch.Tensor) -> torch.Tensor:
    """Invert an image whose mean is above 0.5: a guess that it is dark ink on light paper.

    MNIST-like data (digits, MNIST, Fashion-MNIST) is light ink on a black background;
    a photo or scan of a drawing is usually the opposite, and most of its pixels are paper.
    """
    return 1.0 - x if x.mean() > 0.5 else x


# -- data modules ---------------------------------------------------------------------------
class _UInt8Images(Dataset):
    """uint8 images [N, C, H, W] and class indices [N], served as float [0, 1] and long.

    Kept as uint8 (a quarter of the memory of float) and converted one sample at a time.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        self.images, self.targets = images, targets.long()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].float().div_(255), self.targets[index]


class ImageData(DataModule):
    """Common ground of the real-image modules: shapes, normalisation, augmentation, inputs.

    A builder sets ``IMAGE_FACTS`` and forwards the options (``normalize``, ``augment``, the
    loader's). Loader defaults: batches of 128, evaluation batches of 512 (small images).
    """

    @forwards(DataModule)
    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int],
        class_names: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        normalize: bool = False,
        augment: list[dict] | None = None,
        light_on_dark: bool = False,
        batch_size: int | str = 128,
        eval_batch_size: int = 512,
        **loader_args: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, **loader_args)
        self.input_shape = tuple(input_shape)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.normalize = normalize
        self.mean, self.std = tuple(mean), tuple(std)
        self._light_on_dark = light_on_dark
        # Augment the [0, 1] image first, then standardise: fills and colour jitter work on pixels.
        norm = v2.Normalize(self.mean, self.std) if normalize else None
        self.train_transform = input_transform(build_augment(augment), norm)
        self.eval_transform = input_transform(norm)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return x
        shape = (-1, 1, 1)  # channels first, for (C, H, W) and (B, C, H, W) alike
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return x * std + mean

    def load_input(self, path: Path) -> torch.Tensor:
        channels, height, _ = self.input_shape
        x = read_image(path, mode="L" if channels == 1 else "RGB", size=height)
        if self._light_on_dark:
            x = light_on_dark(x)
        return TF.normalize(x, list(self.mean), list(self.std)) if self.normalize else x


class MNISTData(ImageData):
    """MNIST or Fashion-MNIST from IDX files under ``root/<MNIST|FashionMNIST>/raw/``."""

    def __init__(self, *, root: Path, dataset_cls: type[datasets.MNIST], **kwargs: Any) -> None:
        super().__init__(input_shape=(1, 28, 28), light_on_dark=True, **kwargs)
        self.root, self.dataset_cls = root, dataset_cls

    def build_splits(self) -> dict[str, Dataset]:
        _decompress_gz(self.root / self.dataset_cls.__name__ / "raw")
        try:
            train = self.dataset_cls(str(self.root), train=True, download=False)
            test = self.dataset_cls(str(self.root), train=False, download=False)
        except (AssertionError, TypeError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
            raise UsageError(
                f"{self.dataset_cls.__name__} files under {self.root} could not be read "
                f"({' '.join(str(err).split()) or type(err).__name__}); download them again"
            ) from None
        images, targets = train.data.unsqueeze(1), train.targets  # (N, 1, 28, 28) uint8
        keep, held = stratified_holdout(targets.tolist(), VAL_FRACTION, SPLIT_SEED)
        return {
            "train": _UInt8Images(images[keep], targets[keep]),
            "val": _UInt8Images(images[held], targets[held]),
            "test": _UInt8Images(test.data.unsqueeze(1), test.targets),
        }


class _CIFAR10Files(datasets.CIFAR10):
    """torchvision's CIFAR10 reader with existence checks instead of MD5 checksums.

    The builder has already checked every file exists; skipping the checksums accepts any
    files in the CIFAR-10 format (a re-packed subset, the small files the tests write).
    """

    train_list = [[name, None] for name in CIFAR10_FILES[:5]]
    test_list = [["test_batch", None]]
    meta = {"filename": "batches.meta", "key": "label_names", "md5": None}


class CIFAR10Data(ImageData):
    """CIFAR-10 from the Python pickles under ``root/cifar-10-batches-py/``."""

    def __init__(self, *, root: Path, **kwargs: Any) -> None:
        super().__init__(input_shape=(3, 32, 32), class_names=CIFAR10_CLASSES, **kwargs)
        self.root = root

    def build_splits(self) -> dict[str, Dataset]:
        try:
            train = _CIFAR10Files(str(self.root), train=True, download=False)
            test = _CIFAR10Files(str(self.root), train=False, download=False)
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as err:
            raise UsageError(
                f"CIFAR-10 files under {self.root / 'cifar-10-batches-py'} could not be read "
                f"({type(err).__name__}: {err}); extract cifar-10-python.tar.gz again"
            ) from None
        targets = torch.tensor(train.targets)
        images = torch.from_numpy(train.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        keep, held = stratified_holdout(targets.tolist(), VAL_FRACTION, SPLIT_SEED)
        test_images = torch.from_numpy(test.data).permute(0, 3, 1, 2).contiguous()
        return {
            "train": _UInt8Images(images[keep], targets[keep]),
            "val": _UInt8Images(images[held], targets[held]),
            "test": _UInt8Images(test_images, torch.tensor(test.targets)),
        }


class _FolderWithClasses(datasets.ImageFolder):
    """An ImageFolder whose class list is given (train/'s), so val/ and test/ share its indices."""

    def __init__(self, root: str, classes: list[str], **kwargs: Any) -> None:
        self._given_classes = classes
        super().__init__(root, allow_empty=True, **kwargs)

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        return list(self._given_classes), {name: i for i, name in enumerate(self._given_classes)}


class ImageFolderData(ImageData):
    """One folder of images per class under ``root/train/`` (and optionally ``val/``, ``test/``)."""

    def __init__(self, *, folders: dict[str, datasets.ImageFolder], **kwargs: Any) -> None:
        super().__init__(class_names=folders["train"].classes, **kwargs)
        self.folders = folders

    def build_splits(self) -> dict[str, Dataset]:
        train = self.folders["train"]
        missing = [split for split in ("val", "test") if split not in self.folders]
        if not missing:
            return {"train": train, "val": self.folders["val"], "test": self.folders["test"]}
        # Carve each missing split from train/: test first, then val from the rest, so that
        # each is 10% of train/ (the two-step split of ``stratified_split``).
        labels = list(train.targets)
        kept = list(range(len(labels)))
        splits: dict[str, Dataset] = {}
        for i, split in enumerate(reversed(missing)):
            fraction = VAL_FRACTION / (1 - i * VAL_FRACTION)
            keep, held = stratified_holdout([labels[k] for k in kept], fraction, SPLIT_SEED)
            splits[split] = Subset(train, [kept[h] for h in held])
            kept = [kept[k] for k in keep]
        splits["train"] = Subset(train, kept)
        for split in ("val", "test"):
            splits.setdefault(split, self.folders.get(split))
        return splits


# -- splits ---------------------------------------------------------------------------------
def stratified_holdout(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (kept, held out) with ``fraction`` held out, stratified by label, fixed ``seed``.

    Falls back to a plain seeded random split where stratification is impossible (a class
    with one sample, or fewer held-out samples than classes).
    """
    from sklearn.model_selection import train_test_split

    idx = list(range(len(labels)))
    try:
        keep, held = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError:
        keep, held = train_test_split(idx, test_size=fraction, random_state=seed)
    return sorted(keep), sorted(held)


# -- file checks ----------------------------------------------------------------------------
def _root(root: str, name: str) -> Path:
    if not isinstance(root, (str, os.PathLike)) or not str(root):
        raise UsageError(f"{name} reads local files: set data.root=PATH to the folder that holds them")
    return Path(root).expanduser()


def _check_idx(root: Path, dataset_cls: type[datasets.MNIST], url: str) -> None:
    """Raise ``DataNotFoundError`` unless the four IDX files (or their .gz) are in place."""
    name = dataset_cls.__name__
    raw, processed = root / name / "raw", root / name / "processed"
    # torchvision also reads the legacy processed/{training,test}.pt pair, if present.
    if all((processed / f).is_file() for f in (dataset_cls.training_file, dataset_cls.test_file)):
        return
    for file in MNIST_FILES:
        if not (raw / file).is_file() and not (raw / f"{file}.gz").is_file():
            raise DataNotFoundError(
                f"{name} not found: expected {raw / file} (or .gz) — download the four IDX files from {url} into {raw}/"
            )


def _decompress_gz(raw: Path) -> None:
    """Decompress ``X.gz`` to ``X`` beside it where only the .gz is there (torchvision reads X)."""
    for file in MNIST_FILES:
        target, packed = raw / file, raw / f"{file}.gz"
        if target.is_file() or not packed.is_file():
            continue
        tmp = raw / f".{file}.{os.getpid()}.tmp"
        try:
            with gzip.open(packed, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(tmp, target)  # atomic: a killed run leaves no half-written file
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise UsageError(f"cannot decompress {packed} ({err}); run `gunzip -k {packed}` yourself") from None


def _check_cifar10(root: Path) -> None:
    folder = root / "cifar-10-batches-py"
    for file in CIFAR10_FILES:
        if not (folder / file).is_file():
            hint = f" (data.root should be {root.parent}, the folder that holds it)" if root.name == folder.name else ""
            raise DataNotFoundError(
                f"CIFAR-10 not found: expected {folder / file} — download cifar-10-python.tar.gz "
                f"from {CIFAR10_URL} and extract it into {root}/{hint}"
            )


def _image_folders(root: Path, image_size: int) -> dict[str, datasets.ImageFolder]:
    """train/ (required), val/ and test/ (optional) as ImageFolders sharing train/'s classes."""
    train_dir = root / "train"
    layout = f"put one folder of images per class under {train_dir}/ (and optionally {root}/val/, {root}/test/)"
    if not train_dir.is_dir():
        raise DataNotFoundError(f"image folder not found: expected {train_dir}/<class>/<image> — {layout}")
    classes = sorted(entry.name for entry in os.scandir(train_dir) if entry.is_dir())
    if not classes:
        raise DataNotFoundError(f"no class folders in {train_dir}: expected {train_dir}/<class>/<image> — {layout}")
    loader = partial(read_image, mode="RGB", size=image_size)
    folders: dict[str, datasets.ImageFolder] = {}
    for split in ("train", "val", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        extra = sorted({e.name for e in os.scandir(split_dir) if e.is_dir()} - set(classes))
        if extra:
            raise UsageError(
                f"{split_dir} has class folders that train/ lacks: {', '.join(extra)}; "
                f"every class must have training images"
            )
        folder = _FolderWithClasses(str(split_dir), classes, loader=loader)
        if len(folder) == 0:
            raise DataNotFoundError(
                f"no images in {split_dir}/<class>/ (extensions {', '.join(datasets.folder.IMG_EXTENSIONS)}) — {layout}"
            )
        folders[split] = folder
    return folders


# -- builders -------------------------------------------------------------------------------
# What a builder of ImageData sets from the dataset; the rest are options it forwards.
IMAGE_FACTS = ("input_shape", "class_names", "mean", "std", "light_on_dark")


@register_dataset("mnist")
@forwards(ImageData, drop=IMAGE_FACTS)
def mnist(*, root: str, **kwargs: Any) -> MNISTData:
    """MNIST handwritten digits (60k/10k, 28×28) from IDX files in root/MNIST/raw/; val = 10% of train."""
    path = _root(root, "mnist")
    _check_idx(path, datasets.MNIST, MNIST_URL)
    return MNISTData(
        root=path,
        dataset_cls=datasets.MNIST,
        class_names=[str(d) for d in range(10)],
        mean=MNIST_MEAN,
        std=MNIST_STD,
        **kwargs,
    )


@register_dataset("fashion_mnist")
@forwards(ImageData, drop=IMAGE_FACTS)
def fashion_mnist(*, root: str, **kwargs: Any) -> MNISTData:
    """Fashion-MNIST clothing (60k/10k, 28×28) from IDX files in root/FashionMNIST/raw/; val = 10% of train."""
    path = _root(root, "fashion_mnist")
    _check_idx(path, datasets.FashionMNIST, FASHION_URL)
    return MNISTData(
        root=path,
        dataset_cls=datasets.FashionMNIST,
        class_names=datasets.FashionMNIST.classes,
        mean=FASHION_MEAN,
        std=FASHION_STD,
        **kwargs,
    )


@register_dataset("cifar10")
@forwards(ImageData, drop=IMAGE_FACTS)
def cifar10(*, root: str, **kwargs: Any) -> CIFAR10Data:
    """CIFAR-10 (50k/10k, 32×32 colour, 10 classes) from root/cifar-10-batches-py/; val = 10% of train."""
    path = _root(root, "cifar10")
    _check_cifar10(path)
    return CIFAR10Data(root=path, mean=CIFAR10_MEAN, std=CIFAR10_STD, **kwargs)


@register_dataset("imagefolder")
@forwards(ImageData, drop=IMAGE_FACTS)
def imagefolder(
    *, root: str, image_size: int = 64, batch_size: int | str = 32, eval_batch_size: int = 128, **kwargs: Any
) -> ImageFolderData:
    """Any images in root/train/<class>/ (optional val/, test/), resized to image_size², RGB."""
    if not isinstance(image_size, int) or image_size < 1:
        raise UsageError(f"data.image_size must be a positive integer, got {image_size!r}")
    path = _root(root, "imagefolder")
    folders = _image_folders(path, image_size)
    # larger images than MNIST's or CIFAR-10's: smaller batches
    return ImageFolderData(
        folders=folders,
        input_shape=(3, image_size, image_size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        **kwargs,
    )


__all__ = [
    "CIFAR10Data",
    "ImageData",
    "ImageFolderData",
    "MNISTData",
    "cifar10",
    "fashion_mnist",
    "imagefolder",
    "light_on_dark",
    "mnist",
    "read_image",
    "stratified_holdout",
]
