"""Engine callbacks: run state (RNG, elapsed time) in checkpoints, atomic checkpoint files,
plain progress lines, and a fault hook for the kill-and-resume test."""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dlcamp.io import atomic_open


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file, then rename: a kill never leaves half a checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_open(path, "wb") as f:
            torch.save(checkpoint, f)


class RunState(L.Callback):
    """Saves what Lightning does not: the RNG states and the training time so far.

    With these restored, a resumed run continues the uninterrupted run's random stream
    (dropout masks, mixup draws) exactly.
    """

    def __init__(self) -> None:
        self.seconds_before = 0.0
        self._start: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def train_seconds(self) -> float:
        return self.seconds_before + (time.perf_counter() - self._start if self._start is not None else 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": _numpy_state(),
            "python": random.getstate(),
            "train_seconds": self.train_seconds(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        _set_numpy_state(state["numpy"])
        random.setstate(state["python"])
        self.seconds_before = float(state.get("train_seconds", 0.0))


def _numpy_state() -> dict[str, Any]:
    # as tensors and numbers, so the checkpoint loads with torch.load(weights_only=True)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _set_numpy_state(s: dict[str, Any]) -> None:
    np.random.set_state((s["kind"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["cached"]))


class PlainProgress(L.Callback):
    """One line per validation round, for logs and pipes (no terminal control codes)."""

    def __init__(self, stream=sys.stdout) -> None:
        self.stream = stream
        self._t0 = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        shown = " ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if not k.endswith("_step"))
        print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} step {trainer.global_step} {shown} "
            f"({time.perf_counter() - self._t0:.1f} s)",
            file=self.stream,
            flush=True,
        )


class CrashAfterStep(L.Callback):
    """Test hook (``DLCAMP_CRASH_AFTER_STEP=K``): SIGKILL this process once step K is done.

    It fires at the start of step K+1, after every checkpoint of step K was written, and
    stands for a machine that dies mid-training.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
