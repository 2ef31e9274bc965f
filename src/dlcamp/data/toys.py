"""The 2-D toy data of mode collapse: 8 Gaussians on a ring and 25 on a grid.

A GAN that collapses keeps only some modes of its data. On images that is hard to see; on
a mixture of a few well-separated 2-D Gaussians it can be counted. Metz et al. use the
ring ("Unrolled Generative Adversarial Networks", 2017, arXiv:1611.02163), and Srivastava
et al. add the grid and two scores ("VEEGAN: Reducing Mode Collapse in GANs using Implicit
Variational Learning", 2017, arXiv:1705.07761): a sample is *high quality* when it lies
within 3σ of its nearest centre, and a mode is *covered* when it is the nearest centre of
enough high-quality samples (``dlcamp.data.contracts.PointData``; the adversarial task
asks for a tenth of the mode's fair share, 10% of N/K, so that a few stray samples do not
count as a mode).

Layouts and σ, as in the configuration files that PacGAN's authors released with their
re-run of VEEGAN's synthetic experiments (Lin et al., "PacGAN: The power of two samples
in generative adversarial networks", 2018, arXiv:1712.04086; github.com/fjxmlzn/PacGAN,
``synthetic_data_experiments/2DRing_GAN&PacGAN/config.py`` and ``2DGrid_...``):

- ``ring8``: 8 modes on the unit circle, mode k at angle 2πk/8, so mode 0 is at (1, 0)
  and the others follow counter-clockwise; σ = 0.01. Neighbouring centres are
  2 sin(π/8) ≈ 0.77 apart, about 77σ.
- ``grid25``: 25 modes at {-4, -2, 0, 2, 4}², mode 5i + j at (-4 + 2i, -4 + 2j); σ = 0.05.
  Neighbours are 2 apart, 40σ.

The scores depend only on σ relative to the layout, so a ring scaled by 2 with σ = 0.02
scores the same.

Each mode is an isotropic Gaussian and all modes weigh the same: a point's mode is drawn
uniformly, then the point is its centre plus σ·N(0, I). Its label (long) is that mode's
index. The points are drawn once, from the fixed data seeds 0 (train), 1 (val) and
2 (test), whatever the run's ``seed``, so every run trains on the same points and a
split's points do not depend on the sizes of the others. The run's seed only drives the
shuffling.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset, TensorDataset

from dlcamp.data import register_dataset
from dlcamp.data.contracts import PointData
from dlcamp.data.module import DataModule
from dlcamp.errors import UsageError
from dlcamp.registry import forwards

SPLITS = ("train", "val", "test")
DATA_SEEDS = {"train": 0, "val": 1, "test": 2}  # fixed: the run's seed never moves the points
DEFAULT_SIZES = (20_000, 2_500, 2_500)  # train, val, test points

RING_MODES, RING_RADIUS, RING_SIGMA = 8, 1.0, 0.01
GRID_SIDE, GRID_SPACING, GRID_SIGMA = 5, 2.0, 0.05  # 5 x 5 centres at {-4, -2, 0, 2, 4}²


def ring_centers(modes: int = RING_MODES, radius: float = RING_RADIUS) -> torch.Tensor:
    """Centres Tensor[modes, 2] equally spaced on a circle: mode k at angle 2πk/modes from (radius, 0)."""
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)  # (K,)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()  # (K, 2)


def grid_centers(side: int = GRID_SIDE, spacing: float = GRID_SPACING) -> torch.Tensor:
    """Centres Tensor[side², 2] of a square lattice centred on 0: mode side·i + j at (x_i, x_j)."""
    coords = [(i - (side - 1) / 2) * spacing for i in range(side)]  # -4, -2, 0, 2, 4 by default
    return torch.tensor(list(itertools.product(coords, coords)), dtype=torch.float32)  # (side², 2)


def draw_mixture(centers: torch.Tensor, sigma: float, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points float Tensor[n, 2] from the equal-weight mixture, and their modes long Tensor[n]."""
    generator = torch.Generator().manual_seed(seed)
    modes = torch.randint(len(centers), (n,), generator=generator)  # (n,): equal weights
    noise = torch.randn(n, 2, generator=generator)  # (n, 2)
    return centers[modes] + sigma * noise, modes


def _check_sizes(sizes: Sequence[int]) -> dict[str, int]:
    """{"train": n, "val": n, "test": n} after checking ``sizes`` is three positive integers."""
    valid = isinstance(sizes, (list, tuple)) and len(sizes) == 3
    if not valid or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
        raise UsageError(
            f"data.sizes must be three positive integers, the train, val and test counts "
            f"(e.g. [20000, 2500, 2500]), got {sizes!r}"
        )
    return dict(zip(SPLITS, sizes))


class GaussianMixtureData(PointData, DataModule):
    """Points [N, 2] from an equal-weight mixture of isotropic Gaussians, labelled by mode.

    ``centers`` (float Tensor[K, 2]) and ``sigma`` fix the mixture; ``sizes`` gives the
    train, val and test counts. See the module docstring for the layouts and the seeds.
    """

    @forwards(DataModule)
    def __init__(
        self,
        *,
        centers: torch.Tensor,
        sigma: float,
        sizes: tuple[int, int, int] = DEFAULT_SIZES,
        **loader_args: Any,
    ) -> None:
        super().__init__(**loader_args)
        if centers.dim() != 2 or centers.shape[1] != 2 or len(centers) == 0:
            raise UsageError(f"centers must be a Tensor[K, 2] with K >= 1, got shape {tuple(centers.shape)}")
        if not sigma > 0:
            raise UsageError(f"sigma must be positive, got {sigma!r}")
        self.centers = centers.float()
        self.sigma = float(sigma)
        self.sizes = _check_sizes(sizes)
        self.num_classes = len(centers)
        self.input_shape = (2,)
        self.class_names = [f"mode {k}" for k in range(self.num_classes)]

    def build_splits(self) -> dict[str, Dataset]:
        return {
            split: TensorDataset(*draw_mixture(self.centers, self.sigma, n, DATA_SEEDS[split]))
            for split, n in self.sizes.items()
        }

    def load_input(self, path: Path) -> torch.Tensor:
        raise UsageError(
            f"`predict` takes no files for point data ({type(self).__name__}, 2-D points), got {str(path)!r}"
        )

    def info(self) -> dict[str, Any]:
        return {**super().info(), "centers": self.centers.tolist(), "sigma": self.sigma}


@register_dataset("ring8")
@forwards(GaussianMixtureData, drop=("centers", "sigma"))
def ring8(*, sizes: tuple[int, int, int] = DEFAULT_SIZES, **kwargs: Any) -> GaussianMixtureData:
    """8 Gaussians (σ 0.01) on the unit circle: the ring of Unrolled GANs and VEEGAN; 20,000/2,500/2,500 points."""
    return GaussianMixtureData(centers=ring_centers(), sigma=RING_SIGMA, sizes=sizes, **kwargs)


@register_dataset("grid25")
@forwards(GaussianMixtureData, drop=("centers", "sigma"))
def grid25(*, sizes: tuple[int, int, int] = DEFAULT_SIZES, **kwargs: Any) -> GaussianMixtureData:
    """25 Gaussians (σ 0.05) on the grid {-4, -2, 0, 2, 4}²: VEEGAN's grid; 20,000/2,500/2,500 points."""
    return GaussianMixtureData(centers=grid_centers(), sigma=GRID_SIGMA, sizes=sizes, **kwargs)


__all__ = ["GaussianMixtureData", "draw_mixture", "grid25", "grid_centers", "ring8", "ring_centers"]
