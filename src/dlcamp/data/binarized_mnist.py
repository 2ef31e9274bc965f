"""Binarized MNIST: the benchmark of likelihood models (NADE, VAE, IWAE, PixelCNN).

MNIST's 28×28 digits with every pixel 0 or 1, so that a model with a Bernoulli output
has a proper likelihood, reported as the test negative log-likelihood in nats. Papers use
one of two binarizations, and their numbers are comparable only within one:

- ``binarize="static"``: one fixed draw x ~ Bernoulli(intensity), made once and
  published with NADE (Larochelle & Murray, "The Neural Autoregressive Distribution
  Estimator", AISTATS 2011), so every paper scores the very same bits. Read from
  ``binarized_mnist_{train,valid,test}.amat`` under ``root`` (one image per line: 784
  space-separated 0/1 values, row-major); 50,000 / 10,000 / 10,000 images, the published
  train/val/test split. The files carry no labels: every target is 0. ``num_classes`` is
  still 10, so a classification model builds, but it learns nothing; these files are for
  density models, which ignore the target.
- ``binarize="dynamic"``: the pixels of a training image are drawn x ~ Bernoulli(intensity)
  afresh each time the image is drawn (Salakhutdinov & Murray, "On the Quantitative
  Analysis of Deep Belief Networks", ICML 2008), a regulariser: the model never sees the
  same bits twice. The draw is seeded by (seed, epoch, index), exactly as digits'
  ``binarize="dynamic"``; evaluation splits use one fixed draw, epoch 0's for the run's
  seed, so the test NLL of a run does not move from epoch to epoch. Read from the official
  IDX files under ``root/MNIST/raw/`` (the layout the ``mnist`` dataset reads), with real
  labels. Split: train = first 5/6, val = last 1/6 of the official training set
  (50,000 / 10,000 for MNIST, the sizes of the static split); test = the official 10,000.
  Burda, Grosse & Salakhutdinov ("Importance Weighted Autoencoders", 2015,
  arXiv:1509.00519) trained on all 60,000 training images, so their numbers had 10,000
  more training images than a run here.

"static" here is a random draw made once, not digits' ``binarize="static"``, which
thresholds at 0.5. ``limit`` keeps the first ``limit`` images of each split, for smoke runs.
"""

from __future__ import annotations

import pickle
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets

from dlcamp.data import register_dataset
from dlcamp.data.augment import input_transform
from dlcamp.data.digits import _threshold
from dlcamp.data.module import DataModule
from dlcamp.data.vision import MNIST_URL, _check_idx, _decompress_gz, _root, _UInt8Images, light_on_dark, read_image
from dlcamp.errors import DataNotFoundError, UsageError
from dlcamp.registry import forwards

BINARIZATION = ("static", "dynamic")
AMAT_FILES = {
    "train": "binarized_mnist_train.amat",
    "val": "binarized_mnist_valid.amat",
    "test": "binarized_mnist_test.amat",
}
AMAT_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
PIXELS = 28 * 28
VAL_SHARE = 6  # val = the last 1/6 of the official training set: 10,000 of MNIST's 60,000


# -- reading the files ----------------------------------------------------------------------
def read_amat(path: Path, limit: int | None = None) -> np.ndarray:
    """The images of an .amat file as uint8 [N, 784] of 0/1 (the first ``limit`` if given).

    Blank lines are skipped. Raises ``UsageError`` naming the file and line of the first
    line that is not 784 values each 0 or 1, or for a file with no images.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
            values = np.loadtxt(path, dtype=np.uint8, comments=None, ndmin=2, max_rows=limit)
    except ValueError:
        values = None  # a value that is not an integer 0..255, or a ragged line
    if values is not None and len(values) == 0:
        raise UsageError(f"{path} holds no images; download it again from {AMAT_URL}")
    if values is None or values.shape[1] != PIXELS or (values > 1).any():
        raise _malformed_line(path)  # numpy numbers rows inconsistently: find the line ourselves
    return values


def _malformed_line(path: Path) -> UsageError:
    """The error naming the first line of ``path`` that is not 784 values each 0 or 1."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != PIXELS:
                return UsageError(
                    f"{path} line {number}: {len(tokens)} values, expected {PIXELS} (28×28 pixels, "
                    f"0 or 1); download it again from {AMAT_URL}"
                )
            bad = next((token for token in tokens if token not in (b"0", b"1")), None)
            if bad is not None:
                return UsageError(
                    f"{path} line {number}: value {bad.decode(errors='replace')!r} is not 0 or 1; "
                    f"download it again from {AMAT_URL}"
                )
    return UsageError(f"{path} could not be read as 784 values 0/1 per line; download it again from {AMAT_URL}")


@lru_cache(maxsize=3)
def _amat_images(path: Path, mtime_ns: int, size: int, limit: int | None) -> torch.Tensor:
    """``read_amat`` as uint8 Tensor[N, 1, 28, 28] of 0/255, cached per file version.

    0/255 rather than 0/1 so that ``_UInt8Images`` serves them, like every uint8 image,
    as x / 255. Cached (the key carries the file's mtime and size): treat as read-only.
    """
    values = torch.from_numpy(read_amat(path, limit))  # (N, 784)
    return values.mul_(255).view(-1, 1, 28, 28)  # (N, 1, 28, 28)


def _read_mnist(root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST's training and test images (uint8 [N, 1, 28, 28]) and labels (long [N])."""
    _decompress_gz(root / "MNIST" / "raw")
    try:
        train = datasets.MNIST(str(root), train=True, download=False)
        test = datasets.MNIST(str(root), train=False, download=False)
    except (AssertionError, TypeError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise UsageError(
            f"MNIST files under {root} could not be read "
            f"({' '.join(str(err).split()) or type(err).__name__}); download them again"
        ) from None
    return train.data.unsqueeze(1), train.targets.long(), test.data.unsqueeze(1), test.targets.long()


def _check_amat(root: Path) -> None:
    for file in AMAT_FILES.values():
        if not (root / file).is_file():
            raise DataNotFoundError(
                f"binarized MNIST not found: expected {root / file} — download "
                f"{', '.join(AMAT_FILES.values())} from {AMAT_URL} into {root}/"
            )


# -- data module ----------------------------------------------------------------------------
class BinarizedMNISTData(DataModule):
    """Binarized MNIST as a data module (see the module docstring for the two binarizations)."""

    @forwards(DataModule)
    def __init__(
        self,
        *,
        root: Path,
        binarize: str,
        limit: int | None,
        batch_size: int | str = 100,
        eval_batch_size: int = 500,
        **loader_args: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, **loader_args)
        self.root, self.binarize, self.limit = root, binarize, limit
        self.num_classes = 10
        self.input_shape = (1, 28, 28)
        self.class_names = [str(d) for d in range(10)]
        if binarize == "dynamic":
            self.train_transform = input_transform(torch.bernoulli)
            self.eval_transform = input_transform(torch.bernoulli)  # epoch 0's draw: fixed

    def build_splits(self) -> dict[str, Dataset]:
        if self.binarize == "static":
            splits = {}
            for split, file in AMAT_FILES.items():
                path = self.root / file
                stat = path.stat()
                images = _amat_images(path, stat.st_mtime_ns, stat.st_size, self.limit)
                splits[split] = _UInt8Images(images, torch.zeros(len(images), dtype=torch.long))  # no labels
            return splits
        images, targets, test_images, test_targets = _read_mnist(self.root)
        n_train = len(images) - len(images) // VAL_SHARE  # 50,000 of 60,000
        kept = slice(0, self.limit)
        return {
            "train": _UInt8Images(images[:n_train][kept], targets[:n_train][kept]),
            "val": _UInt8Images(images[n_train:][kept], targets[n_train:][kept]),
            "test": _UInt8Images(test_images[kept], test_targets[kept]),
        }

    def load_input(self, path: Path) -> torch.Tensor:
        """An image file as a binary digit: grey, 28×28, light ink on dark, thresholded at 0.5.

        A picture whose mean is above 0.5 is taken to be dark ink on light paper and is
        inverted. Thresholded, not sampled: a prediction makes no random draw.
        """
        return _threshold(light_on_dark(read_image(path, mode="L", size=28)))


@register_dataset("binarized_mnist")
@forwards(BinarizedMNISTData)
def binarized_mnist(
    *,
    root: str = "data/mnist",
    binarize: Literal["static", "dynamic"] = "static",
    limit: int | None = None,
    **loader_args: Any,
) -> BinarizedMNISTData:
    """Binarized MNIST (50k/10k/10k, 28×28 in {0,1}): Larochelle's fixed draw, or a fresh draw per epoch."""
    if binarize not in BINARIZATION:
        raise UsageError(f"data.binarize must be one of {', '.join(BINARIZATION)}, got {binarize!r}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise UsageError(f"data.limit must be a positive integer (images per split) or null for all, got {limit!r}")
    path = _root(root, "binarized_mnist")
    if binarize == "static":
        _check_amat(path)
    else:
        _check_idx(path, datasets.MNIST, MNIST_URL)
    return BinarizedMNISTData(root=path, binarize=binarize, limit=limit, **loader_args)


__all__ = ["BinarizedMNISTData", "binarized_mnist", "read_amat"]
