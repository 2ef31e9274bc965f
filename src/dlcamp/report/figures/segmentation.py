"""Semantic segmentation figures: label maps in colour, overlays, per-class IoU bars.

Colours come from the data's ``palette`` (one RGB per class); ignored pixels are drawn in
VOC's pale void colour (``IGNORE_COLOUR``, as in the label PNGs), not black, which is VOC's
background.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["colorize", "overlay", "plot_class_iou", "plot_segmentations"]


def colorize(labels: torch.Tensor, palette: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """Class ids [H, W] -> RGB float [3, H, W] in [0, 1]; any id past the palette (ignore) in ``IGNORE_COLOUR``."""
    from dlcamp.data.segmentation import IGNORE_COLOUR

    lut = torch.tensor(IGNORE_COLOUR, dtype=torch.float32).repeat(256, 1) / 255
    lut[: len(palette)] = torch.tensor(palette, dtype=torch.float32) / 255
    return lut[labels.long().clamp(0, 255)].permute(2, 0, 1)


def overlay(
    image: torch.Tensor,
    labels: torch.Tensor,
    palette: Sequence[tuple[int, int, int]],
    alpha: float = 0.5,
    *,
    ignore_index: int = 255,
) -> torch.Tensor:
    """An image [3, H, W] in [0, 1] with its label map blended on top (``alpha`` of the colours; not where ignored)."""
    image = image.float().clamp(0, 1)
    blend = (1 - alpha) * image + alpha * colorize(labels, palette)
    return torch.where(labels[None] == ignore_index, image, blend)


def plot_segmentations(
    images: Sequence[torch.Tensor],
    truths: Sequence[torch.Tensor],
    preds: Sequence[torch.Tensor],
    palette: Sequence[tuple[int, int, int]],
    class_names: Sequence[str],
    *,
    ignore_index: int = 255,
    title: str = "",
) -> plt.Figure:
    """One row per image (each its own size): the image, truth and prediction overlaid, and the wrong pixels in red."""
    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(7.2, 1.9 * n + 0.6), squeeze=False)
    for i in range(n):
        image = images[i].float().clamp(0, 1)
        wrong = ((preds[i] != truths[i]) & (truths[i] != ignore_index)).float()
        panels = [
            image,
            overlay(image, truths[i], palette, ignore_index=ignore_index),
            overlay(image, preds[i], palette, ignore_index=ignore_index),
            torch.stack([wrong, torch.zeros_like(wrong), torch.zeros_like(wrong)]) * 0.9 + image * 0.1,
        ]
        for ax, panel, name in zip(axes[i], panels, ("image", "truth", "prediction", "errors")):
            ax.imshow(panel.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.axis("off")
            if i == 0:
                ax.set_title(name, fontsize=8)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=np.array(palette[k]) / 255, label=name) for k, name in enumerate(class_names)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(class_names), 6), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(bottom=0.6 / (1.9 * n + 0.6) + 0.05)
    return fig


def plot_class_iou(iou: Sequence[float], class_names: Sequence[str], *, title: str = "") -> plt.Figure:
    """Horizontal bars of per-class IoU (absent classes shown as n/a), the mean as a line."""
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(5, 0.3 * k + 1.2))
    values = [0.0 if v != v else v for v in iou]
    ax.barh(range(k), values, color="tab:blue")
    for y, v in enumerate(iou):
        ax.text(min(v, 0.98) if v == v else 0.01, y, f" {v:.3f}" if v == v else " n/a", va="center", fontsize=7)
    present = [v for v in iou if v == v]
    if present:
        ax.axvline(sum(present) / len(present), color="tab:red", lw=1, label="mIoU")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(range(k), class_names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("IoU")
    ax.set_title(title, fontsize=9)
    return fig
