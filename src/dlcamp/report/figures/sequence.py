"""Sequence-model figures: attention maps and text (samples, decoded examples)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch

__all__ = ["plot_attention", "plot_text"]


def plot_attention(
    weights: torch.Tensor, source: Sequence[str], target: Sequence[str], *, title: str = ""
) -> plt.Figure:
    """An attention map (T, S): row t = where output token ``target[t]`` looked in ``source``."""
    t, s = weights.shape
    fig, ax = plt.subplots(figsize=(0.28 * s + 1.8, 0.28 * t + 1.4))
    ax.imshow(weights.float().numpy(), cmap="viridis", vmin=0.0, vmax=max(1e-6, float(weights.max())))
    ax.set_xticks(range(s), [repr(c)[1:-1] or " " for c in source], fontsize=7)
    ax.set_yticks(range(t), [repr(c)[1:-1] or " " for c in target], fontsize=7)
    ax.set_xlabel("source (keys)")
    ax.set_ylabel("output (queries)")
    ax.set_title(title, fontsize=9)
    return fig


def plot_text(lines: Sequence[str], *, title: str = "", width: int = 100) -> plt.Figure:
    """Monospaced text as a figure (samples, decoded examples), long lines wrapped at ``width``."""
    import textwrap

    wrapped: list[str] = []
    for line in lines:
        wrapped += textwrap.wrap(line, width, replace_whitespace=False, drop_whitespace=False) or [""]
    fig, ax = plt.subplots(figsize=(0.085 * width + 0.5, 0.19 * len(wrapped) + 0.8))
    ax.axis("off")
    ax.text(
        0.0,
        1.0,
        "\n".join(wrapped),
        family="monospace",
        fontsize=8,
        va="top",
        ha="left",
        transform=ax.transAxes,
        parse_math=False,
    )  # source code is full of "$"
    ax.set_title(title, fontsize=9, loc="left")
    return fig
