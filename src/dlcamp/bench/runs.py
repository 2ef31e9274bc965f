"""What benchmarks that train recipes share: train a run, or take the one an earlier call left."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import yaml

from dlcamp.errors import UsageError

COMPARED = ("model", "data", "task", "optim", "trainer", "seed")


def run_root(out: str | None, name: str) -> Path:
    """Where a benchmark's runs go: ``out``, or a new temporary folder named after the benchmark."""
    return Path(out) if out else Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))


def agrees(saved: Any, wanted: Any) -> bool:
    """A saved config section holds what is wanted (the engine adds the facts it filled in, e.g. num_classes)."""
    if isinstance(wanted, dict):
        return isinstance(saved, dict) and all(agrees(saved.get(k), x) for k, x in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return isinstance(saved, (list, tuple)) and len(saved) == len(wanted) and all(map(agrees, saved, wanted))
    return saved == wanted


def train_or_reuse(cfg: dict[str, Any], run_dir: Path, reuse: bool) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir``; with ``reuse``, the summary of a finished run there trained with ``cfg``."""
    from dlcamp.engine.run import train

    if reuse and (run_dir / "summary.json").exists():
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        differ = [k for k in COMPARED if not agrees(saved.get(k), cfg[k])]
        if differ:
            raise UsageError(
                f"reuse: {run_dir} was trained with other {', '.join(differ)} settings; use another out= or reuse=false"
            )
        return json.loads((run_dir / "summary.json").read_text())
    summary = train(cfg, run_dir, progress="none")
    assert summary is not None  # benchmarks train in one process
    return summary


def batch1_fps(call: Callable[[torch.Tensor], Any], images: Sequence[torch.Tensor], warmup: int = 3) -> float:
    """Images per second through ``call`` at batch 1 (each image [C, H, W] as [1, C, H, W]), after ``warmup``."""
    if len(images) <= warmup:
        raise ValueError(f"time at least one image after the {warmup} warm-up images, got {len(images)} in all")
    times = []
    with torch.no_grad():
        for i, image in enumerate(images):
            start = time.perf_counter()
            call(image[None])
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return 1.0 / statistics.mean(times)


__all__ = ["agrees", "batch1_fps", "run_root", "train_or_reuse"]
