"""What tasks and the command line may ask of a data module beyond ``DataModule``, as abstract classes.

A task checks its data module against one of these once, when it is built, and says in one
line what it needs; it never probes a data module with ``hasattr``.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


class TextData(abc.ABC):
    """Data over a character vocabulary: ``vocab`` maps characters to ids and back."""

    vocab: Any  # a dlcamp.data.text.Vocab: characters to ids and back


class Seq2SeqData(TextData):
    """Source -> target pairs of text: ``max_target_len`` bounds what a decoder may emit."""

    max_target_len: int


class Exportable(abc.ABC):
    """A generated dataset that can be written to disk in a standard format (`dlcamp data export`)."""

    sizes: dict[str, int]  # items per split: what `export` writes when no count is given

    @abc.abstractmethod
    def export(self, root: Path, split: str, n: int) -> Path:
        """Write the first ``n`` items of ``split`` under ``root``; return the folder written."""


class SegmentationData(abc.ABC):
    """Images with a class id per pixel: batches are (float [B, 3, H, W], long [B, H, W]).

    ``ignore_index`` marks pixels that are neither trained on nor scored (VOC's 255 on
    object borders and "difficult" regions); ``palette`` gives one RGB colour per class for
    label PNGs and overlays.
    """

    ignore_index: int
    palette: list[tuple[int, int, int]]


class PointData(abc.ABC):
    """2-D points drawn from a known Gaussian mixture: batches are (float [B, 2], long [B] mode index).

    Because the mixture is known, generated samples can be scored without a learned critic
    (VEEGAN, Srivastava et al. 2017): a sample is *high quality* when it lies within
    3 ``sigma`` of its nearest centre, and a mode is *covered* when it is the nearest centre
    of at least ``min_count`` high-quality samples (``dlcamp.metrics.samples.mode_coverage``). ``centers`` (float Tensor[K, 2]) are the modes'
    means; every mode is an isotropic Gaussian of standard deviation ``sigma``.
    """

    centers: torch.Tensor  # float [K, 2]: the modes' means
    sigma: float  # each mode's standard deviation, the same along both axes
