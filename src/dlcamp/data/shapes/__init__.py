"""The shapes world: procedural scenes for detection, segmentation, panoptic, translation and CLIP.

A scene is a square RGB picture of a few flat-coloured things (circle, square, triangle,
star, cross) on a textured background of two or three stuff regions (sky, grass, sand,
water), with everything a vision task needs, all exact because the picture was drawn
from them: boxes, labels and colours of the things, their visible-part masks, a semantic
map, a panoptic map with its segments, and a one-sentence caption true to the scene.

Why a procedural world. Detection and segmentation need thousands of labelled images;
shipping them is heavy and downloading breaks "runs offline, first try". Drawing them is
cheap (about 2 ms of one CPU core for a 128 x 128 scene), exact, and every difficulty is a
knob: object count and size, how much occlusion is tolerated (``min_visible``), distractor
marks (``clutter``). The defaults keep the world learnable on a laptop (saturated things
on muted textures, no object hidden below 60%) while keeping what makes detection honest:
overlap, occlusion, rotation, scale from 12 to 56 pixels, a background that is not flat.

One room per concept:

- ``world``: the classes, ``ShapesConfig``, ``Scene`` and ``render_scene`` (the world itself);
- ``draw``: the textures and the rasterisation of things that ``render_scene`` uses;
- ``export``: ``export_coco``, a split in COCO's instances, captions and panoptic formats;
- ``base``: ``ShapesWorldData``, the data module every use of the world subclasses;
- ``detection``: ``ShapesData`` and the registered ``shapes`` dataset (detection);
- ``segmentation``: ``ShapesSegmentationData`` and the registered ``shapes_segmentation`` dataset.
"""

from dlcamp.data.shapes.base import WORLD_KNOBS, ShapesWorldData
from dlcamp.data.shapes.detection import ShapesData, ShapesScenes, shapes
from dlcamp.data.shapes.export import export_coco
from dlcamp.data.shapes.segmentation import ShapesSegmentationData, shapes_segmentation
from dlcamp.data.shapes.world import (
    CATEGORY_IDS,
    PALETTE,
    PLURALS,
    SEMANTIC_CLASSES,
    SPLIT_SEED_OFFSET,
    STUFF_CATEGORY_IDS,
    STUFF_CLASSES,
    THING_CLASSES,
    THING_SEMANTIC_OFFSET,
    Scene,
    ShapesConfig,
    caption_for,
    render_scene,
)

__all__ = [
    "CATEGORY_IDS",
    "PALETTE",
    "PLURALS",
    "SEMANTIC_CLASSES",
    "SPLIT_SEED_OFFSET",
    "STUFF_CATEGORY_IDS",
    "STUFF_CLASSES",
    "THING_CLASSES",
    "THING_SEMANTIC_OFFSET",
    "WORLD_KNOBS",
    "Scene",
    "ShapesConfig",
    "ShapesData",
    "ShapesScenes",
    "ShapesSegmentationData",
    "ShapesWorldData",
    "caption_for",
    "export_coco",
    "render_scene",
    "shapes",
    "shapes_segmentation",
]
