"""Figures as PNG files, drawn with matplotlib (Agg: no display needed)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from dlcamp.io import write_bytes  # noqa: E402


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
    groups = [("loss", [k for k in series if "loss" in k and not k.endswith("_epoch")]),
              ("accuracy", [k for k in series if k.rsplit("/", 1)[-1].startswith("acc") and not k.endswith("_epoch")])]
    groups = [(name, keys) for name, keys in groups if keys]
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5 * max(1, len(groups)), 3.2), squeeze=False)
    for ax, (name, keys) in zip(axes[0], groups):
        for key in sorted(keys):
            steps, values = zip(*series[key])
            per_step = key.endswith("_step")
            ax.plot(steps, values, "-" if per_step else "o-", label=key.removesuffix("_step"), markersize=3,
                    linewidth=0.8 if per_step else 1.2, alpha=0.6 if per_step else 1.0)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        if name == "loss":
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


def plot_compare(curves: dict[str, list[tuple[float, float]]], *, ylabel: str, title: str, log: bool = True,
                 smoothing: float = 0.6) -> plt.Figure:
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


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (K, K): row = true class, column = predicted class."""
    idx = labels.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def plot_confusion(cm: torch.Tensor, names: Sequence[str]) -> plt.Figure:
    k = len(names)
    fig, ax = plt.subplots(figsize=(0.45 * k + 2, 0.45 * k + 1.5))
    ax.imshow(cm.numpy(), cmap="Blues")
    for i in range(k):
        for j in range(k):
            v = int(cm[i, j])
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="white" if v > cm.max().item() / 2 else "black")
    ax.set_xticks(range(k), names, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix (accuracy {cm.diag().sum().item() / max(1, cm.sum().item()):.3f})")
    return fig


def plot_image_grid(images: torch.Tensor, titles: Sequence[str] | None = None, *, highlight: Sequence[bool] | None = None,
                    suptitle: str = "", ncols: int = 8) -> plt.Figure:
    """Images (N, C, H, W) in [0, 1] on a grid with optional titles; highlighted titles in red."""
    n = len(images)
    ncols = min(ncols, n) or 1
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.45 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i].detach().float().clamp(0, 1).cpu()
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
        if titles:
            ax.set_title(titles[i], fontsize=7, color="red" if highlight and highlight[i] else "black")
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def plot_latent_map(points: torch.Tensor, labels: torch.Tensor, names: Sequence[str], *, title: str,
                    xlabel: str = "z1", ylabel: str = "z2") -> plt.Figure:
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


def plot_attention(weights: torch.Tensor, source: Sequence[str], target: Sequence[str], *, title: str = "") -> plt.Figure:
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
    ax.text(0.0, 1.0, "\n".join(wrapped), family="monospace", fontsize=8, va="top", ha="left",
            transform=ax.transAxes, parse_math=False)  # source code is full of "$"
    ax.set_title(title, fontsize=9, loc="left")
    return fig


# --------------------------------------------------------------------------- detection


def _class_colour(k: int) -> tuple[float, float, float]:
    """The colour of class index k (tab10, then tab20's lighter shades), as RGB in [0, 1]."""
    palette = plt.get_cmap("tab10").colors + plt.get_cmap("tab20").colors[1::2]
    return tuple(palette[int(k) % len(palette)])


def _as_boxes(boxes, where: str) -> torch.Tensor:
    """Boxes as a float Tensor[N, 4] (an empty input of any shape is N = 0)."""
    boxes = torch.as_tensor(boxes).detach().cpu().float()
    if boxes.numel() == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where} must have shape [N, 4] (x1, y1, x2, y2), got {list(boxes.shape)}")
    return boxes


def _as_chw(image, where: str) -> torch.Tensor:
    """An image Tensor[3, H, W] in [0, 1], checked."""
    image = torch.as_tensor(image).detach().cpu().float()
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"{where} must be a Tensor[3, H, W] in [0, 1], got shape {list(image.shape)}")
    return image.clamp(0, 1)


def _box_caption(label: int, class_names: Sequence[str], score: float | None) -> str:
    name = class_names[label] if 0 <= label < len(class_names) else str(label)
    return name if score is None else f"{name} {score:.2f}"


def draw_boxes(image, boxes, labels, class_names: Sequence[str], scores=None, *, dashed: bool = False) -> Image.Image:
    """Boxes drawn onto an image with PIL, one colour per class, captioned "name 0.93".

    ``image`` is a uint8 array [H, W, 3] or a float Tensor[3, H, W] in [0, 1]; ``boxes``
    [N, 4] (x1, y1, x2, y2) in pixels, ``labels`` [N] class indices, ``scores`` [N] or None
    (ground truth: the caption is the name alone). ``dashed`` draws thin dashed outlines, the
    convention for ground truth next to solid predictions. Returns a new RGB image.
    """
    if isinstance(image, torch.Tensor):
        pixels = (_as_chw(image, "image").permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # (H, W, 3)
    else:
        pixels = np.asarray(image)
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"image must be a uint8 array [H, W, 3] or a float Tensor[3, H, W], "
                             f"got {pixels.dtype} {list(pixels.shape)}")
    boxes = _as_boxes(boxes, "boxes")
    labels = torch.as_tensor(labels).reshape(-1).tolist()
    if len(labels) != len(boxes):
        raise ValueError(f"got {len(labels)} labels for {len(boxes)} boxes")
    scores = None if scores is None else torch.as_tensor(scores).reshape(-1).tolist()
    if scores is not None and len(scores) != len(boxes):
        raise ValueError(f"got {len(scores)} scores for {len(boxes)} boxes")

    out = Image.fromarray(pixels).convert("RGB")
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    width = 1 if dashed else 2
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        colour = tuple(int(255 * c) for c in _class_colour(labels[i]))
        if dashed:
            dash = 4
            corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
            for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1]):  # the four sides
                length = max(abs(bx - ax), abs(by - ay))
                for start in np.arange(0.0, length, 2 * dash):  # dash on, dash off
                    f0, f1 = start / max(length, 1e-9), min(start + dash, length) / max(length, 1e-9)
                    draw.line([(ax + f0 * (bx - ax), ay + f0 * (by - ay)), (ax + f1 * (bx - ax), ay + f1 * (by - ay))],
                              fill=colour, width=width)
        else:
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        caption = _box_caption(labels[i], class_names, None if scores is None else scores[i])
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        # Above the box when there is room, else just inside its top edge.
        ty = y1 - (bottom - top) - 2 if y1 - (bottom - top) - 2 >= 0 else y1 + width
        draw.rectangle([x1, ty, x1 + right - left + 2, ty + bottom - top + 2], fill=colour)
        draw.text((x1 + 1 - left, ty + 1 - top), caption, fill=(255, 255, 255), font=font)
    return out


def plot_detections(images, predictions: Sequence[dict], class_names: Sequence[str], *,
                    targets: Sequence[dict] | None = None, score_threshold: float = 0.5, title: str = "",
                    ncols: int = 4) -> plt.Figure:
    """Detections on a grid of images: predictions solid and captioned "name 0.93", ground truth thin and dashed.

    ``images`` is Tensor[B, 3, H, W] in [0, 1] (or a list of Tensor[3, H_i, W_i]);
    ``predictions`` the model's dicts (boxes, scores, labels), of which those scoring at
    least ``score_threshold`` are drawn; ``targets`` the data's dicts, optional.
    """
    if isinstance(images, torch.Tensor) and images.ndim != 4:
        raise ValueError(f"images must be a Tensor[B, 3, H, W] (or a list of [3, H, W]), "
                         f"got shape {list(images.shape)}")
    images = [_as_chw(im, f"images[{i}]") for i, im in enumerate(images)]
    if len(predictions) != len(images) or (targets is not None and len(targets) != len(images)):
        raise ValueError(f"got {len(images)} images, {len(predictions)} predictions and "
                         f"{'no' if targets is None else len(targets)} targets: pass one per image")
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        if targets is not None:
            for box, label in zip(_as_boxes(targets[i]["boxes"], f"targets[{i}]['boxes']").tolist(),
                                  torch.as_tensor(targets[i]["labels"]).reshape(-1).tolist()):
                ax.add_patch(plt.Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                           edgecolor=_class_colour(label), linewidth=0.9, linestyle="--"))
        pred = predictions[i]
        boxes = _as_boxes(pred["boxes"], f"predictions[{i}]['boxes']")
        scores = torch.as_tensor(pred["scores"]).reshape(-1).tolist()
        labels = torch.as_tensor(pred["labels"]).reshape(-1).tolist()
        shown = 0
        for box, score, label in zip(boxes.tolist(), scores, labels):
            if score < score_threshold:
                continue
            shown += 1
            colour = _class_colour(label)
            ax.add_patch(plt.Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                       edgecolor=colour, linewidth=1.6))
            ax.text(box[0], box[1], _box_caption(label, class_names, score), fontsize=6, color="white", va="bottom",
                    ha="left", bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0, "alpha": 0.85}, clip_on=True)
        ax.set_title(f"{shown} detections >= {score_threshold:g}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_anchors(image, anchors_per_level: Sequence[torch.Tensor], *, title: str = "") -> plt.Figure:
    """Anchors (default boxes) over an image: every anchor shape at two locations per level, and all centres as dots.

    ``anchors_per_level`` holds one Tensor[N_l, 4] (x1, y1, x2, y2) per feature level, N_l =
    (locations) x (anchors per location). Drawing all of them would be a solid smear, so each
    level shows the full set of its shapes at two locations (coarse levels to the right) and
    the grid of its centres, which makes the stride visible.
    """
    image = _as_chw(image, "image")
    _, height, width = image.shape
    levels = [_as_boxes(a, f"anchors_per_level[{i}]") for i, a in enumerate(anchors_per_level)]
    if not levels:
        raise ValueError("anchors_per_level is empty: pass one Tensor[N, 4] per feature level")
    fig, ax = plt.subplots(figsize=(6, 6 * height / max(width, 1) + 0.6))
    ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest", alpha=0.5)  # faded: the anchors are the subject
    lo, hi = np.array([0.0, 0.0]), np.array([float(width), float(height)])
    for level, anchors in enumerate(levels):
        if len(anchors) == 0:
            continue
        colour = _class_colour(level)
        centres = ((anchors[:, :2] + anchors[:, 2:]) / 2).numpy()  # (N, 2)
        locations = np.unique(centres.round(3), axis=0)  # (L, 2)
        per_location = len(anchors) // max(len(locations), 1)
        xs = np.unique(locations[:, 0])
        stride = float(np.diff(xs).min()) if len(xs) > 1 else float("nan")
        ax.scatter(locations[:, 0], locations[:, 1], s=5, color=colour, alpha=0.8, linewidths=0,
                   label=f"level {level}: {len(anchors)} anchors, {per_location} per location, stride {stride:g}")
        fx = (level + 1) / (len(levels) + 1)
        for fy in (0.3, 0.7):
            target = np.array([fx * width, fy * height])
            at = locations[np.argmin(((locations - target) ** 2).sum(1))]
            shapes = anchors[np.abs(centres.round(3) - at).max(1) < 1e-6].numpy()  # (A, 4)
            for x1, y1, x2, y2 in shapes:
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.0))
            ax.plot(*at, marker="+", color=colour, markersize=8)
            lo, hi = np.minimum(lo, shapes[:, :2].min(0)), np.maximum(hi, shapes[:, 2:].max(0))
    pad = 0.02 * max(width, height)
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(hi[1] + pad, lo[1] - pad)  # image coordinates: y down
    ax.add_patch(plt.Rectangle((0, 0), width, height, fill=False, edgecolor="black", linewidth=0.8, linestyle=":"))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.02), markerscale=3, frameon=False)
    ax.set_title(title, fontsize=9)
    return fig


def plot_pr_curves(precision, recall_thresholds, class_names: Sequence[str], *, title: str = "") -> plt.Figure:
    """Interpolated precision-recall curves, one per class, AP (the curve's mean) in the legend.

    ``precision`` is [R, K] at one IoU threshold, e.g. ``coco_evaluate(...)["precision"][0]``
    for IoU .50; a class with no ground truth (all -1) is left out.
    """
    precision = np.asarray(torch.as_tensor(precision).cpu(), dtype=np.float64)
    recall_thresholds = np.asarray(torch.as_tensor(recall_thresholds).cpu(), dtype=np.float64).reshape(-1)
    if precision.ndim != 2 or precision.shape != (len(recall_thresholds), len(class_names)):
        raise ValueError(f"precision must have shape [R, K] = [{len(recall_thresholds)}, {len(class_names)}] "
                         f"(recall points x classes), got {list(precision.shape)}")
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for k, name in enumerate(class_names):
        curve = precision[:, k]
        if (curve < 0).all():
            continue
        ax.plot(recall_thresholds, curve, color=_class_colour(k), linewidth=1.3,
                label=f"{name} (AP {curve.mean():.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title, fontsize=9)
    return fig
