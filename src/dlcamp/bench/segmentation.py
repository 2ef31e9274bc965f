"""Segmentation benchmark: FCN-32s against FCN-16s against FCN-8s on the shapes world.

``dlcamp bench segmentation`` trains each variant from its recipe (seed 0, the recipe's
budget) on the default shapes world and scores the test split (scenes of another seed):
mIoU over all test pixels, mIoU over the pixels within ``band`` px of a class boundary
(where the skips from pool4 and pool3 should help: the paper's point about coarse
upsampling, measured), pixel accuracy, and the reference beside ours: torchmetrics'
``MulticlassJaccardIndex(average="macro")`` on the same predictions. It also reports each
model's parameters and multiply-adds at 128 x 128, and its batch-1 CPU inference speed.
``reuse=true`` with ``out=DIR`` takes the runs an earlier call left in DIR.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from dlcamp.bench import register_benchmark
from dlcamp.bench.runs import batch1_fps, run_root, train_or_reuse

VARIANTS: dict[str, tuple[str, str]] = {
    "fcn32s": ("fcn32s-shapes", "one 32x upsampling of the stride-32 scores"),
    "fcn16s": ("fcn16s-shapes", "+ pool4 (stride 16) scores after a learned 2x upsampling"),
    "fcn8s": ("fcn8s-shapes", "+ pool3 (stride 8) scores"),
}
GOAL = 0.85  # test mIoU of the best variant
BUDGET_S = 1200  # training seconds of each run on 2 CPU cores


@torch.no_grad()
def torchmetrics_miou(task: Any, loader: Any) -> float:
    """The reference: torchmetrics' macro Jaccard index over the same test predictions."""
    from torchmetrics.classification import MulticlassJaccardIndex

    from dlcamp.tasks.base import evaluating
    from dlcamp.tasks.segmentation import split_output

    metric = MulticlassJaccardIndex(task.num_classes, average="macro", ignore_index=task.ignore_index)
    with evaluating(task):
        for x, y in loader:
            logits, _ = split_output(task(x.to(task.device)))
            metric.update(logits.argmax(1).cpu(), y)
    return float(metric.compute())


def inference_fps(task: Any, images: torch.Tensor, warmup: int = 3) -> float:
    """Images per second at batch 1 on the CPU (after ``warmup`` images)."""
    from dlcamp.tasks.base import evaluating

    with evaluating(task.model.cpu()) as model:
        return batch1_fps(model, list(images), warmup)


@register_benchmark("segmentation")
def segmentation(
    *,
    variants: Sequence[str] | None = None,
    overrides: Sequence[str] | None = None,
    fps_images: int = 30,
    out: str | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    """FCN-32s vs 16s vs 8s on the shapes world: mIoU, mIoU near boundaries, torchmetrics beside ours."""
    from dlcamp.engine.run import load_run, resolve
    from dlcamp.errors import UsageError
    from dlcamp.metrics.complexity import profile
    from dlcamp.recipes import get_recipe

    if fps_images < 4:
        raise UsageError(f"fps_images must be at least 4 (3 warm-up images, then the timed ones), got {fps_images}")
    names = list(variants or VARIANTS)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown segmentation variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    root = run_root(out, "segmentation")
    rows, best = [], ("", -1.0)
    for v in names:
        cfg = resolve(get_recipe(VARIANTS[v][0]), list(overrides or []))
        summary = train_or_reuse(cfg, root / v, reuse)
        built = load_run(root / v)
        built.datamodule.setup()
        m = summary["metrics"]
        reference = torchmetrics_miou(built.task, built.datamodule.split_loader("test"))
        test = built.datamodule.splits["test"]
        images = torch.stack([test[i % len(test)][0] for i in range(fps_images)])
        prof = profile(built.task.model, tuple(images.shape[1:]))
        rows.append(
            {
                "variant": v,
                "what": VARIANTS[v][1],
                "test mIoU": m["test/miou"],
                "boundary mIoU (3 px)": m["test/boundary_miou"],
                "pixel acc": m["test/pixel_acc"],
                "torchmetrics mIoU": reference,
                "|ours - torchmetrics|": abs(reference - m["test/miou"]),
                "params": summary["params"],
                "MACs / image": prof["total_macs"],
                "FPS (batch 1, CPU)": inference_fps(built.task, images),
                "train s": summary["train_seconds"],
                "steps": summary["steps"],
            }
        )
        if m["test/miou"] > best[1]:
            best = (v, m["test/miou"])
    slow = [r["variant"] for r in rows if r["train s"] > BUDGET_S]
    ok = best[1] >= GOAL and not slow
    notes = [
        f"goal: best variant test mIoU >= {GOAL}: {best[0]} {best[1]:.4f} -> {'PASS' if best[1] >= GOAL else 'FAIL'}",
        f"each run within {BUDGET_S} s: " + (f"FAIL ({', '.join(slow)} over)" if slow else "PASS"),
    ]
    return {
        "title": "semantic segmentation on the shapes world (test split: scenes of another seed), seed 0",
        "rows": rows,
        "ok": ok,
        "notes": notes,
        "run_root": str(root),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
