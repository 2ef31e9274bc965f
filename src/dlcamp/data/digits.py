"""scikit-learn's bundled handwritten digits: the default data of the foundation recipes.

1,797 grey 8×8 images of the digits 0–9 (values 0..16, from the UCI "Optical Recognition
of Handwritten Digits" set), shipped inside scikit-learn, so every recipe on them runs
offline. Inputs are scaled to [0, 1] (x / 16), shape (1, 8, 8), light ink on black;
``size=32`` resizes them to 32×32 (bilinear, antialiased) for CNNs.

Split: stratified by class with the fixed seed 0, whatever the run's seed, 70/10/20:
1,257 train / 180 val / 360 test images (``digits_arrays`` gives scikit-learn baselines the
very same split). The run's ``seed`` only drives shuffling and per-sample randomness.

Binarised variants for likelihood models (NADE, PixelCNN, VAE with a Bernoulli decoder):

- ``binarize="static"``: thresholded at 0.5 once; the data is fixed.
- ``binarize="dynamic"``: each time a training image is drawn, its pixels are sampled
  x ~ Bernoulli(intensity) afresh (Salakhutdinov & Murray, "On the Quantitative Analysis
  of Deep Belief Networks", 2008), a regulariser. The draw is seeded by (seed, epoch,
  index), so it is reproducible. Evaluation splits (val, test, and train when evaluated)
  use one fixed sample: the draw of epoch 0 for the run's seed, so the test NLL of a run
  does not move from epoch to epoch and runs with the same seed score the same images.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset
from torchvision.transforms.v2 import functional as TF

from dlcamp.data import register_dataset
from dlcamp.data.augment import build_augment, input_transform
from dlcamp.data.module import DataModule, stratified_split
from dlcamp.data.vision import light_on_dark, read_image
from dlcamp.errors import UsageError
from dlcamp.registry import forwards

SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # -> 1,257 / 180 / 360 images
BINARIZE = ("none", "static", "dynamic")


@lru_cache(maxsize=4)
def _digit_tensors(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as float Tensor[N, 1, size, size] in [0, 1] and long labels [N].

    Cached: treat the tensors as read-only (indexing them copies).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().div_(16).unsqueeze(1)  # (N, 1, 8, 8)
    if size != 8:
        images = TF.resize(images, [size, size], antialias=True).clamp_(0, 1)  # bilinear
    return images, torch.from_numpy(bunch.target).long()


@lru_cache(maxsize=1)
def _split_indices() -> dict[str, list[int]]:
    labels = _digit_tensors(8)[1].tolist()
    return stratified_split(labels, SPLIT_FRACTIONS, SPLIT_SEED)


def digits_arrays(size: int = 8) -> tuple[np.ndarray, np.ndarray, dict[str, list[int]]]:
    """The digits for scikit-learn: X float32 [N, size*size] in [0, 1], y [N], split indices.

    ``split["train"|"val"|"test"]`` are the row indices of the data module's split, so an
    SVC or MLPClassifier baseline is scored on exactly the images the network is.
    """
    images, labels = _digit_tensors(_check_size(size))
    split = {name: list(idx) for name, idx in _split_indices().items()}
    return images.flatten(1).numpy().copy(), labels.numpy().copy(), split


def _threshold(x: torch.Tensor) -> torch.Tensor:
    return (x > 0.5).to(x.dtype)


def _check_size(size: int) -> int:
    if not isinstance(size, int) or size < 1:
        raise UsageError(f"data.size must be a positive integer (8 native, 32 for CNNs), got {size!r}")
    return size


class DigitsData(DataModule):
    """The digits as a data module (see the module docstring for split and binarisation)."""

    @forwards(DataModule)
    def __init__(
        self, *, size: int = 8, binarize: str = "none", augment: list[dict] | None = None, **loader_args: Any
    ) -> None:
        super().__init__(**loader_args)
        if binarize not in BINARIZE:
            raise UsageError(f"data.binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
        self.size, self.binarize = _check_size(size), binarize
        self.num_classes = 10
        self.input_shape = (1, self.size, self.size)
        self.class_names = [str(d) for d in range(10)]
        aug = build_augment(augment)
        if binarize == "dynamic":
            # Augment the intensities, then sample the pixels.
            self.train_transform = input_transform(aug, torch.bernoulli)
            self.eval_transform = input_transform(torch.bernoulli)  # epoch 0's draw: fixed
        elif binarize == "static":
            # Re-threshold after augmentation so that interpolation cannot leave grey pixels.
            self.train_transform = input_transform(aug, _threshold if aug else None)
        else:
            self.train_transform = input_transform(aug)

    def build_splits(self) -> dict[str, Dataset]:
        images, labels = _digit_tensors(self.size)
        if self.binarize == "static":
            images = _threshold(images)
        return {name: TensorDataset(images[idx], labels[idx]) for name, idx in _split_indices().items()}

    def load_input(self, path: Path) -> torch.Tensor:
        """An image file as a digit: grey, resized to (size, size), [0, 1], light ink on dark.

        A picture whose mean is above 0.5 is taken to be dark ink on light paper and is
        inverted. Binarised variants are thresholded at 0.5 (no random draw at prediction).
        """
        x = light_on_dark(read_image(path, mode="L", size=self.size))
        return _threshold(x) if self.binarize != "none" else x


@register_dataset("digits")
@forwards(DigitsData)
def digits(*, size: int = 8, binarize: Literal["none", "static", "dynamic"] = "none", **kwargs: Any) -> DigitsData:
    """scikit-learn's 1,797 8×8 handwritten digits; stratified 1,257/180/360 split; optional binarisation."""
    return DigitsData(size=size, binarize=binarize, **kwargs)


@register_dataset("digits32")
@forwards(DigitsData)
def digits32(*, size: int = 32, binarize: Literal["none", "static", "dynamic"] = "none", **kwargs: Any) -> DigitsData:
    """The digits resized to 32×32 (bilinear, antialiased) for CNNs; same split as digits."""
    return DigitsData(size=size, binarize=binarize, **kwargs)


__all__ = ["DigitsData", "digits", "digits32", "digits_arrays"]
