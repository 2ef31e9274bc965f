"""Generative-model figures: a 2-D latent space coloured by class."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch

__all__ = ["plot_latent_map"]


def plot_latent_map(
    points: torch.Tensor,
    labels: torch.Tensor,
    names: Sequence[str],
    *,
    title: str,
    xlabel: str = "z1",
    ylabel: str = "z2",
) -> plt.Figure:
    """2-D points (N, 2) coloured by class, one legend entry per class."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("tab10")
    for k, name in enumerate(names):
        sel = labels == k
        if sel.any():
            ax.scatter(points[sel, 0].numpy(), points[sel, 1].numpy(), s=9, color=cmap(k % 10), label=name, alpha=0.8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    return fig
