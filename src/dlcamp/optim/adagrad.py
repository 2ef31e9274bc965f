"""Adagrad: a learning rate per coordinate, shrinking with that coordinate's gradient history.

From Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
Stochastic Optimization" (JMLR 12, 2011). Each weight divides its step by the root of the
sum of all its past squared gradients. Weights with large or frequent gradients slow
down; rarely-active ones (a word seen once in a corpus, a sparse feature) keep large
steps. The sum only grows, so every step size decays like ``1 / sqrt(t)``: good for
convex problems, often too fast a decay for deep networks (which RMSprop, Adadelta and
Adam answer with a moving average instead of a sum).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from dlcamp.optim._common import (
    CurriculumOptimizer,
    advance_step_counters,
    as_float,
    check_at_least_zero,
    new_step_counter,
    run_foreach,
)


class Adagrad(CurriculumOptimizer):
    """Adagrad (Duchi et al. 2011): each coordinate's step divided by the root of its summed squared gradients."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
    ) -> None:
        check_at_least_zero("learning rate", lr)
        check_at_least_zero("lr_decay value", lr_decay)
        check_at_least_zero("weight_decay value", weight_decay)
        check_at_least_zero("initial_accumulator_value value", initial_accumulator_value)
        check_at_least_zero("epsilon value", eps)
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            eps=eps,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)
        # Like torch.optim, the state exists from the start (the accumulator starts at
        # initial_accumulator_value, not zero), so a fresh optimizer's state_dict holds it.
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> None:
        state = self.state[p]
        if not state:
            state["step"] = new_step_counter()
            state["sum"] = torch.full_like(p, group["initial_accumulator_value"], memory_format=torch.preserve_format)

    def _update_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        for p in params:  # parameters added later with add_param_group
            self._init_state(p, group)
        lists = (params, grads, [self.state[p]["step"] for p in params], [self.state[p]["sum"] for p in params])
        hyperparameters = dict(
            lr=as_float(group["lr"]),
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )
        if self._use_foreach(group):
            run_foreach(_foreach_adagrad, *lists, **hyperparameters)
        else:
            _loop_adagrad(*lists, **hyperparameters)


def _loop_adagrad(
    params: list[Tensor],
    grads: list[Tensor],
    steps: list[Tensor],
    sums: list[Tensor],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """One Adagrad step, one parameter at a time."""
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        steps[i] += 1
        t = steps[i].item()
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)  # L2 penalty in the gradient
        # An optional global decay on top of the per-coordinate one: lr / (1 + (t - 1) * decay).
        decayed_lr = lr / (1 + (t - 1) * lr_decay)
        sums[i].addcmul_(grad, grad, value=1)  # G = G + g^2, summed over all steps so far
        std = sums[i].sqrt().add_(eps)  # eps outside the root keeps the first step finite
        param.addcdiv_(grad, std, value=-decayed_lr)  # theta -= lr_t * g / (sqrt(G) + eps)


def _foreach_adagrad(
    params: list[Tensor],
    grads: list[Tensor],
    steps: list[Tensor],
    sums: list[Tensor],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """The same step as ``_loop_adagrad`` with one multi-tensor op per line."""
    if maximize:
        grads = torch._foreach_neg(grads)  # ``grads`` belong to autograd: never update them in place
    ts = advance_step_counters(steps)
    if weight_decay != 0:
        if maximize:  # grads is already our copy
            torch._foreach_add_(grads, params, alpha=weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    step_sizes = [-lr / (1 + (t - 1) * lr_decay) for t in ts]
    torch._foreach_addcmul_(sums, grads, grads, 1)
    stds = torch._foreach_sqrt(sums)
    torch._foreach_add_(stds, eps)
    torch._foreach_addcdiv_(params, grads, stds, step_sizes)
