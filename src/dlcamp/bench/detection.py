"""Detection benchmark: SSD against Faster R-CNN on the shapes world, and the curriculum's ablations.

``dlcamp bench detection`` trains each variant from its recipe (seed 0, the recipe's step
budget) on the default shapes world, evaluates on the test split (scenes of another
seed) with pycocotools, and times inference at batch 1 on this machine's CPU. One row per
variant, each an ablation on the detector it belongs to, at its baseline's budget:

- ``ssd``: the baseline (log-scale box regression, hard negative mining 3:1);
- ``ssd-linear``: width and height regressed on a linear scale instead of log;
- ``ssd-hnm1`` / ``ssd-nohnm``: hard negative mining 1:1, and none (every negative in the loss);
- ``fasterrcnn``: the baseline (joint training, hand-set anchors 16/32/64 px x 1:2, 1:1, 2:1);
- ``fasterrcnn-4step``: the paper's four-step alternating training;
- ``fasterrcnn-kmeans``: nine anchor shapes fitted by k-means with distance 1 - IoU to the
  training boxes (Redmon & Farhadi 2017) instead of the hand-set nine.

Anchor rows also report the mean best-anchor IoU of the test boxes: for each box, the IoU
of its shape with the closest anchor shape (centres aligned), averaged.

Inference speed is timed after all the training, every detector in turn, ``fps_rounds``
times (median): ``detect`` on one test image at a time. ``reuse=true`` with ``out=DIR``
takes the runs an earlier call left in DIR instead of training them again (their configs
are still resolved and checked, and must be what this call would train).
"""

from __future__ import annotations

import statistics
from typing import Any, Sequence

import torch

from dlcamp.bench import register_benchmark
from dlcamp.bench.runs import batch1_fps, run_root, train_or_reuse

VARIANTS: dict[str, tuple[str, list[str], str]] = {
    "ssd": ("ssd-shapes", [], "baseline: log-scale boxes, hard negatives 3:1"),
    "ssd-linear": ("ssd-shapes", ["model.box_scale=linear"], "linear-scale width/height regression"),
    "ssd-hnm1": ("ssd-shapes", ["model.neg_pos_ratio=1"], "hard negative mining 1:1"),
    "ssd-nohnm": ("ssd-shapes", ["model.neg_pos_ratio=null"], "no hard negative mining (all negatives)"),
    "fasterrcnn": ("fasterrcnn-shapes", [], "baseline: joint training, hand-set anchors"),
    "fasterrcnn-4step": ("fasterrcnn-shapes", ["task.training_mode=four_step"], "four-step alternating training"),
    "fasterrcnn-kmeans": ("fasterrcnn-shapes", [], "k-means anchors (9, 1 - IoU distance)"),
}
GOALS = {"test/map_50": 0.90, "test/map": 0.60}  # for the two baselines


def box_shapes(datamodule: Any, split: str, limit: int | None = None) -> torch.Tensor:
    """(w, h) of every non-crowd box of a split, [N, 2]."""
    datamodule.setup()
    ds = datamodule.splits[split]
    out = []
    for i in range(len(ds) if limit is None else min(limit, len(ds))):
        t = ds[i][1]
        b = t["boxes"][~t["iscrowd"]]
        out.append(torch.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1))
    return torch.cat(out)


def interleaved_fps(built: dict[str, Any], n: int, rounds: int = 3) -> dict[str, float]:
    """Median batch-1 FPS of each trained run, the runs timed in turn, ``rounds`` times (order reversed each round).

    Timing every detector within one stretch of time, alternately, keeps drifts in the
    machine's speed (a shared VM's varies by up to 2x over minutes) from landing on one.
    """
    times: dict[str, list[float]] = {v: [] for v in built}
    order = list(built)
    for r in range(rounds):
        for v in order if r % 2 == 0 else order[::-1]:
            times[v].append(inference_fps(built[v].task, built[v].datamodule, n))
    return {v: statistics.median(t) for v, t in times.items()}


def inference_fps(task: Any, datamodule: Any, n: int = 50, warmup: int = 3) -> float:
    """Images per second through ``detect`` at batch 1, on the CPU, over n test images (after warm-up)."""
    from dlcamp.tasks.base import evaluating

    test = datamodule.splits["test"]
    images = [test[i % len(test)][0] for i in range(n + warmup)]
    with evaluating(task.model.cpu()) as model:
        return batch1_fps(model.detect, images, warmup)


@register_benchmark("detection")
def detection(
    *,
    variants: Sequence[str] | None = None,
    overrides: Sequence[str] | None = None,
    fps_images: int = 50,
    fps_rounds: int = 3,
    out: str | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    """SSD vs Faster R-CNN on the shapes world (mAP, batch-1 CPU FPS) and the ablations, one row each."""
    from dlcamp import ops
    from dlcamp.data import get_dataset
    from dlcamp.engine.run import load_run, resolve
    from dlcamp.errors import UsageError
    from dlcamp.ops.anchors import anchor_shapes
    from dlcamp.recipes import get_recipe

    names = list(variants or VARIANTS)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown detection variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    root = run_root(out, "detection")
    cfgs = {v: resolve(get_recipe(VARIANTS[v][0]), list(overrides or []) + VARIANTS[v][1]) for v in names}

    anchor_iou: dict[str, float] = {}
    if any(v.startswith("fasterrcnn") for v in names):
        base = cfgs[next(v for v in names if v.startswith("fasterrcnn"))]
        dm = get_dataset(base["data"]["name"], **{k: x for k, x in base["data"].items() if k != "name"})
        test_wh = box_shapes(dm, "test")
        hand = anchor_shapes(
            base["model"].get("anchor_sizes", [[16, 32, 64]])[0], base["model"].get("aspect_ratios", [0.5, 1.0, 2.0])
        )
        anchor_iou["hand-set"] = float(ops.best_anchor_iou(test_wh, hand).mean())
        if "fasterrcnn-kmeans" in names:
            fitted = ops.kmeans_anchors(box_shapes(dm, "train"), len(hand), seed=0)
            cfgs["fasterrcnn-kmeans"]["model"]["anchor_wh"] = [
                [[round(float(w), 2), round(float(h), 2)] for w, h in fitted]
            ]
            anchor_iou["k-means"] = float(ops.best_anchor_iou(test_wh, fitted).mean())

    summaries, built = {}, {}
    for v in names:
        summaries[v] = train_or_reuse(cfgs[v], root / v, reuse)
        built[v] = load_run(root / v)
        built[v].datamodule.setup()
    fps = interleaved_fps(built, fps_images, fps_rounds)

    rows, notes, ok = [], [], True
    for v in names:
        cfg, summary = cfgs[v], summaries[v]
        assert summary is not None
        m = summary["metrics"]
        row: dict[str, Any] = {
            "variant": v,
            "detector": cfg["model"]["name"],
            "what": VARIANTS[v][2],
            "test mAP@0.5": m["test/map_50"],
            "test mAP@[.5:.95]": m["test/map"],
            "FPS (batch 1, CPU)": fps[v],
            "params": summary["params"],
            "train s": summary["train_seconds"],
            "steps": summary["steps"],
        }
        if v.startswith("fasterrcnn"):
            row["mean best-anchor IoU"] = anchor_iou["k-means" if v.endswith("kmeans") else "hand-set"]
        row["ours vs pycocotools"] = m["test/ours_vs_pycocotools"]
        rows.append(row)
        if v in ("ssd", "fasterrcnn"):
            met = all(m[k] >= goal for k, goal in GOALS.items()) and summary["train_seconds"] <= 1200
            ok &= met
            notes.append(
                f"{v}: goal mAP@0.5 >= 0.90, mAP@[.5:.95] >= 0.60 within 1200 s: {m['test/map_50']:.3f}, "
                f"{m['test/map']:.3f} in {summary['train_seconds']:.0f} s -> {'PASS' if met else 'FAIL'}"
            )
    if "fasterrcnn-kmeans" in cfgs:
        notes.append(f"k-means anchors (w, h): {cfgs['fasterrcnn-kmeans']['model']['anchor_wh'][0]}")
    return {
        "title": "detection on the shapes world (test split: scenes of another seed), seed 0",
        "rows": rows,
        "ok": ok,
        "notes": notes,
        "run_root": str(root),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
