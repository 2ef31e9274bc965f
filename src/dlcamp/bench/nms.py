"""Benchmark: ``dlcamp.ops.nms`` (blocked, plain torch) against ``torchvision.ops.nms`` (a compiled kernel).

Boxes are drawn as a detector's raw output might look: centres uniform in a 1000 x 1000
image, widths and heights uniform in [10, 200], scores uniform in [0, 1), all from a
``torch.Generator`` seeded with ``seed``, so every run sees the same boxes. Each row is
one number of boxes. Both functions run once to check that they keep the same indices
in the same order (``identical``), which also warms them up; then they are timed
alternately (ours then torchvision's, torchvision's then ours, ...) and each figure is
the median of ``repeats`` calls. ``speedup`` = torchvision_ms / ours_ms: 1.0 or more
means ours is as fast.

On the CPU both do O(N K) IoU comparisons for K kept boxes, torchvision one pair at a
time in C++, ours a block of pairs per torch operation; at 50,000 boxes the defaults
take well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from dlcamp.bench import register_benchmark
from dlcamp.bench.machine import describe_machine, synchronize
from dlcamp.ops.nms import nms

IMAGE_SIZE = 1000.0
MIN_SIZE, MAX_SIZE = 10.0, 200.0


def random_detections(n: int, generator: torch.Generator, device: torch.device) -> tuple[Tensor, Tensor]:
    """n boxes (n, 4) xyxy and scores (n,), drawn as described in the module docstring."""
    centres = torch.rand(n, 2, generator=generator) * IMAGE_SIZE  # (n, 2)
    sizes = MIN_SIZE + torch.rand(n, 2, generator=generator) * (MAX_SIZE - MIN_SIZE)  # (n, 2)
    boxes = torch.cat((centres - sizes / 2, centres + sizes / 2), dim=1)
    scores = torch.rand(n, generator=generator)
    return boxes.to(device), scores.to(device)


@register_benchmark("nms")
def nms_bench(
    *,
    sizes: Sequence[int] = (1000, 10000, 50000),
    iou_threshold: float = 0.5,
    repeats: int = 3,
    seed: int = 0,
    device: str | None = None,
) -> dict[str, Any]:
    """Greedy NMS on random boxes in a 1000 x 1000 image: ours (blocked, plain torch) vs torchvision.ops.nms."""
    from torchvision.ops import nms as torchvision_nms

    if repeats < 1:
        raise ValueError(f"need repeats >= 1, got {repeats}")
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for n in sizes:
        boxes, scores = random_detections(n, generator, target)
        ours_kept = nms(boxes, scores, iou_threshold)
        theirs_kept = torchvision_nms(boxes, scores, iou_threshold)

        def ours() -> Tensor:
            return nms(boxes, scores, iou_threshold)

        def theirs() -> Tensor:
            return torchvision_nms(boxes, scores, iou_threshold)

        ours_ms, theirs_ms = _time_both(ours, theirs, target, repeats=repeats)
        rows.append(
            {
                "n": n,
                "kept": int(ours_kept.numel()),
                "ours_ms": round(ours_ms, 3),
                "torchvision_ms": round(theirs_ms, 3),
                "speedup": round(theirs_ms / ours_ms, 3),
                "identical": bool(torch.equal(ours_kept.cpu(), theirs_kept.cpu())),
            }
        )

    machine = describe_machine(target)
    return {
        "title": f"Greedy NMS, IoU threshold {iou_threshold}, float32 boxes in a 1000x1000 image: "
        "ours (blocked, plain torch) vs torchvision.ops.nms",
        "rows": rows,
        "machine": machine,
        "torch": torch.__version__,
        "device": str(target),
        "repeats": repeats,
        "notes": [
            f"machine: {machine}; torch {torch.__version__}",
            f"boxes: centres uniform in the image, sides uniform in [{MIN_SIZE:g}, {MAX_SIZE:g}], scores uniform "
            f"in [0, 1), seed {seed}",
            f"median of {repeats} calls after 1 agreement check, ours and torchvision's alternating; "
            "speedup = torchvision_ms / ours_ms (>= 1.0: ours as fast); identical: same kept indices, same order",
        ],
    }


def _time_both(
    ours: Callable[[], Tensor], theirs: Callable[[], Tensor], device: torch.device, *, repeats: int
) -> tuple[float, float]:
    """Median time in ms of ours and of torchvision's, timed alternately."""
    ours_times: list[float] = []
    theirs_times: list[float] = []
    for i in range(repeats):
        order = [(ours, ours_times), (theirs, theirs_times)]
        for step, times in order if i % 2 == 0 else reversed(order):
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(ours_times), statistics.median(theirs_times)
