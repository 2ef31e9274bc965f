"""The shapes world as a data module: what every use of the world shares.

``ShapesWorldData`` holds the world's knobs (a ``ShapesConfig``), the size of each split
and the scene seed. Splits are held out by seed (train scenes are (scene_seed, i), val
(scene_seed + 1, i), test (scene_seed + 2, i)), so no scene is ever in two splits. It can
draw any scene of a split with all its annotations (``scene``), read a user's image for
``predict``, and write a split in COCO's formats (``export``, `dlcamp data export`).

A use of the world (detection today; segmentation, panoptic, translation, captions next)
is one subclass in its own module: it sets the class facts, implements ``build_splits``
(a Dataset serving what its task needs from ``render_scene``) and registers a builder
that takes the world's knobs beside its own options::

    @register_dataset("shapes_segmentation")
    @forwards(ShapesSegmentationData, drop=("config",))
    @forwards(ShapesConfig)  # image_size, min_objects, ... as options of the builder
    def shapes_segmentation(**options: Any) -> ShapesSegmentationData:
        "The one line `dlcamp list datasets` shows."
        return ShapesSegmentationData.from_options(**options)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from dlcamp.data.contracts import Exportable
from dlcamp.data.detection import load_image
from dlcamp.data.module import DataModule
from dlcamp.data.shapes.export import export_coco
from dlcamp.data.shapes.world import (
    SEMANTIC_CLASSES,
    SPLIT_SEED_OFFSET,
    STUFF_CLASSES,
    Scene,
    ShapesConfig,
    check_count,
    render_scene,
)
from dlcamp.errors import UsageError
from dlcamp.registry import forwards

WORLD_KNOBS = tuple(f.name for f in dataclasses.fields(ShapesConfig))  # builder options that make the config


class ShapesWorldData(DataModule, Exportable):
    """Base of the data modules over the shapes world: config, split sizes, scene seed, export.

    The loader defaults (batch 32, evaluation batch 64) suit 128 x 128 scenes on 2 CPU cores.
    """

    @forwards(DataModule)
    def __init__(
        self,
        *,
        config: ShapesConfig = ShapesConfig(),
        train_size: int = 4000,
        val_size: int = 250,
        test_size: int = 500,
        scene_seed: int = 0,
        batch_size: int | str = 32,
        eval_batch_size: int = 64,
        **loader_args: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, **loader_args)
        self.config = config
        self.sizes = {
            "train": check_count("train_size", train_size, 1),
            "val": check_count("val_size", val_size, 1),
            "test": check_count("test_size", test_size, 1),
        }
        self.scene_seed = check_count("scene_seed", scene_seed, 0)
        self.input_shape = (3, config.image_size, config.image_size)

    @classmethod
    def from_options(cls, **options: Any) -> ShapesWorldData:
        """Build from a builder's options: the world's knobs (``WORLD_KNOBS``) make the config, the rest go to ``cls``."""
        knobs = {key: options.pop(key) for key in WORLD_KNOBS if key in options}
        return cls(config=ShapesConfig(**knobs), **options)

    def split_seed(self, split: str) -> int:
        """The world seed of a split: scene_seed for train, +1 for val, +2 for test."""
        if split not in SPLIT_SEED_OFFSET:
            raise UsageError(f"unknown split {split!r}; choose train, val or test")
        return self.scene_seed + SPLIT_SEED_OFFSET[split]

    def scene(self, split: str, index: int) -> Scene:
        """Scene ``index`` of ``split`` with all its annotations (for figures)."""
        if not 0 <= index < self.sizes.get(split, 0):
            raise UsageError(f"scene {index} is not in the {split} split (0..{self.sizes.get(split, 0) - 1})")
        return render_scene(self.split_seed(split), index, self.config)

    def load_input(self, path: Path) -> torch.Tensor:
        """An image file (PNG, JPEG, ...) as float [3, H, W] in [0, 1], at its own size."""
        return load_image(path)

    def export(self, root: Path, split: str, n: int) -> Path:
        """Scenes 0..n-1 of ``split`` in COCO's formats under ``root/split`` (see ``export_coco``)."""
        return export_coco(root, split, n, self.config, self.scene_seed)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "stuff_classes": list(STUFF_CLASSES), "semantic_classes": list(SEMANTIC_CLASSES)}


__all__ = ["WORLD_KNOBS", "ShapesWorldData"]
