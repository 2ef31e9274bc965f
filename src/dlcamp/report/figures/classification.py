"""Classification figures: the confusion matrix."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch

__all__ = ["confusion_matrix", "plot_confusion"]


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (K, K): row = true class, column = predicted class."""
    idx = labels.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def plot_confusion(cm: torch.Tensor, names: Sequence[str], *, title: str | None = None) -> plt.Figure:
    """Counts (K, K) as a heat map with the numbers written in; the title defaults to the accuracy."""
    k = len(names)
    fig, ax = plt.subplots(figsize=(0.45 * k + 2, 0.45 * k + 1.5))
    ax.imshow(cm.numpy(), cmap="Blues")
    for i in range(k):
        for j in range(k):
            v = int(cm[i, j])
            if v:
                ax.text(
                    j,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v > cm.max().item() / 2 else "black",
                )
    ax.set_xticks(range(k), names, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = cm.diag().sum().item() / max(1, cm.sum().item())
    ax.set_title(title or f"confusion matrix (accuracy {accuracy:.3f})")
    return fig
