"""Detection figures: boxes drawn on images, detections on a grid, anchors, precision-recall curves."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["draw_boxes", "plot_anchors", "plot_detections", "plot_pr_curves"]


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
            raise ValueError(
                f"image must be a uint8 array [H, W, 3] or a float Tensor[3, H, W], "
                f"got {pixels.dtype} {list(pixels.shape)}"
            )
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
                    draw.line(
                        [(ax + f0 * (bx - ax), ay + f0 * (by - ay)), (ax + f1 * (bx - ax), ay + f1 * (by - ay))],
                        fill=colour,
                        width=width,
                    )
        else:
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        caption = _box_caption(labels[i], class_names, None if scores is None else scores[i])
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        # Above the box when there is room, else just inside its top edge.
        ty = y1 - (bottom - top) - 2 if y1 - (bottom - top) - 2 >= 0 else y1 + width
        draw.rectangle([x1, ty, x1 + right - left + 2, ty + bottom - top + 2], fill=colour)
        draw.text((x1 + 1 - left, ty + 1 - top), caption, fill=(255, 255, 255), font=font)
    return out


def plot_detections(
    images,
    predictions: Sequence[dict],
    class_names: Sequence[str],
    *,
    targets: Sequence[dict] | None = None,
    score_threshold: float = 0.5,
    title: str = "",
    ncols: int = 4,
) -> plt.Figure:
    """Detections on a grid of images: predictions solid and captioned "name 0.93", ground truth thin and dashed.

    ``images`` is Tensor[B, 3, H, W] in [0, 1] (or a list of Tensor[3, H_i, W_i]);
    ``predictions`` the model's dicts (boxes, scores, labels), of which those scoring at
    least ``score_threshold`` are drawn; ``targets`` the data's dicts, optional.
    """
    if isinstance(images, torch.Tensor) and images.ndim != 4:
        raise ValueError(
            f"images must be a Tensor[B, 3, H, W] (or a list of [3, H, W]), got shape {list(images.shape)}"
        )
    images = [_as_chw(im, f"images[{i}]") for i, im in enumerate(images)]
    if len(predictions) != len(images) or (targets is not None and len(targets) != len(images)):
        raise ValueError(
            f"got {len(images)} images, {len(predictions)} predictions and "
            f"{'no' if targets is None else len(targets)} targets: pass one per image"
        )
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        if targets is not None:
            for box, label in zip(
                _as_boxes(targets[i]["boxes"], f"targets[{i}]['boxes']").tolist(),
                torch.as_tensor(targets[i]["labels"]).reshape(-1).tolist(),
            ):
                ax.add_patch(
                    plt.Rectangle(
                        (box[0], box[1]),
                        box[2] - box[0],
                        box[3] - box[1],
                        fill=False,
                        edgecolor=_class_colour(label),
                        linewidth=0.9,
                        linestyle="--",
                    )
                )
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
            ax.add_patch(
                plt.Rectangle(
                    (box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False, edgecolor=colour, linewidth=1.6
                )
            )
            ax.text(
                box[0],
                box[1],
                _box_caption(label, class_names, score),
                fontsize=6,
                color="white",
                va="bottom",
                ha="left",
                bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0, "alpha": 0.85},
                clip_on=True,
            )
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
        ax.scatter(
            locations[:, 0],
            locations[:, 1],
            s=5,
            color=colour,
            alpha=0.8,
            linewidths=0,
            label=f"level {level}: {len(anchors)} anchors, {per_location} per location, stride {stride:g}",
        )
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
        raise ValueError(
            f"precision must have shape [R, K] = [{len(recall_thresholds)}, {len(class_names)}] "
            f"(recall points x classes), got {list(precision.shape)}"
        )
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for k, name in enumerate(class_names):
        curve = precision[:, k]
        if (curve < 0).all():
            continue
        ax.plot(
            recall_thresholds, curve, color=_class_colour(k), linewidth=1.3, label=f"{name} (AP {curve.mean():.3f})"
        )
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title, fontsize=9)
    return fig
