"""Mixup and CutMix: train on blends of two examples with correspondingly blended labels.

Papers:
  "mixup: Beyond Empirical Risk Minimization", Hongyi Zhang, Moustapha Cisse, Yann N.
  Dauphin and David Lopez-Paz, ICLR 2018, arXiv:1710.09412.
  "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable
  Features", Sangdoo Yun, Dongyoon Han, Seong Joon Oh, Sanghyuk Chun, Junsuk Choe and
  Youngjoon Yoo, ICCV 2019, arXiv:1905.04899.

Intuition: empirical risk minimisation only ever sees the training points, so nothing
stops the network from being wildly non-linear and over-confident in between. Mixup
trains on convex combinations of pairs, with the same combination of their labels,

    lam ~ Beta(alpha, alpha)
    x~ = lam * x_i + (1 - lam) * x_j          y~ = lam * onehot(y_i) + (1 - lam) * onehot(y_j)

which asks the model to behave linearly between examples (vicinal risk minimisation).
Small alpha puts lam near 0 or 1 (mild mixing); alpha = 1 makes lam uniform.

CutMix keeps images natural-looking: instead of blending pixels it pastes a rectangle
of x_j, of area ratio (1 - lam), into x_i, and mixes the labels by the share of pixels
each image actually contributes. The box is clipped to the image, so its true area
can be smaller than asked; lam is recomputed from the clipped box so that the label
weights match the pixels exactly.

The partner j of each example is given by a random permutation of the batch. Both
transforms take a batch (x Tensor[B, ...], y Tensor[B] long) and return
(x_mixed, y_soft Tensor[B, K]); ``dlcamp.nn.cross_entropy`` accepts the soft labels.

Shapes: B batch, C channels, H, W spatial, K classes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Beta

__all__ = ["Mixup", "CutMix", "MixupOrCutMix"]


def _one_hot(y: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """Tensor[B] class indices -> Tensor[B, K] one-hot rows of ``dtype``."""
    return torch.zeros(y.shape[0], num_classes, dtype=dtype, device=y.device).scatter_(1, y.unsqueeze(1), 1.0)


class _BatchMix:
    """What Mixup and CutMix share: alpha, the Beta draw, the input checks, the label mix."""

    def __init__(self, alpha: float, num_classes: int) -> None:
        if alpha < 0:
            raise ValueError(f"{type(self).__name__} alpha must be >= 0 (0 turns it off), got {alpha}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be a positive count, got {num_classes}")
        self.alpha = float(alpha)
        self.num_classes = num_classes
        # float64 concentration: lam near 0 or 1 (small alpha) keeps its precision.
        concentration = torch.tensor(self.alpha, dtype=torch.float64)
        self._beta = Beta(concentration, concentration) if alpha > 0 else None

    @property
    def enabled(self) -> bool:
        return self.alpha > 0

    def sample_lam(self) -> float:
        """Draw lam ~ Beta(alpha, alpha) from torch's global RNG (1.0 when turned off)."""
        if self._beta is None:
            return 1.0
        return float(self._beta.sample())

    def _check_batch(self, x: Tensor, y: Tensor) -> None:
        if y.dim() != 1 or y.is_floating_point():
            raise ValueError(
                f"{type(self).__name__} expects labels as a 1-D tensor of class indices, "
                f"got shape {tuple(y.shape)} and dtype {y.dtype}"
            )
        if x.dim() < 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{type(self).__name__} needs one label per example: x has shape {tuple(x.shape)}, "
                f"y has {y.shape[0]} labels"
            )
        # CPU only: on an accelerator this check would stall the stream every batch.
        on_cpu = y.device.type == "cpu" and y.numel() > 0
        if on_cpu and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes - 1}] for num_classes={self.num_classes}, "
                f"got values in [{int(y.min())}, {int(y.max())}]"
            )

    def _label_dtype(self, x: Tensor) -> torch.dtype:
        return x.dtype if x.is_floating_point() else torch.get_default_dtype()

    def mix_labels(self, y: Tensor, perm: Tensor, lam: float, dtype: torch.dtype) -> Tensor:
        """lam * onehot(y) + (1 - lam) * onehot(y[perm]): Tensor[B] -> Tensor[B, K], rows sum to 1."""
        own = _one_hot(y, self.num_classes, dtype)  # (B, K)
        partner = own[perm.to(own.device)]  # (B, K) == onehot(y[perm])
        return own.mul_(lam).add_(partner, alpha=1.0 - lam)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, num_classes={self.num_classes})"


class Mixup(_BatchMix):
    """Blend each example with a random partner from the batch: lam * x + (1 - lam) * x[perm].

    x is any floating tensor Tensor[B, ...]; alpha=0 returns x unchanged with one-hot labels.
    """

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        self._check_batch(x, y)
        if not self.enabled:
            return x, _one_hot(y, self.num_classes, self._label_dtype(x))
        if not x.is_floating_point():
            raise ValueError(
                f"Mixup blends pixel values and needs a floating-point x, got {x.dtype}; "
                "convert the batch first, e.g. with "
                "torchvision.transforms.v2.ToDtype(torch.float32, scale=True)"
            )
        lam = self.sample_lam()
        perm = torch.randperm(x.shape[0], device=x.device)  # (B,) partner of each example
        x_mixed = x.mul(lam).add_(x[perm], alpha=1.0 - lam)  # (B, ...)
        return x_mixed, self.mix_labels(y, perm, lam, x.dtype)


class CutMix(_BatchMix):
    """Paste a random box of a partner image into each image; labels mixed by pixel share.

    x is Tensor[B, ..., H, W] (usually (B, C, H, W)); one box per batch, as in the paper.
    alpha=0 returns x unchanged with one-hot labels.
    """

    def sample_box(self, lam: float, height: int, width: int) -> tuple[int, int, int, int]:
        """A box of area about (1 - lam) * H * W at a uniform random centre, clipped to the image.

        Returns (y1, y2, x1, x2), half-open: rows y1:y2, columns x1:x2.
        """
        # Side ratio sqrt(1 - lam) on both axes keeps the box's aspect ratio the image's.
        cut_ratio = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * cut_ratio), int(width * cut_ratio)
        centre_y = int(torch.randint(0, height, ()))
        centre_x = int(torch.randint(0, width, ()))
        y1, x1 = centre_y - cut_h // 2, centre_x - cut_w // 2
        # Clip to the image: a centre near the border leaves only part of the box inside.
        y2, x2 = min(y1 + cut_h, height), min(x1 + cut_w, width)
        y1, x1 = max(y1, 0), max(x1, 0)
        return y1, y2, x1, x2

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        self._check_batch(x, y)
        if x.dim() < 3:
            raise ValueError(
                f"CutMix pastes boxes and needs images (batch, [channels,] height, width), got shape {tuple(x.shape)}"
            )
        if not self.enabled:
            return x, _one_hot(y, self.num_classes, self._label_dtype(x))
        height, width = x.shape[-2], x.shape[-1]
        lam = self.sample_lam()
        y1, y2, x1, x2 = self.sample_box(lam, height, width)
        perm = torch.randperm(x.shape[0], device=x.device)  # (B,) partner of each example
        x_mixed = x.clone()
        x_mixed[..., y1:y2, x1:x2] = x[..., y1:y2, x1:x2][perm]  # permute only the box's pixels
        # The clipped box may be smaller than asked: weight the labels by the pixels really pasted.
        lam = 1.0 - (y2 - y1) * (x2 - x1) / (height * width)
        return x_mixed, self.mix_labels(y, perm, lam, self._label_dtype(x))


class MixupOrCutMix:
    """Apply CutMix with probability ``switch_prob`` and Mixup otherwise (per batch).

    When only one alpha is > 0, that transform is always used; when neither is, the batch
    passes through unchanged with one-hot labels.
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        num_classes: int = 1000,
        switch_prob: float = 0.5,
    ) -> None:
        if not 0.0 <= switch_prob <= 1.0:
            raise ValueError(f"switch_prob (the chance of CutMix) must be in [0, 1], got {switch_prob}")
        self.mixup = Mixup(mixup_alpha, num_classes)
        self.cutmix = CutMix(cutmix_alpha, num_classes)
        self.num_classes = num_classes
        self.switch_prob = switch_prob

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.mixup.enabled and self.cutmix.enabled:
            use_cutmix = bool(torch.rand(()) < self.switch_prob)
            return self.cutmix(x, y) if use_cutmix else self.mixup(x, y)
        if self.cutmix.enabled:
            return self.cutmix(x, y)
        return self.mixup(x, y)  # Mixup, or the identity with one-hot labels when both are off

    def __repr__(self) -> str:
        return (
            f"MixupOrCutMix(mixup_alpha={self.mixup.alpha}, cutmix_alpha={self.cutmix.alpha}, "
            f"num_classes={self.num_classes}, switch_prob={self.switch_prob})"
        )
