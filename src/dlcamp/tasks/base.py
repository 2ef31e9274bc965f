"""What every task shares: the optimizer and its schedule, the non-finite-loss guard, and a
plain evaluation loop used for final metrics and ``dlcamp eval``.

A task is a LightningModule that wires a plain ``nn.Module`` (from the model registry) to
its loss, metrics and figures. The model knows nothing of training.
"""

from __future__ import annotations

import abc

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn as nn

from dlcamp.errors import TrainingFailed


class NonFiniteLoss(TrainingFailed):
    """The loss became NaN or infinite; the message names the step."""


def lr_multiplier(schedule: dict[str, Any], total_steps: int):
    """The learning-rate factor at step ``s`` for a schedule config (see ``ScheduleConfig``)."""
    name = schedule.get("name", "constant")
    warmup = int(schedule.get("warmup_steps", 0))
    min_ratio = float(schedule.get("min_lr_ratio", 0.0))
    step_size, gamma = int(schedule.get("step_size", 1000)), float(schedule.get("gamma", 0.1))
    milestones = [float(m) for m in schedule.get("milestones", [0.5, 0.75])]
    total = max(1, total_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if name == "cosine":
            return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        if name == "linear":
            return min_ratio + (1 - min_ratio) * (1 - progress)
        if name == "step":
            return gamma ** ((step - warmup) // step_size)
        if name == "multistep":
            return gamma ** sum(progress >= m for m in milestones)
        return 1.0

    return factor


class Task(L.LightningModule):
    """Base LightningModule: subclasses implement ``_shared_step`` and the metrics."""

    def __init__(self, model: nn.Module, *, optim: dict[str, Any], channels_last: bool = False) -> None:
        super().__init__()
        self.model = model
        self.optim_cfg = dict(optim)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._prepare(x))

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def check_finite(self, loss: torch.Tensor) -> None:
        """Stop before a non-finite loss reaches the weights: the last checkpoint stays good."""
        if not torch.isfinite(loss).all():
            raise NonFiniteLoss(
                f"loss became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                "training stopped, the last good checkpoint is kept — try a lower optim.lr or gradient clipping"
            )

    def configure_optimizers(self):
        from dlcamp.optim import get_optimizer_class

        cfg = dict(self.optim_cfg)
        name = cfg.pop("name")
        schedule = cfg.pop("schedule", None) or {"name": "constant"}
        optimizer = get_optimizer_class(name)(self.trained_parameters(), **cfg)
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_lambda(schedule, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def trained_parameters(self) -> list[nn.Parameter]:
        """What the optimizer updates: the model's parameters (a task may train modules of its own too)."""
        return list(self.model.parameters())

    def lr_lambda(self, schedule: dict[str, Any], total_steps: int):
        """The learning-rate factor of step ``s`` over the whole run (a task may restart it in phases)."""
        return lr_multiplier(schedule, total_steps)

    # -- evaluation outside Lightning (final metrics, `dlcamp eval`) --------------------
    @abc.abstractmethod
    def evaluate(self, loader, prefix: str) -> dict[str, float]:
        """Metrics over a loader, named ``PREFIX/NAME`` (run under ``torch.no_grad``)."""

    def figures(self, datamodule: Any, out_dir: Path) -> list[Path]:
        """Write this task's figures (PNG) to ``out_dir``; return their paths."""
        return []

    def predict_files(self, inputs, datamodule: Any, output: Path | None) -> None:
        """``dlcamp predict``: this task's answer for each input file, written to ``output``."""
        from dlcamp.errors import UsageError

        raise UsageError(f"`dlcamp predict` is not available for {type(self).__name__} runs")
