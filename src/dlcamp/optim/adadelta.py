"""Adadelta: Adagrad's per-coordinate scaling with a forgetting average and no learning rate.

From Zeiler, "ADADELTA: An Adaptive Learning Rate Method" (2012, arXiv:1212.5701).
Two fixes to Adagrad: the sum of squared gradients becomes a moving average ``v`` (decay
``rho``), so step sizes stop shrinking forever; and the step is multiplied by the RMS of
recent *updates* ``u``, so ``sqrt(u + eps) / sqrt(v + eps) * g`` has the units of the
weights themselves (Zeiler's second-order argument: Newton's step ``g / H`` has units of
theta, and ``delta_theta / g`` approximates ``1 / H``). In the paper there is no learning
rate at all; torch.optim (and so this file) keeps a multiplier ``lr``, default 1.0.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from dlcamp.optim._common import (
    CurriculumOptimizer,
    as_float,
    check_at_least_zero,
    check_fraction,
    new_step_counter,
    run_foreach,
)


class Adadelta(CurriculumOptimizer):
    """Adadelta (Zeiler 2012): steps scaled by the ratio of recent update RMS to recent gradient RMS."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
    ) -> None:
        check_at_least_zero("learning rate", lr)
        check_fraction("rho value", rho, one_allowed=True)
        check_at_least_zero("epsilon value", eps)
        check_at_least_zero("weight_decay value", weight_decay)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, foreach=foreach, maximize=maximize)
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = new_step_counter()
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["acc_delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        lists = (
            params,
            grads,
            [self.state[p]["step"] for p in params],
            [self.state[p]["square_avg"] for p in params],
            [self.state[p]["acc_delta"] for p in params],
        )
        hyperparameters = dict(
            lr=as_float(group["lr"]),
            rho=group["rho"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        if self._use_foreach(group):
            run_foreach(_foreach_adadelta, *lists, **hyperparameters)
        else:
            _loop_adadelta(*lists, **hyperparameters)


def _loop_adadelta(
    params: list[Tensor],
    grads: list[Tensor],
    steps: list[Tensor],
    square_avgs: list[Tensor],
    acc_deltas: list[Tensor],
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Adadelta step, one parameter at a time."""
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        steps[i] += 1  # kept for the state's format; Adadelta's maths never reads it
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        square_avg, acc_delta = square_avgs[i], acc_deltas[i]
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)  # v = rho * v + (1 - rho) * g^2
        std = square_avg.add(eps).sqrt_()  # RMS[g]
        # delta = RMS[delta]_{t-1} / RMS[g]_t * g: the previous updates' scale, not this step's.
        delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)  # u = rho * u + (1 - rho) * delta^2
        param.add_(delta, alpha=-lr)


def _foreach_adadelta(
    params: list[Tensor],
    grads: list[Tensor],
    steps: list[Tensor],
    square_avgs: list[Tensor],
    acc_deltas: list[Tensor],
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """The same step as ``_loop_adadelta`` on whole lists, with one square root instead of two."""
    if maximize:
        grads = torch._foreach_neg(grads)  # ``grads`` belong to autograd: never update them in place
    torch._foreach_add_(steps, 1.0)
    if weight_decay != 0:
        if maximize:  # grads is already our copy
            torch._foreach_add_(grads, params, alpha=weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_mul_(square_avgs, rho)
    torch._foreach_addcmul_(square_avgs, grads, grads, 1 - rho)
    # sqrt(u + eps) / sqrt(v + eps) = sqrt((u + eps) / (v + eps)): one pass fewer.
    deltas = torch._foreach_add(acc_deltas, eps)
    torch._foreach_div_(deltas, torch._foreach_add(square_avgs, eps))
    torch._foreach_sqrt_(deltas)
    torch._foreach_mul_(deltas, grads)
    torch._foreach_mul_(acc_deltas, rho)
    torch._foreach_addcmul_(acc_deltas, deltas, deltas, 1 - rho)
    torch._foreach_add_(params, deltas, alpha=-lr)
