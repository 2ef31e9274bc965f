"""GAN figures: both players' losses and D's outputs over training, 2-D samples against the modes."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import torch

__all__ = ["plot_adversarial_curves", "plot_point_progress", "plot_points"]


def _draw(ax, series, keys: Sequence[str], labels: Sequence[str]) -> bool:
    drawn = False
    for key, label in zip(keys, labels):
        if series.get(key):
            steps, values = zip(*series[key])
            per_epoch = key.startswith("val/")
            ax.plot(
                steps,
                values,
                "o-" if per_epoch else "-",
                label=label,
                markersize=3,
                linewidth=1.2 if per_epoch else 0.7,
            )
            drawn = True
    if drawn:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax.set_xlabel("training batch")
    return drawn


def plot_adversarial_curves(series: dict[str, list[tuple[float, float]]], *, loss: str) -> plt.Figure:
    """Three panels: D's and G's losses; D's mean output on real and generated samples; the sample score."""
    score = next((k for k in ("val/fid", "val/modes") if series.get(k)), None)
    fig, axes = plt.subplots(1, 3 if score else 2, figsize=(15 if score else 10, 3.3))
    _draw(axes[0], series, ["train/d_loss", "train/g_loss"], ["discriminator", "generator"])
    axes[0].set_title(f"losses ({loss})")
    prob = loss in ("minimax", "non_saturating")
    _draw(
        axes[1],
        series,
        ["train/d_real", "train/d_fake", "val/d_real", "val/d_fake"],
        ["D(x), train", "D(G(z)), train", "D(x), val", "D(G(z)), val"],
    )
    axes[1].set_title("D's mean output: " + ("probability of 'real'" if prob else "score"))
    if score:
        name = "FID in digits-classifier features (val, 180 samples)" if score == "val/fid" else "modes covered (val)"
        _draw(axes[2], series, [score], [name])
        axes[2].set_title(name)
    fig.tight_layout()
    return fig


def _mode_axes(ax, centers: torch.Tensor, sigma: float) -> None:
    for cx, cy in centers.tolist():
        ax.add_patch(plt.Circle((cx, cy), 3 * sigma, fill=False, color="tab:red", linewidth=0.8))
    ax.scatter(centers[:, 0], centers[:, 1], s=6, color="tab:red", marker="x")
    lo, hi = centers.min(0).values - 1, centers.max(0).values + 1
    ax.set(xlim=(lo[0].item(), hi[0].item()), ylim=(lo[1].item(), hi[1].item()), aspect="equal")


def plot_points(points: torch.Tensor, centers: torch.Tensor, sigma: float, *, title: str) -> plt.Figure:
    """Samples [N, 2] as dots over the mixture's modes (red crosses) and their 3σ circles."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4, color="tab:blue")
    _mode_axes(ax, centers, sigma)
    ax.set_title(title, fontsize=9)
    return fig


def plot_point_progress(snapshots: Sequence[tuple[int, torch.Tensor]], centers: torch.Tensor) -> plt.Figure:
    """The same fixed noise mapped by G at several epochs, one panel each."""
    n = len(snapshots)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (epoch, pts) in zip(axes.flat, snapshots):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color="tab:blue")
        _mode_axes(ax, centers, 0.0)
        ax.set_title(f"epoch {epoch + 1}", fontsize=9)
        ax.tick_params(labelsize=6)
    fig.suptitle("the same fixed noise over training; red crosses: the modes")
    fig.tight_layout()
    return fig
