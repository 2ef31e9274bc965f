"""The shapes world written in COCO's formats, for tools outside dlcamp (`dlcamp data export`).

One split of scenes becomes an image folder with instances (boxes, RLE masks), captions,
semantic maps and panoptic maps and segments, laid out as ``export_coco`` describes.
Category ids: things 1..K in ``THING_CLASSES`` order, stuff K+1..K+S.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dlcamp.data.shapes.world import (
    CATEGORY_IDS,
    SPLIT_SEED_OFFSET,
    STUFF_CATEGORY_IDS,
    STUFF_CLASSES,
    THING_CLASSES,
    ShapesConfig,
    check_count,
    render_scene,
)
from dlcamp.errors import UsageError
from dlcamp.io import atomic_dir


def _coco_categories() -> list[dict[str, Any]]:
    return [{"id": cid, "name": name, "supercategory": "shape"} for cid, name in zip(CATEGORY_IDS, THING_CLASSES)]


def _encode_rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def export_coco(
    out_dir: str | Path, split: str, n: int, config: ShapesConfig = ShapesConfig(), scene_seed: int = 0
) -> Path:
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
    n = check_count("n", n, 1)
    scene_seed = check_count("scene_seed", scene_seed, 0)
    target = Path(out_dir) / split
    with atomic_dir(target) as tmp:
        _write_split(tmp, split, n, config, scene_seed + SPLIT_SEED_OFFSET[split])
    return target


def _write_split(folder: Path, split: str, n: int, config: ShapesConfig, seed: int) -> None:
    for sub in ("images", "semantic", "panoptic"):
        (folder / sub).mkdir()
    info = {
        "description": f"dlcamp shapes world, {split} split (scene seed {seed})",
        "version": "1.0",
        "config": vars(config),
    }
    stuff_categories = [
        {"id": cid, "name": name, "supercategory": "stuff", "isthing": 0}
        for cid, name in zip(STUFF_CATEGORY_IDS, STUFF_CLASSES)
    ]
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
            instances.append(
                {
                    "id": len(instances) + 1,
                    "image_id": index,
                    "category_id": CATEGORY_IDS[label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": int(mask.sum()),
                    "iscrowd": 0,
                    "segmentation": _encode_rle(mask),
                }
            )
        captions.append({"id": index + 1, "image_id": index, "caption": scene.caption})
        panoptic.append(
            {
                "image_id": index,
                "file_name": name,
                "segments_info": [
                    {
                        "id": seg["id"],
                        "category_id": category_of[seg["category"]],
                        "iscrowd": 0,
                        "bbox": seg["bbox"],
                        "area": seg["area"],
                    }
                    for seg in scene.segments
                ],
            }
        )
    head = {"info": info, "licenses": [], "images": images}
    _dump(folder / "annotations.json", {**head, "annotations": instances, "categories": _coco_categories()})
    _dump(folder / "captions.json", {**head, "annotations": captions})
    panoptic_categories = [{**c, "isthing": 1} for c in _coco_categories()] + stuff_categories
    _dump(folder / "panoptic.json", {**head, "annotations": panoptic, "categories": panoptic_categories})


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj) + "\n")


__all__ = ["export_coco"]
