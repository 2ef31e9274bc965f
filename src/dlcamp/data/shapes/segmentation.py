"""The ``shapes_segmentation`` dataset: the shapes world as semantic segmentation data.

Each item is a scene as ``(image float [3, H, W] in [0, 1], label long [H, W])``, the
label being the scene's semantic map: stuff classes 0..3 then thing classes 4..8, in
``SEMANTIC_CLASSES`` order. Every pixel of the world has a class, so ``ignore_index``
(255) never appears in a scene; it is still honoured, as for any segmentation data
(padding, a flip or crop that a later option adds). ``hflip=True`` flips training scenes
left to right (image and label together) with probability 0.5, seeded per sample.

``export`` (`dlcamp data export shapes_segmentation -o DIR`) writes a split in the folder
layout that ``segmentation_folder`` reads: ``images/*.png``, ``labels/*.png`` (palette PNGs
in ``SEMANTIC_PALETTE``) and ``classes.txt``.

Shape letters: H, W image height and width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from dlcamp.data import register_dataset
from dlcamp.data.contracts import SegmentationData
from dlcamp.data.segmentation import (
    IGNORE_INDEX,
    SegmentationTransform,
    segmentation_collate,
    write_segmentation_folder,
)
from dlcamp.data.shapes.base import ShapesWorldData
from dlcamp.data.shapes.detection import ShapesScenes
from dlcamp.data.shapes.world import SEMANTIC_CLASSES, ShapesConfig, check_count, render_scene
from dlcamp.errors import UsageError
from dlcamp.registry import forwards

# One colour per semantic class, for label PNGs and overlays: the stuff in the muted tones
# of its texture, the things in saturated colours that no stuff uses.
SEMANTIC_PALETTE: list[tuple[int, int, int]] = [
    (135, 190, 235),  # sky: light blue
    (60, 140, 60),  # grass: green
    (215, 190, 130),  # sand: tan
    (30, 70, 150),  # water: deep blue
    (230, 25, 75),  # circle: red
    (255, 215, 0),  # square: yellow
    (145, 30, 180),  # triangle: purple
    (245, 130, 48),  # star: orange
    (70, 240, 240),  # cross: cyan
]


class ShapesSemanticScenes(Dataset):
    """``n`` scenes of the world ``seed``: (image float [3, H, W], semantic map long [H, W])."""

    def __init__(self, seed: int, n: int, config: ShapesConfig) -> None:
        self.scenes = ShapesScenes(seed, n, config, masks=True)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.scenes[index]
        return image, target["semantic"]


class ShapesSegmentationData(ShapesWorldData, SegmentationData):
    """The shapes world as semantic segmentation data; splits held out by seed (see ``ShapesWorldData``)."""

    @forwards(ShapesWorldData)
    def __init__(self, *, hflip: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(hflip, bool):
            raise UsageError(f"shapes_segmentation: hflip must be true or false, got {hflip!r}")
        self.hflip = hflip
        self.num_classes = len(SEMANTIC_CLASSES)
        self.class_names = list(SEMANTIC_CLASSES)
        self.ignore_index = IGNORE_INDEX
        self.palette = list(SEMANTIC_PALETTE)
        if hflip:
            self.train_transform = SegmentationTransform(hflip=True, crop_size=None, ignore_index=self.ignore_index)
        self.collate_fn = segmentation_collate(self.ignore_index)

    def build_splits(self) -> dict[str, Dataset]:
        return {split: ShapesSemanticScenes(self.split_seed(split), n, self.config) for split, n in self.sizes.items()}

    def export(self, root: Path, split: str, n: int) -> Path:
        """Scenes 0..n-1 of ``split`` under ``root/split`` in the ``segmentation_folder`` layout."""
        seed = self.split_seed(split)  # refuses an unknown split
        n = check_count("n", n, 1)

        def samples() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
            for index in range(n):
                scene = render_scene(seed, index, self.config)
                yield f"{index:06d}", scene.image, scene.semantic

        return write_segmentation_folder(
            Path(root) / split, samples(), class_names=self.class_names, palette=self.palette
        )

    def info(self) -> dict[str, Any]:
        return {**super().info(), "ignore_index": self.ignore_index, "palette": [list(c) for c in self.palette]}


@register_dataset("shapes_segmentation")
@forwards(ShapesSegmentationData, drop=("config",))
@forwards(ShapesConfig)  # the world's knobs (image_size, min_objects, ...) are options of the builder
def shapes_segmentation(**options: Any) -> ShapesSegmentationData:
    """Procedural shapes on textured stuff as semantic segmentation: 9 classes (4 stuff, 5 things) per pixel."""
    return ShapesSegmentationData.from_options(**options)


__all__ = ["SEMANTIC_PALETTE", "ShapesSegmentationData", "ShapesSemanticScenes", "shapes_segmentation"]
