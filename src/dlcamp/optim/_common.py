"""What every optimizer here shares: argument checks, the ``step`` skeleton, step counters.

Each optimizer family (``sgd.py``, ``adam.py``, ...) holds the maths twice:

* ``_loop_*``: one parameter at a time, the version to read next to the paper;
* ``_foreach_*``: the same maths on whole lists of tensors with ``torch._foreach_*`` ops
  (the default, ``foreach=None``): on a GPU one kernel launch per list instead of one per
  tensor; on a CPU the ops run on cache-sized slices of the list (see ``foreach_slices``).

Both are checked against ``torch.optim`` in ``tests/optim``.
"""

from __future__ import annotations

import abc
from typing import Any, Callable

import torch
from torch import Tensor
from torch.optim import Optimizer

from dlcamp.errors import UsageError


class OptimizerArgumentError(UsageError, ValueError):
    """An optimizer hyperparameter out of range (a ``ValueError``, as torch.optim raises)."""


def check_at_least_zero(name: str, value: float | Tensor) -> None:
    if not 0.0 <= value:
        raise OptimizerArgumentError(f"Invalid {name}: {value}; it must be >= 0")


def check_fraction(name: str, value: float | Tensor, *, one_allowed: bool) -> None:
    """``value`` in [0, 1) (or [0, 1] where ``one_allowed``): a decay rate of a running average."""
    if one_allowed and not 0.0 <= value <= 1.0:
        raise OptimizerArgumentError(f"Invalid {name}: {value}; it must be in [0, 1]")
    if not one_allowed and not 0.0 <= value < 1.0:
        raise OptimizerArgumentError(f"Invalid {name}: {value}; it must be in [0, 1)")


def as_float(value: float | Tensor) -> float:
    """A hyperparameter as a Python number (torch.optim also accepts a one-element tensor lr)."""
    return value.item() if isinstance(value, Tensor) else float(value)


def new_step_counter() -> Tensor:
    """A per-parameter step count, kept as a CPU tensor like torch.optim's ``state["step"]``.

    float64 rather than torch's float32: float32 stops counting at 2**24 (16.7M steps).
    """
    return torch.zeros((), dtype=torch.float64)


class CurriculumOptimizer(Optimizer):
    """``torch.optim.Optimizer`` plus the ``step`` skeleton shared by every optimizer here.

    A subclass implements ``_update_group(group, params, grads)``: one update of the
    parameters of one group that have a gradient this step.
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A checkpoint written before a hyperparameter existed (or by another library)
        # keeps the value this optimizer was built with.
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # Parameters without a gradient (frozen, unused this step) are skipped: their
            # state, step count included, does not move.
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for param, grad in zip(params, grads):
                if grad.is_sparse:
                    raise RuntimeError(
                        f"{type(self).__name__} does not support sparse gradients; use dense gradients "
                        "(for example nn.Embedding(..., sparse=False)) or torch.optim.SparseAdam"
                    )
                if param.is_complex():  # g * g would not be |g|^2: refuse rather than be wrong
                    raise RuntimeError(
                        f"{type(self).__name__} does not support complex parameters; optimize "
                        "torch.view_as_real(param) instead, or use torch.optim"
                    )
            self._update_group(group, params, grads)
        return loss

    @abc.abstractmethod
    def _update_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        """Apply one step of this optimizer to a parameter group's tensors that have gradients."""

    @staticmethod
    def _use_foreach(group: dict[str, Any]) -> bool:
        # foreach=None (the default) takes the multi-tensor path; foreach=False the loop.
        return group["foreach"] is not False


# On a CPU a foreach op is a loop over the list's tensors, one kernel each, so its speed
# comes from the cache: feeding the ops slices of about 1M values lets each op find the
# previous op's output still in cache instead of streaming the whole model through memory
# once per op (measured on ResNet-50: 30 ms per SGD step for the whole list, 19 ms in slices).
# On a GPU one launch per op covers the whole list.
CPU_SLICE_NUMEL = 1 << 20


def foreach_slices(params: list[Tensor]) -> list[slice]:
    """Consecutive slices of the parameter list to run the foreach ops on, one after another."""
    if not params or params[0].device.type != "cpu":
        return [slice(0, len(params))]
    slices, start, numel = [], 0, 0
    for i, param in enumerate(params):
        numel += param.numel()
        if numel >= CPU_SLICE_NUMEL:
            slices.append(slice(start, i + 1))
            start, numel = i + 1, 0
    if start < len(params):
        slices.append(slice(start, len(params)))
    return slices


def run_foreach(update: Callable[..., None], params: list[Tensor], *lists: list[Any], **hyperparameters: Any) -> None:
    """``update(params, *lists, **hyperparameters)`` on each of ``foreach_slices(params)``.

    A list that is empty (state an option does not use, such as AMSGrad's maxima) stays empty;
    entries that ``update`` sets in its slice of a list (new momentum buffers) are copied back.
    """
    for part in foreach_slices(params):
        sliced = [values[part] for values in lists]
        update(params[part], *sliced, **hyperparameters)
        for values, values_part in zip(lists, sliced):
            values[part] = values_part


def advance_step_counters(steps: list[Tensor]) -> list[float]:
    """Add one to each counter (one kernel for the list); the new counts as Python numbers."""
    torch._foreach_add_(steps, 1.0)
    return [step.item() for step in steps]
