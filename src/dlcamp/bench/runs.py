"""What benchmarks that train recipes share: train a run, or take the one an earlier call left."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

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


__all__ = ["agrees", "run_root", "train_or_reuse"]
