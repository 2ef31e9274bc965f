"""The ``shapes`` dataset: the shapes world as detection data.

Each item is a scene as ``(image float [3, H, W] in [0, 1], target)`` with the detection
target of ``dlcamp.data.detection`` (boxes of the visible parts, labels 0..K-1 in
``THING_CLASSES`` order, no crowd regions, ``image_id`` the scene index). With
``masks=True`` the target also holds the instance ``masks`` bool [N, H, W] and the
``semantic`` and ``panoptic`` maps long [H, W].

Shape letters: N things, H, W image height and width, K thing classes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from dlcamp.data import register_dataset
from dlcamp.data.detection import DetectionData
from dlcamp.data.shapes.base import ShapesWorldData
from dlcamp.data.shapes.world import CATEGORY_IDS, THING_CLASSES, ShapesConfig, render_scene
from dlcamp.registry import forwards


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
            "boxes": torch.from_numpy(scene.boxes),
            "labels": torch.from_numpy(scene.labels),
            "iscrowd": torch.zeros(len(scene.labels), dtype=torch.bool),
            "image_id": int(index),
        }
        if self.masks:
            target["masks"] = torch.from_numpy(scene.masks)
            target["semantic"] = torch.from_numpy(scene.semantic)
            target["panoptic"] = torch.from_numpy(scene.panoptic)
        return image, target


class ShapesData(ShapesWorldData, DetectionData):
    """The shapes world as a detection data module; splits held out by seed (see ``ShapesWorldData``)."""

    @forwards(ShapesWorldData)
    def __init__(self, *, masks: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.masks = bool(masks)
        self.num_classes = len(THING_CLASSES)
        self.class_names = list(THING_CLASSES)
        self.category_ids = list(CATEGORY_IDS)

    def build_splits(self) -> dict[str, Dataset]:
        return {
            split: ShapesScenes(self.split_seed(split), n, self.config, self.masks) for split, n in self.sizes.items()
        }


@register_dataset("shapes")
@forwards(ShapesData, drop=("config",))
@forwards(ShapesConfig)  # the world's knobs (image_size, min_objects, ...) are options of the builder
def shapes(**options: Any) -> ShapesData:
    """Procedural shapes on textured stuff: 5 thing classes, boxes, masks, semantic, panoptic, captions."""
    return ShapesData.from_options(**options)


__all__ = ["ShapesData", "ShapesScenes", "shapes"]
