"""What every task shares: optimizers and schedules built from the recipe (one, or one per
parameter group), phased schedules, the non-finite-loss guard, and a plain evaluation loop
used for final metrics and ``dlcamp eval``.

A task is a LightningModule that wires a plain ``nn.Module`` (from the model registry) to
its loss, metrics and figures. The model knows nothing of training.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn as nn

from dlcamp.errors import TrainingFailed
from dlcamp.models.contracts import Grouped
from dlcamp.optim.groups import Phase, build_optimizer, is_multi, phase_bounds, phase_index, specs


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode inside the block, and back in the mode it had after it, even on an error."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


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


class ImageSampler(abc.ABC):
    """A task whose model draws images (`dlcamp sample`): likelihood models now, GANs next."""

    class_names: list[str]

    @property
    @abc.abstractmethod
    def conditional(self) -> bool:
        """Whether samples can be drawn for a chosen class (``--condition``)."""

    @abc.abstractmethod
    def sample_images(self, n: int, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, list[str] | None]:
        """``n`` images [n, C, H, W] in [0, 1] and a title per image (or None)."""


class Task(L.LightningModule):
    """Base LightningModule: subclasses implement the steps and the metrics; the engine owns the rest.

    What the engine owns and sets with ``configure_engine`` after the task builder returns:
    the optimizer specs (one, or one per parameter group), a phased schedule, the memory
    format and gradient clipping. A task names its parameter groups (``param_groups``;
    by default the model's own, see ``dlcamp.models.contracts.Grouped``), and may declare
    a phased schedule of its own (``default_phases``); it never builds an optimizer or
    freezes a module itself.

    With one optimizer Lightning's automatic optimization runs ``training_step``'s returned
    loss. With several (``optim:`` a mapping), the task steps each one itself with
    ``step_optimizer(group, loss)``, and every schedule advances once per training batch.
    Lightning then counts each optimizer step in ``global_step`` (so ``trainer.max_steps``
    and ``checkpoint_every_n_steps`` count optimizer steps), while schedules and phases
    count training batches (``batches_done``).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.optim_cfg: dict[str, Any] = {}
        self.channels_last = False
        self.gradient_clip_val = 0.0
        self.phases: list[Phase] = []
        self._phase: int | None = None
        self._optimizer_names: list[str] = []

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

    # -- what the engine sets ------------------------------------------------------------
    def configure_engine(
        self,
        *,
        optim: dict[str, Any],
        channels_last: bool = False,
        phases: list[Phase] | None = None,
        gradient_clip_val: float = 0.0,
    ) -> None:
        """Engine-owned options; checks the optimizer groups and phases against ``param_groups``."""
        from dlcamp.errors import UsageError

        self.optim_cfg = dict(optim)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.phases = list(phases) if phases is not None else self.default_phases()
        self.gradient_clip_val = float(gradient_clip_val or 0.0)
        self.automatic_optimization = not is_multi(self.optim_cfg)
        groups = self.param_groups()
        if is_multi(self.optim_cfg) and set(self.optim_cfg) != set(groups):
            raise UsageError(
                f"optim names {', '.join(self.optim_cfg)}; this model and task train the parameter "
                f"groups {', '.join(groups)}: give one optimizer spec, or one per group"
            )
        for phase in self.phases:
            unknown = [g for g in phase.train if g not in groups]
            if unknown:
                raise UsageError(
                    f"phase {phase.name!r} trains {', '.join(unknown)}, which is not a parameter group "
                    f"here (groups: {', '.join(groups)})"
                )

    def param_groups(self) -> dict[str, nn.Module]:
        """Named parts that optimizers and phases address: the model's own groups, or one, ``model``."""
        if isinstance(self.model, Grouped):
            return dict(self.model.param_groups())
        return {"model": self.model}

    def default_phases(self) -> list[Phase]:
        """A phased schedule this task declares (none by default; a recipe's ``phases:`` replaces it)."""
        return []

    # -- optimizers ------------------------------------------------------------------------
    def configure_optimizers(self):
        groups = self.param_groups()
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        configs = []
        named = specs(self.optim_cfg)
        for name, spec in named.items():
            schedule = spec.pop("schedule", None) or {"name": "constant"}
            if name == "all":  # the shorthand: the model first, then any module the task trains besides it
                inside = {id(m) for m in self.model.modules()}
                modules = [self.model] + [m for m in groups.values() if id(m) not in inside]
            else:
                modules = [groups[name]]
            optimizer = build_optimizer(spec, modules)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_lambda(schedule, total))
            lr_name = "lr" if name == "all" else f"lr/{name}"
            configs.append(
                {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": lr_name}}
            )
        self._optimizer_names = list(named)
        return configs[0] if len(configs) == 1 else configs

    def lr_lambda(self, schedule: dict[str, Any], total_steps: int):
        """The learning-rate factor of step ``s``: over the whole run, or restarted in each phase."""
        if not self.phases:
            return lr_multiplier(schedule, total_steps)
        bounds = phase_bounds(self.phases, total_steps)
        whole = lr_multiplier(schedule, total_steps)
        per_phase = [lr_multiplier(schedule, max(1, bounds[k + 1] - bounds[k])) for k in range(len(self.phases))]

        def factor(step: int) -> float:
            k = phase_index(bounds, step)
            return per_phase[k](step - bounds[k]) if self.phases[k].restart_schedule else whole(step)

        return factor

    def step_optimizer(self, group: str, loss: torch.Tensor) -> None:
        """With several optimizers: zero the group's gradients, backpropagate ``loss``, clip, step."""
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        opt = opts[self._optimizer_names.index(group)]
        opt.zero_grad()
        self.manual_backward(loss)
        if self.gradient_clip_val:
            self.clip_gradients(opt, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")
        opt.step()

    def _advance_schedules(self) -> None:
        """Several optimizers: every schedule moves once per batch, at the start of the next one.

        Not at the end of a batch: checkpoint callbacks run before the module's batch-end
        hook, so a schedule stepped there would be saved one step behind. Stepped at the start
        of batch k > 0, a resumed run takes the step its checkpoint had not yet seen.
        """
        if self.automatic_optimization or self.batches_done() == 0:
            return
        scheds = self.lr_schedulers()
        for s in scheds if isinstance(scheds, list) else [scheds]:
            s.step()

    def batches_done(self) -> int:
        """Training batches done so far: what schedules and phases count.

        With one optimizer that is ``global_step``; with several, Lightning's ``global_step``
        counts every optimizer's steps, so the batches are counted instead (restored on resume).
        """
        if self.automatic_optimization:
            return self.global_step
        return int(self.trainer.fit_loop.epoch_loop.batch_progress.total.completed)

    # -- phases ----------------------------------------------------------------------------
    def _bounds(self) -> list[int]:
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        return phase_bounds(self.phases, total)

    @property
    def phase(self) -> Phase | None:
        """The phase being trained (None without a phased schedule)."""
        return self.phases[self._phase] if self.phases and self._phase is not None else None

    def on_train_start(self) -> None:
        # a resumed run continues its phase with the optimizer state it had
        self._phase = phase_index(self._bounds(), self.batches_done()) if self.phases else None

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self._advance_schedules()
        if not self.phases:
            return
        k = phase_index(self._bounds(), self.batches_done())
        if k != self._phase:
            if self.phases[k].fresh_state:  # a phase is a training of its own: no moments from the last
                opts = self.optimizers()
                for opt in opts if isinstance(opts, list) else [opts]:
                    opt.optimizer.state.clear()
            self._phase = k
        self.freeze_for(self.phases[k])

    def freeze_for(self, phase: Phase) -> None:
        """Train ``phase``'s groups; freeze every other group, its batch-norm statistics too (eval mode)."""
        train = set(phase.train)
        for name, module in self.param_groups().items():
            on = name in train
            module.requires_grad_(on)
            if not on:
                module.eval()

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
