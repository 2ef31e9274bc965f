"""The shapes world: procedural scenes for detection, segmentation, panoptic, translation and CLIP.

A scene is a square RGB picture of a few flat-coloured things (``THING_CLASSES``: circle,
square, triangle, star, cross) lying on a textured background of two or three stuff
regions (``STUFF_CLASSES``: sky, grass, sand, water) split by wavy boundaries. It comes
with everything a vision task needs, all exact because the picture was drawn from them:
boxes, labels and colour names of the things, their visible-part masks, a semantic map,
a panoptic map with its segments, and a one-sentence caption that is true to the scene.

Why a procedural world. Detection and segmentation need thousands of labelled images;
shipping them is heavy and downloading breaks "runs offline, first try". Drawing them is
cheap (about 2 ms of one CPU core for a 128 x 128 scene), exact, and every difficulty is a knob: object count
and size, how much occlusion is tolerated (``min_visible``), distractor marks
(``clutter``). The defaults keep the world learnable on a laptop (saturated things on
muted textures, no object hidden below 60%) while keeping what makes detection honest:
overlap, occlusion, rotation, scale from 12 to 56 pixels, a background that is not flat.

How a scene is drawn (``render_scene``), from its own ``np.random.default_rng((seed,
index))`` so that scene (seed, index) never changes and never touches a global RNG:

1. Background: 2 (30% of the time 3) regions split by sine-wave boundaries, each filled
   with its stuff class's texture (sky: soft bands, grass: wavy blades, sand: speckle,
   water: ripples) and pixel noise.
2. Clutter: thin scribbles and small blobs in stuff-like muted colours; they are part of
   the background (semantic map: stuff), never things.
3. Things, painted in order (a later one occludes an earlier one). Each is rasterised on
   its own window with vectorised tests: half-planes for the square and triangle, a union
   of two rectangles for the cross, a folded polar test for the star. A position that
   would leave any earlier thing less than ``min_visible`` of its area visible is redrawn
   (up to ``PLACEMENT_TRIES`` times), else the thing is dropped: labels stay clean.

Label ids. Semantic map: stuff classes 0..S-1 (``STUFF_CLASSES``), thing classes
S..S+K-1 (``THING_SEMANTIC_OFFSET + label``); ``SEMANTIC_CLASSES`` names them in order.
Panoptic map: segment ids, thing i (in ``boxes``/``masks`` order) is ``i + 1``, the stuff
region r is ``N + 1 + r``; every pixel belongs to a segment (no void). Boxes are
(x1, y1, x2, y2) in pixel edges: a thing covering columns 3..7 has x1 = 3, x2 = 8.

Splits of the ``shapes`` data module are held out by seed: train scenes are
(scene_seed, i), val (scene_seed + 1, i), test (scene_seed + 2, i). ``export_coco`` writes
a split in COCO's instances, captions and panoptic formats, for tools outside dlcamp.

Shape letters: N things, H, W image height and width, S stuff classes, K thing classes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from dlcamp.data import register_dataset
from dlcamp.data.detection import DetectionData, load_image
from dlcamp.errors import UsageError

THING_CLASSES = ["circle", "square", "triangle", "star", "cross"]
STUFF_CLASSES = ["sky", "grass", "sand", "water"]
SEMANTIC_CLASSES = STUFF_CLASSES + THING_CLASSES
THING_SEMANTIC_OFFSET = len(STUFF_CLASSES)  # semantic id of thing label k: S + k
CATEGORY_IDS = [k + 1 for k in range(len(THING_CLASSES))]  # COCO category ids of the things: 1..K
STUFF_CATEGORY_IDS = [len(THING_CLASSES) + 1 + s for s in range(len(STUFF_CLASSES))]  # panoptic: K+1..K+S
SPLIT_SEED_OFFSET = {"train": 0, "val": 1, "test": 2}  # held out by seed: never the same scene twice
PLACEMENT_TRIES = 12

# Saturated, named colours: the caption's colour words are these names.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35), "green": (40, 200, 60), "blue": (45, 85, 240), "yellow": (245, 225, 40),
    "magenta": (225, 45, 225), "cyan": (40, 225, 235), "orange": (250, 145, 25), "white": (245, 245, 245),
}
COLOR_JITTER = 14  # +- per channel: a red is never quite the same red twice
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars", "cross": "crosses"}
NUMBER_WORDS = ["no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]

# Stuff textures: muted, darker base colours (so things stand out) and a luminance pattern.
STUFF_BASE = np.array([(95, 120, 150), (60, 100, 55), (140, 125, 90), (40, 65, 100)], dtype=np.float32)
STUFF_CONTRAST = np.array([0.10, 0.16, 0.12, 0.18], dtype=np.float32)  # amplitude of the pattern
PIXEL_NOISE = 4.0  # std of the grain added to every background pixel (0..255 scale)
STAR_INNER = 0.45  # inner/outer radius of the star: fatter than a pentagram (0.38), easier to see


@dataclass(frozen=True)
class ShapesConfig:
    """The knobs of the world; defaults are the learnable world the detection recipes train on."""

    image_size: int = 128  # scenes are image_size x image_size RGB
    min_objects: int = 1  # things per scene, drawn uniformly in [min_objects, max_objects]
    max_objects: int = 6
    min_size: int = 12  # a thing's extent before rotation, uniform in [min_size, max_size] pixels
    max_size: int = 56
    min_visible: float = 0.6  # no thing is left with less than this fraction of its area visible
    clutter: float = 0.3  # distractor marks (0 = none, 1 = many)

    def __post_init__(self) -> None:
        for knob in ("image_size", "min_objects", "max_objects", "min_size", "max_size"):
            value = getattr(self, knob)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UsageError(f"shapes: {knob} must be a non-negative integer, got {value!r}")
        for knob in ("min_visible", "clutter"):
            value = getattr(self, knob)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise UsageError(f"shapes: {knob} must be a number in [0, 1], got {value!r}")
        if self.image_size < 8:
            raise UsageError(f"shapes: image_size must be >= 8, got {self.image_size}")
        if self.min_objects > self.max_objects:
            raise UsageError(f"shapes: min_objects ({self.min_objects}) must be <= max_objects ({self.max_objects})")
        if self.min_size < 2:
            raise UsageError(f"shapes: min_size must be >= 2 pixels, got {self.min_size}")
        if self.min_size > self.max_size:
            raise UsageError(f"shapes: min_size ({self.min_size}) must be <= max_size ({self.max_size})")
        if self.max_size > self.image_size:
            raise UsageError(f"shapes: max_size ({self.max_size}) must be <= image_size ({self.image_size})")


@dataclass
class Scene:
    """One rendered scene; arrays are numpy, boxes (x1, y1, x2, y2) in pixel edges."""

    image: np.ndarray  # uint8 [H, W, 3]
    boxes: np.ndarray  # float32 [N, 4], tight boxes of the visible masks
    labels: np.ndarray  # int64 [N], index into THING_CLASSES
    colors: list[str]  # N palette names
    masks: np.ndarray  # bool [N, H, W], visible part of each thing
    semantic: np.ndarray  # int64 [H, W]: stuff 0..S-1, things S..S+K-1
    panoptic: np.ndarray  # int64 [H, W]: segment ids (thing i -> i + 1, stuff region r -> N + 1 + r)
    segments: list[dict[str, Any]] = field(default_factory=list)  # {id, category, isthing, area, bbox [x, y, w, h]}
    caption: str = ""
    areas: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # int64 [N], area before occlusion


# -- background -----------------------------------------------------------------------------

def _sin_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sin(a[:, None] + b[None, :]) from 1-D angles: two outer products instead of an [H, W] sine."""
    return np.outer(np.sin(a), np.cos(b)) + np.outer(np.cos(a), np.sin(b))


def _stuff_pattern(stuff: int, coords: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A luminance pattern in about [-1, 1], float32 [H, W], with a random phase and frequency.

    Every pattern is a sine of (row term + column term), computed separably (``_sin_sum``).
    """
    phase, phase2 = rng.uniform(0, 2 * np.pi, 2)
    zero = np.zeros_like(coords)
    if stuff == 0:  # sky: soft slanted bands
        f = rng.uniform(0.08, 0.16)
        return 0.7 * _sin_sum(f * coords + phase, zero) + 0.3 * _sin_sum(f * coords + phase2, 0.5 * f * coords)
    if stuff == 1:  # grass: vertical blades, bent by a slow wave
        return _sin_sum(1.5 * np.sin(0.15 * coords + phase2), rng.uniform(0.9, 1.3) * coords + phase)
    if stuff == 2:  # sand: a slow diagonal ripple speckled with dark grains
        f = rng.uniform(0.1, 0.2)
        ripple = 0.4 * _sin_sum(-f * coords, f * coords + phase)
        return ripple - 1.6 * (rng.random(ripple.shape, dtype=np.float32) < 0.05)
    # water: horizontal ripples bent by a wave
    bend = 2.0 * np.sin(rng.uniform(0.06, 0.12) * coords + phase2)
    return _sin_sum(rng.uniform(0.35, 0.6) * coords + phase, bend)


def _background(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Textured background: image float32 [H, W, 3], region map int [H, W], stuff class per region."""
    coords = np.arange(size, dtype=np.float32)
    n_regions = 3 if rng.random() < 0.3 else 2
    stuff_of_region = rng.choice(len(STUFF_CLASSES), n_regions, replace=False)
    vertical = rng.random() < 0.25  # mostly horizon-like boundaries
    # boundary k sits around its own band of the image, so every region keeps some area
    centres = [0.5] if n_regions == 2 else [0.33, 0.67]
    region = np.zeros((size, size), dtype=np.int64)
    for c in centres:
        base = size * (c + rng.uniform(-0.12, 0.12))
        amp, freq, phase = size * rng.uniform(0.02, 0.08), rng.uniform(1, 3) * 2 * np.pi / size, rng.uniform(0, 2 * np.pi)
        boundary = base + amp * np.sin(freq * coords + phase)  # (size,): along the other axis
        region += coords[None, :] > boundary[:, None] if vertical else coords[:, None] > boundary[None, :]
    patterns = [STUFF_CONTRAST[stuff] * _stuff_pattern(stuff, coords, rng) for stuff in stuff_of_region]
    lum = patterns[0].astype(np.float32)  # (H, W)
    for r in range(1, n_regions):
        np.copyto(lum, patterns[r], where=region == r, casting="unsafe")
    image = np.take(STUFF_BASE[stuff_of_region], region, axis=0)  # (H, W, 3)
    image *= 1 + lum[..., None]
    image += PIXEL_NOISE * rng.standard_normal((size, size, 1), dtype=np.float32)
    return image, region, stuff_of_region


def _paint_clutter(image: np.ndarray, clutter: float, rng: np.random.Generator) -> None:
    """Distractor scribbles and blobs in stuff-like muted colours, painted into the background."""
    size = image.shape[0]
    for _ in range(rng.poisson(12 * clutter)):
        colour = STUFF_BASE[rng.integers(len(STUFF_CLASSES))] * rng.uniform(0.55, 1.5)
        if rng.random() < 0.7:  # a scribble: a polyline of 2-4 segments, 1 or 2 pixels thick
            start = rng.uniform(0, size, 2)
            points = start + np.cumsum(rng.normal(0, size * 0.12, (rng.integers(2, 5), 2)), axis=0)
            points = np.vstack([start, points])  # (P, 2) as (y, x)
            steps = np.diff(points, axis=0)  # (P-1, 2)
            t = np.linspace(0, 1, int(np.abs(steps).max()) + 2)  # (T,): dense enough for the longest segment
            line = (points[:-1, None, :] + t[None, :, None] * steps[:, None, :]).reshape(-1, 2).astype(np.int64)
            y, x = line[:, 0], line[:, 1]
            if rng.random() < 0.5:
                y, x = np.concatenate([y, y + 1]), np.concatenate([x, x])
            keep = (y >= 0) & (y < size) & (x >= 0) & (x < size)
            image[y[keep], x[keep]] = colour
        else:  # a small blob: an ellipse of radii 1.5-4 pixels
            ry, rx = rng.uniform(1.5, 4, 2)
            cy, cx = rng.uniform(0, size, 2)
            y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, size)
            x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, size)
            yy, xx = np.ogrid[y0:y1, x0:x1]
            inside = ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1
            image[y0:y1, x0:x1][inside] = colour


# -- things ---------------------------------------------------------------------------------

def _thing_mask(kind: int, size: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """A thing rasterised on its own window, cropped tight: mask bool [h, w] and shading float32 [h, w].

    Pixel centres are tested against the shape in its rotated frame (xr, yr). The window
    has the parity of ``size`` so that an unrotated square of size s covers exactly s x s.
    """
    m = int(np.ceil(size * 1.5)) + 2
    m += (m - size) % 2
    offsets = np.arange(m, dtype=np.float32) - (m - 1) / 2
    y, x = offsets[:, None], offsets[None, :]  # (m, 1), (1, m): broadcast to (m, m)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    xr, yr = x * cos + y * sin, y * cos - x * sin  # (m, m) each: the shape's own frame
    half = size / 2
    if kind == 0:  # circle
        mask = xr * xr + yr * yr <= half * half
    elif kind == 1:  # square: two slabs
        mask = (np.abs(xr) <= half) & (np.abs(yr) <= half)
    elif kind == 2:  # equilateral triangle of side `size`, apex up: three half-planes at the inradius
        inradius = size / (2 * np.sqrt(3))
        mask = np.ones((m, m), dtype=bool)
        for beta in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            mask &= xr * np.float32(np.cos(beta)) + yr * np.float32(np.sin(beta)) <= inradius
    elif kind == 3:  # five-pointed star: fold the polar angle onto the half-sector [0, pi/5]
        rho = np.hypot(xr, yr)
        t = np.mod(np.arctan2(yr, xr) + np.pi / 2, 2 * np.pi / 5)  # 0 at an outer tip (pointing up)
        u = np.minimum(t, 2 * np.pi / 5 - t)
        px, py = rho * np.cos(u), rho * np.sin(u)
        # inside iff on the origin's side of the edge from the tip (R, 0) to the inner corner
        dx, dy = STAR_INNER * half * np.cos(np.pi / 5) - half, STAR_INNER * half * np.sin(np.pi / 5)
        mask = dx * py - dy * (px - half) >= 0
    else:  # cross: the union of two rectangles, arms a third of the extent wide
        arm = size / 6
        ax, ay = np.abs(xr), np.abs(yr)
        mask = ((ax <= half) & (ay <= arm)) | ((ax <= arm) & (ay <= half))
    if not mask.any():  # a degenerate tiny shape keeps its centre pixel
        mask[m // 2, m // 2] = True
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = np.s_[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    shading = 1 + 0.08 * (xr[crop] - yr[crop]) / max(half, 1)  # a slight light from the top right
    return mask[crop], shading


def _count_phrase(count: int, colour: str, kind: str) -> str:
    if count == 1:
        return f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {kind}"
    number = NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else str(count)
    return f"{number} {colour} {PLURALS[kind]}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def caption_for(labels: np.ndarray, colors: list[str], stuff_names: list[str]) -> str:
    """One sentence naming every thing by count, colour and class, and the stuff it lies on."""
    groups: dict[tuple[int, int], int] = {}
    order = list(PALETTE)
    for label, colour in zip(labels.tolist(), colors):
        key = (label, order.index(colour))
        groups[key] = groups.get(key, 0) + 1
    phrases = [_count_phrase(n, order[c], THING_CLASSES[k]) for (k, c), n in sorted(groups.items())]
    ground = _join(stuff_names)
    return f"{_join(phrases)} on {ground}." if phrases else f"an empty scene of {ground}."


def _xywh(mask: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] + 1 - cols[0]), int(rows[-1] + 1 - rows[0])]


def render_scene(seed: int, index: int, config: ShapesConfig = ShapesConfig()) -> Scene:
    """Scene ``index`` of the world ``seed``: the same arrays every time, from its own generator."""
    if seed < 0 or index < 0:
        raise UsageError(f"shapes: scene seed and index must be >= 0, got ({seed}, {index})")
    rng = np.random.default_rng((seed, index))
    size = config.image_size
    image, region, stuff_of_region = _background(size, rng)  # float32 (H, W, 3) until the end
    _paint_clutter(image, config.clutter, rng)

    owner = np.full((size, size), -1, dtype=np.int64)  # which thing each pixel shows (-1: stuff)
    labels: list[int] = []
    colors: list[str] = []
    areas: list[int] = []  # full area of each placed thing
    visible: list[int] = []  # its area still visible
    windows: list[tuple[slice, slice]] = []
    names = list(PALETTE)
    for _ in range(rng.integers(config.min_objects, config.max_objects + 1)):
        kind = int(rng.integers(len(THING_CLASSES)))
        extent = int(rng.integers(config.min_size, config.max_size + 1))
        angle = 0.0 if kind == 0 else float(rng.uniform(0, 2 * np.pi))
        colour = names[rng.integers(len(names))]
        rgb = np.clip(np.array(PALETTE[colour]) + rng.integers(-COLOR_JITTER, COLOR_JITTER + 1, 3), 0, 255)
        mask, shading = _thing_mask(kind, extent, angle)
        if max(mask.shape) > size:  # a rotated thing wider than the image: keep its middle
            top, left = max((mask.shape[0] - size) // 2, 0), max((mask.shape[1] - size) // 2, 0)
            mask, shading = mask[top: top + size, left: left + size], shading[top: top + size, left: left + size]
        h, w = mask.shape
        area = int(mask.sum())
        if area == 0:
            continue
        for _try in range(PLACEMENT_TRIES):
            y0, x0 = int(rng.integers(size - h + 1)), int(rng.integers(size - w + 1))
            window = np.s_[y0: y0 + h, x0: x0 + w]
            patch = owner[window]
            hidden = np.bincount(patch[mask] + 1, minlength=len(labels) + 1)[1:]  # pixels it would cover
            left_visible = np.array(visible, dtype=np.int64) - hidden
            needed = np.maximum(1, np.ceil(config.min_visible * np.array(areas, dtype=np.float64)))
            if np.all(left_visible >= needed):
                break
        else:
            continue  # nowhere to put it without hiding an earlier thing: drop it
        patch[mask] = len(labels)
        image[window][mask] = rgb * shading[mask][:, None]
        visible = list(left_visible) + [area]
        areas.append(area)
        labels.append(kind)
        colors.append(colour)
        windows.append(window)

    n = len(labels)
    label_arr = np.array(labels, dtype=np.int64)
    masks = owner[None] == np.arange(n)[:, None, None]  # (N, H, W)
    boxes = np.zeros((n, 4), dtype=np.float32)
    segments: list[dict[str, Any]] = []
    for i, window in enumerate(windows):  # the visible part lies inside the thing's window
        x, y, w, h = _xywh(masks[i][window])
        x, y = x + window[1].start, y + window[0].start
        boxes[i] = (x, y, x + w, y + h)
        segments.append({"id": i + 1, "category": THING_CLASSES[labels[i]], "isthing": True,
                         "area": int(visible[i]), "bbox": [x, y, w, h]})
    things = owner >= 0
    semantic = stuff_of_region[region]  # (H, W) stuff class ids, then the things on top
    semantic[things] = THING_SEMANTIC_OFFSET + label_arr[owner[things]]
    panoptic = np.where(things, owner + 1, n + 1 + region)
    stuff_names = []
    for r, stuff in enumerate(stuff_of_region):
        present = (region == r) & ~things
        if present.any():
            stuff_names.append(STUFF_CLASSES[stuff])
            segments.append({"id": n + 1 + r, "category": STUFF_CLASSES[stuff], "isthing": False,
                             "area": int(present.sum()), "bbox": _xywh(present)})
    return Scene(image=np.clip(image, 0, 255, out=image).astype(np.uint8), boxes=boxes, labels=label_arr, colors=colors,
                 masks=masks, semantic=semantic.astype(np.int64), panoptic=panoptic.astype(np.int64),
                 segments=segments, caption=caption_for(label_arr, colors, stuff_names),
                 areas=np.array(areas, dtype=np.int64))


# -- the data module ------------------------------------------------------------------------

class ShapesScenes(Dataset):
    """``n`` scenes of the world ``seed``, rendered on the fly: (image float [3, H, W], target dict).

    The target follows ``dlcamp.data.detection``; with ``masks=True`` it also holds
    ``masks`` bool [N, H, W], ``semantic`` and ``panoptic`` long [H, W].
    """

    def __init__(self, seed: int, n: int, config: ShapesConfig, masks: bool = False) -> None:
        self.seed, self.n, self.config, self.masks = seed, n, config, masks

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        if not 0 <= index < self.n:
            raise IndexError(f"scene {index} out of range 0..{self.n - 1}")
        scene = render_scene(self.seed, index, self.config)
        image = torch.from_numpy(scene.image).permute(2, 0, 1).float().div_(255)  # (3, H, W)
        target: dict[str, Any] = {
            "boxes": torch.from_numpy(scene.boxes), "labels": torch.from_numpy(scene.labels),
            "iscrowd": torch.zeros(len(scene.labels), dtype=torch.bool), "image_id": int(index)}
        if self.masks:
            target["masks"] = torch.from_numpy(scene.masks)
            target["semantic"] = torch.from_numpy(scene.semantic)
            target["panoptic"] = torch.from_numpy(scene.panoptic)
        return image, target


def _check_count(knob: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"shapes: {knob} must be an integer >= {minimum}, got {value!r}")
    return value


class ShapesData(DetectionData):
    """The shapes world as a detection data module; splits held out by seed (see the module docstring)."""

    def __init__(self, *, config: ShapesConfig = ShapesConfig(), train_size: int = 4000, val_size: int = 250,
                 test_size: int = 500, scene_seed: int = 0, masks: bool = False, batch_size: int | str = 32,
                 eval_batch_size: int = 64, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        self.config = config
        self.sizes = {"train": _check_count("train_size", train_size, 1), "val": _check_count("val_size", val_size, 1),
                      "test": _check_count("test_size", test_size, 1)}
        self.scene_seed = _check_count("scene_seed", scene_seed, 0)
        self.masks = bool(masks)
        self.num_classes = len(THING_CLASSES)
        self.class_names = list(THING_CLASSES)
        self.category_ids = list(CATEGORY_IDS)
        self.input_shape = (3, config.image_size, config.image_size)

    def split_seed(self, split: str) -> int:
        """The world seed of a split: scene_seed for train, +1 for val, +2 for test."""
        if split not in SPLIT_SEED_OFFSET:
            raise UsageError(f"unknown split {split!r}; choose train, val or test")
        return self.scene_seed + SPLIT_SEED_OFFSET[split]

    def build_splits(self) -> dict[str, Dataset]:
        return {split: ShapesScenes(self.split_seed(split), n, self.config, self.masks) for split, n in self.sizes.items()}

    def scene(self, split: str, index: int) -> Scene:
        """Scene ``index`` of ``split`` with all its annotations (for figures)."""
        if not 0 <= index < self.sizes.get(split, 0):
            raise UsageError(f"scene {index} is not in the {split} split (0..{self.sizes.get(split, 0) - 1})")
        return render_scene(self.split_seed(split), index, self.config)

    def load_input(self, path: Path) -> torch.Tensor:
        """An image file (PNG, JPEG, ...) as float [3, H, W] in [0, 1], at its own size."""
        return load_image(path)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "stuff_classes": list(STUFF_CLASSES), "semantic_classes": list(SEMANTIC_CLASSES)}


# -- export to COCO ------------------------------------------------------------------------

def _coco_categories() -> list[dict[str, Any]]:
    return [{"id": cid, "name": name, "supercategory": "shape"} for cid, name in zip(CATEGORY_IDS, THING_CLASSES)]


def _encode_rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def export_coco(out_dir: str | Path, split: str, n: int, config: ShapesConfig = ShapesConfig(),
                scene_seed: int = 0) -> Path:
    """Write ``n`` scenes of ``split`` in COCO formats under ``out_dir/split``; returns that folder.

    Layout: ``images/000000.png`` (RGB), ``annotations.json`` (instances: boxes [x, y, w, h],
    visible-mask area, RLE segmentation, category ids 1..K), ``captions.json``,
    ``semantic/000000.png`` (uint8 semantic ids, see the module docstring),
    ``panoptic/000000.png`` (segment id = R + 256 G + 256^2 B) with ``panoptic.json``
    (thing categories 1..K as in the instances, stuff K+1..K+S). Image ids are the scene
    indices, as the data module's ``image_id``. The split is written into a temporary
    folder beside the target and renamed into place, so a killed export leaves no half
    split; a non-empty existing split folder is refused.
    """
    if split not in SPLIT_SEED_OFFSET:
        raise UsageError(f"unknown split {split!r}; choose train, val or test")
    n = _check_count("n", n, 1)
    scene_seed = _check_count("scene_seed", scene_seed, 0)
    out_dir = Path(out_dir)
    target = out_dir / split
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} already exists and is not empty; choose another -o or remove it")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{split}.{os.getpid()}.tmp"  # beside the target: the rename stays on one file system
    shutil.rmtree(tmp, ignore_errors=True)  # left by an export killed in this process id's past life
    tmp.mkdir()
    try:
        _write_split(tmp, split, n, config, scene_seed + SPLIT_SEED_OFFSET[split])
        if target.exists():
            target.rmdir()  # empty (checked above)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _write_split(folder: Path, split: str, n: int, config: ShapesConfig, seed: int) -> None:
    for sub in ("images", "semantic", "panoptic"):
        (folder / sub).mkdir()
    info = {"description": f"dlcamp shapes world, {split} split (scene seed {seed})", "version": "1.0",
            "config": vars(config)}
    stuff_categories = [{"id": cid, "name": name, "supercategory": "stuff", "isthing": 0}
                        for cid, name in zip(STUFF_CATEGORY_IDS, STUFF_CLASSES)]
    category_of = {name: cid for name, cid in zip(THING_CLASSES + STUFF_CLASSES, CATEGORY_IDS + STUFF_CATEGORY_IDS)}
    images, instances, captions, panoptic = [], [], [], []
    for index in range(n):
        scene = render_scene(seed, index, config)
        name = f"{index:06d}.png"
        height, width = scene.image.shape[:2]
        images.append({"id": index, "file_name": name, "width": width, "height": height})
        Image.fromarray(scene.image).save(folder / "images" / name)
        Image.fromarray(scene.semantic.astype(np.uint8)).save(folder / "semantic" / name)
        ids = scene.panoptic
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)  # (H, W, 3)
        Image.fromarray(rgb).save(folder / "panoptic" / name)
        for box, label, mask in zip(scene.boxes.tolist(), scene.labels.tolist(), scene.masks):
            x1, y1, x2, y2 = box
            instances.append({"id": len(instances) + 1, "image_id": index, "category_id": CATEGORY_IDS[label],
                              "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(mask.sum()), "iscrowd": 0,
                              "segmentation": _encode_rle(mask)})
        captions.append({"id": index + 1, "image_id": index, "caption": scene.caption})
        panoptic.append({"image_id": index, "file_name": name, "segments_info": [
            {"id": seg["id"], "category_id": category_of[seg["category"]], "iscrowd": 0, "bbox": seg["bbox"],
             "area": seg["area"]} for seg in scene.segments]})
    head = {"info": info, "licenses": [], "images": images}
    _dump(folder / "annotations.json", {**head, "annotations": instances, "categories": _coco_categories()})
    _dump(folder / "captions.json", {**head, "annotations": captions})
    panoptic_categories = [{**c, "isthing": 1} for c in _coco_categories()] + stuff_categories
    _dump(folder / "panoptic.json", {**head, "annotations": panoptic, "categories": panoptic_categories})


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj) + "\n")


@register_dataset("shapes")
def shapes(*, image_size: int = 128, min_objects: int = 1, max_objects: int = 6, min_size: int = 12,
           max_size: int = 56, min_visible: float = 0.6, clutter: float = 0.3, train_size: int = 4000,
           val_size: int = 250, test_size: int = 500, scene_seed: int = 0, masks: bool = False,
           batch_size: int | str = 32, eval_batch_size: int = 64, num_workers: int = 0, seed: int = 0) -> ShapesData:
    """Procedural shapes on textured stuff: 5 thing classes, boxes, masks, semantic, panoptic, captions."""
    config = ShapesConfig(image_size=image_size, min_objects=min_objects, max_objects=max_objects, min_size=min_size,
                          max_size=max_size, min_visible=min_visible, clutter=clutter)
    return ShapesData(config=config, train_size=train_size, val_size=val_size, test_size=test_size,
                      scene_seed=scene_seed, masks=masks, batch_size=batch_size, eval_batch_size=eval_batch_size,
                      num_workers=num_workers, seed=seed)
