"""The shapes world: procedural scenes for detection, segmentation, panoptic, translation and CLIP.

A scene is a square RGB picture of a few flat-coloured things (``THING_CLASSES``: circle,
square, triangle, star, cross) lying on a textured background of two or three stuff
regions (``STUFF_CLASSES``: sky, grass, sand, water) split by wavy boundaries. It comes
with everything a vision task needs, all exact because the picture was drawn from them:
boxes, labels and colour names of the things, their visible-part masks, a semantic map,
a panoptic map with its segments, and a one-sentence caption that is true to the scene.

How a scene is drawn (``render_scene``), from its own ``np.random.default_rng((seed,
index))`` so that scene (seed, index) never changes and never touches a global RNG:

1. Background: textured stuff regions (``draw.draw_background``).
2. Clutter: thin scribbles and small blobs in stuff-like muted colours; they are part of
   the background (semantic map: stuff), never things.
3. Things, painted in order (a later one occludes an earlier one), each rasterised on its
   own window (``draw.thing_mask``). A position that would leave any earlier thing less
   than ``min_visible`` of its area visible is redrawn (up to ``PLACEMENT_TRIES`` times),
   else the thing is dropped: labels stay clean.

Label ids. Semantic map: stuff classes 0..S-1 (``STUFF_CLASSES``), thing classes
S..S+K-1 (``THING_SEMANTIC_OFFSET + label``); ``SEMANTIC_CLASSES`` names them in order.
Panoptic map: segment ids, thing i (in ``boxes``/``masks`` order) is ``i + 1``, the stuff
region r is ``N + 1 + r``; every pixel belongs to a segment (no void). Boxes are
(x1, y1, x2, y2) in pixel edges: a thing covering columns 3..7 has x1 = 3, x2 = 8.

Splits are held out by seed: train scenes are (scene_seed, i), val (scene_seed + 1, i),
test (scene_seed + 2, i) (``SPLIT_SEED_OFFSET``).

Shape letters: N things, H, W image height and width, S stuff classes, K thing classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlcamp.data.shapes.draw import draw_background, paint_clutter, thing_mask
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
    "red": (225, 35, 35),
    "green": (40, 200, 60),
    "blue": (45, 85, 240),
    "yellow": (245, 225, 40),
    "magenta": (225, 45, 225),
    "cyan": (40, 225, 235),
    "orange": (250, 145, 25),
    "white": (245, 245, 245),
}
COLOR_JITTER = 14  # +- per channel: a red is never quite the same red twice
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars", "cross": "crosses"}
NUMBER_WORDS = ["no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]


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


def check_count(knob: str, value: Any, minimum: int) -> int:
    """``value`` if it is an integer >= ``minimum`` (not a bool), else a UsageError naming ``knob``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"shapes: {knob} must be an integer >= {minimum}, got {value!r}")
    return value


# -- captions -------------------------------------------------------------------------------


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


# -- the scene ------------------------------------------------------------------------------


def _xywh(mask: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] + 1 - cols[0]), int(rows[-1] + 1 - rows[0])]


def render_scene(seed: int, index: int, config: ShapesConfig = ShapesConfig()) -> Scene:
    """Scene ``index`` of the world ``seed``: the same arrays every time, from its own generator."""
    if seed < 0 or index < 0:
        raise UsageError(f"shapes: scene seed and index must be >= 0, got ({seed}, {index})")
    rng = np.random.default_rng((seed, index))
    size = config.image_size
    image, region, stuff_of_region = draw_background(size, rng)  # float32 (H, W, 3) until the end
    paint_clutter(image, config.clutter, rng)

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
        mask, shading = thing_mask(kind, extent, angle)
        if max(mask.shape) > size:  # a rotated thing wider than the image: keep its middle
            top, left = max((mask.shape[0] - size) // 2, 0), max((mask.shape[1] - size) // 2, 0)
            mask, shading = mask[top : top + size, left : left + size], shading[top : top + size, left : left + size]
        h, w = mask.shape
        area = int(mask.sum())
        if area == 0:
            continue
        for _try in range(PLACEMENT_TRIES):
            y0, x0 = int(rng.integers(size - h + 1)), int(rng.integers(size - w + 1))
            window = np.s_[y0 : y0 + h, x0 : x0 + w]
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
        segments.append(
            {
                "id": i + 1,
                "category": THING_CLASSES[labels[i]],
                "isthing": True,
                "area": int(visible[i]),
                "bbox": [x, y, w, h],
            }
        )
    things = owner >= 0
    semantic = stuff_of_region[region]  # (H, W) stuff class ids, then the things on top
    semantic[things] = THING_SEMANTIC_OFFSET + label_arr[owner[things]]
    panoptic = np.where(things, owner + 1, n + 1 + region)
    stuff_names = []
    for r, stuff in enumerate(stuff_of_region):
        present = (region == r) & ~things
        if present.any():
            stuff_names.append(STUFF_CLASSES[stuff])
            segments.append(
                {
                    "id": n + 1 + r,
                    "category": STUFF_CLASSES[stuff],
                    "isthing": False,
                    "area": int(present.sum()),
                    "bbox": _xywh(present),
                }
            )
    return Scene(
        image=np.clip(image, 0, 255, out=image).astype(np.uint8),
        boxes=boxes,
        labels=label_arr,
        colors=colors,
        masks=masks,
        semantic=semantic.astype(np.int64),
        panoptic=panoptic.astype(np.int64),
        segments=segments,
        caption=caption_for(label_arr, colors, stuff_names),
        areas=np.array(areas, dtype=np.int64),
    )


__all__ = [
    "CATEGORY_IDS",
    "COLOR_JITTER",
    "NUMBER_WORDS",
    "PALETTE",
    "PLACEMENT_TRIES",
    "PLURALS",
    "SEMANTIC_CLASSES",
    "SPLIT_SEED_OFFSET",
    "STUFF_CATEGORY_IDS",
    "STUFF_CLASSES",
    "THING_CLASSES",
    "THING_SEMANTIC_OFFSET",
    "Scene",
    "ShapesConfig",
    "caption_for",
    "check_count",
    "render_scene",
]
