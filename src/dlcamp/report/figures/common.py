"""Figures every family uses: saving a PNG, reading metrics.csv, curves, image grids.

matplotlib draws with the Agg backend (no display needed). Each family's own plots live in
a module beside this one (``classification``, ``detection``, ...); ``dlcamp.report.figures``
finds them by name.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from dlcamp.io import write_bytes  # noqa: E402

__all__ = ["ema", "plot_compare", "plot_curves", "plot_image_grid", "read_metrics_csv", "save"]


def save(fig, path: Path) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    write_bytes(path, buf.getvalue())
    return path


def read_metrics_csv(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Lightning's metrics.csv -> {metric: [(step, value), ...]} (empty cells skipped)."""
    series: dict[str, list[tuple[float, float]]] = {}
    if not path.exists():
        return series
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = float(row.get("step") or 0)
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return series


def plot_curves(series: dict[str, list[tuple[float, float]]], *, title: str = "") -> plt.Figure:
    """Loss curves (train per step, val per epoch) and accuracy curves, side by side."""
    # Lightning logs a step metric as NAME_step (and its epoch mean as NAME_epoch).
    groups = [
        ("loss", [k for k in series if "loss" in k and not k.endswith("_epoch")]),
        ("accuracy", [k for k in series if k.rsplit("/", 1)[-1].startswith("acc") and not k.endswith("_epoch")]),
    ]
    groups = [(name, keys) for name, keys in groups if keys]
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5 * max(1, len(groups)), 3.2), squeeze=False)
    for ax, (name, keys) in zip(axes[0], groups):
        for key in sorted(keys):
            steps, values = zip(*series[key])
            per_step = key.endswith("_step")
            ax.plot(
                steps,
                values,
                "-" if per_step else "o-",
                label=key.removesuffix("_step"),
                markersize=3,
                linewidth=0.8 if per_step else 1.2,
                alpha=0.6 if per_step else 1.0,
            )
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        if name == "loss" and all(v > 0 for key in keys for _, v in series[key]):  # GAN losses can be negative
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def ema(values: Sequence[float], smoothing: float) -> list[float]:
    """Exponential moving average, debiased like TensorBoard's smoothing slider."""
    out, avg = [], 0.0
    for i, v in enumerate(values):
        avg = smoothing * avg + (1 - smoothing) * v
        out.append(avg / (1 - smoothing ** (i + 1)))
    return out


def plot_compare(
    curves: dict[str, list[tuple[float, float]]], *, ylabel: str, title: str, log: bool = True, smoothing: float = 0.6
) -> plt.Figure:
    """Several runs' curves of one metric on one axis (e.g. optimizers' training loss), EMA-smoothed."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    if smoothing:
        title = f"{title} (EMA {smoothing})"
    for label, points in curves.items():
        if points:
            steps, values = zip(*points)
            values = ema(values, smoothing) if smoothing else values
            ax.plot(steps, values, label=label, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return fig


def plot_image_grid(
    images: torch.Tensor,
    titles: Sequence[str] | None = None,
    *,
    highlight: Sequence[bool] | None = None,
    suptitle: str = "",
    ncols: int = 8,
) -> plt.Figure:
    """Images (N, C, H, W) in [0, 1] on a grid with optional titles; highlighted titles in red.

    The grid is one picture (the tiles pasted into one array, white between them) on one pair
    of axes, with the titles written over it: a figure of 32 small axes costs matplotlib
    about a second to lay out and draw, this a tenth of that.
    """
    n = len(images)
    ncols = min(ncols, n) or 1
    nrows = math.ceil(n / ncols)
    tiles = images.detach().float().clamp(0, 1).cpu()
    if tiles.shape[1] == 1:
        tiles = tiles.expand(-1, 3, -1, -1)  # grey as RGB: the same picture as a grey colour map over [0, 1]
    h, w = tiles.shape[-2:]
    gap = max(1, round(0.08 * w))  # white between tiles
    head = round(0.3 * h) if titles else gap  # room for a title above each tile
    canvas = torch.ones(3, nrows * (h + head), ncols * (w + gap) - gap)
    for i in range(n):
        r, c = divmod(i, ncols)
        top, left = r * (h + head) + head, c * (w + gap)
        canvas[:, top : top + h, left : left + w] = tiles[i]
    fig, ax = plt.subplots(figsize=(1.3 * ncols, 1.45 * nrows))
    ax.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.axis("off")
    if titles:
        for i in range(n):
            r, c = divmod(i, ncols)
            red = bool(highlight and highlight[i])
            ax.text(
                c * (w + gap) + w / 2,
                r * (h + head) + head - 1,
                titles[i],
                ha="center",
                va="bottom",
                fontsize=7,
                color="red" if red else "black",
            )
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig
