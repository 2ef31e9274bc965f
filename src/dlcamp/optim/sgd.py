"""Stochastic gradient descent, with momentum and Nesterov momentum.

Plain SGD steps against the gradient: ``theta <- theta - lr * g``. Momentum (Polyak, 1964)
keeps a running sum of past gradients, ``b <- mu * b + (1 - dampening) * g``, and steps
along it: directions that agree from step to step build up speed, directions that flip
sign cancel out, so the walk down a narrow valley stops zig-zagging across it.

Nesterov momentum, as Sutskever, Martens, Dahl & Hinton use it in "On the importance of
initialization and momentum in deep learning" (ICML 2013), looks one step ahead: it steps
along ``g + mu * b``, the gradient plus where the momentum is about to carry the weights.

Like torch.optim (and unlike the paper), the learning rate multiplies the buffer rather
than being folded into it, and the buffer starts as the first gradient itself (so
dampening first applies at the second step).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from dlcamp.optim._common import (
    CurriculumOptimizer,
    OptimizerArgumentError,
    as_float,
    check_at_least_zero,
    run_foreach,
)


class SGD(CurriculumOptimizer):
    """SGD: stochastic gradient descent with momentum, Nesterov momentum (Sutskever et al. 2013), L2 decay."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        check_at_least_zero("learning rate", lr)
        check_at_least_zero("momentum value", momentum)
        check_at_least_zero("weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise OptimizerArgumentError(
                f"Nesterov momentum requires a momentum and zero dampening (got momentum={momentum}, "
                f"dampening={dampening})"
            )
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        # None until a parameter's first step with momentum: the buffer starts as that gradient.
        buffers = [self.state[p].get("momentum_buffer") for p in params]
        hyperparameters = dict(
            lr=as_float(group["lr"]),
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
        )
        if self._use_foreach(group):
            run_foreach(_foreach_sgd, params, grads, buffers, **hyperparameters)
        else:
            _loop_sgd(params, grads, buffers, **hyperparameters)
        if group["momentum"] != 0:
            for p, buffer in zip(params, buffers):
                self.state[p]["momentum_buffer"] = buffer


def _loop_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    buffers: list[Tensor | None],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    """One SGD step, one parameter at a time; fills ``buffers`` where they were None."""
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]  # ascend: step along +gradient
        if weight_decay != 0:
            # L2 penalty (wd / 2) * |theta|^2 folded into the gradient.
            grad = grad.add(param, alpha=weight_decay)
        if momentum != 0:
            buffer = buffers[i]
            if buffer is None:
                buffer = buffers[i] = grad.clone()
            else:
                buffer.mul_(momentum).add_(grad, alpha=1 - dampening)  # b = mu * b + (1 - tau) * g
            # Nesterov: the gradient plus the momentum's look-ahead; classical: the buffer itself.
            grad = grad.add(buffer, alpha=momentum) if nesterov else buffer
        param.add_(grad, alpha=-lr)


def _foreach_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    buffers: list[Tensor | None],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    """The same step as ``_loop_sgd`` on whole lists, without materialising ``g + wd * theta``.

    The weight-decay term is distributed instead, ``-lr * (g + wd * theta) = -lr * g - lr * wd * theta``,
    which saves a temporary copy of every gradient (equal up to rounding).
    """
    if maximize:
        grads = torch._foreach_neg(grads)  # ``grads`` belong to autograd: never update them in place

    if momentum == 0:
        if weight_decay != 0:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        torch._foreach_add_(params, grads, alpha=-lr)
        return

    running = [i for i, buffer in enumerate(buffers) if buffer is not None]
    if running:  # b = mu * b + (1 - tau) * g + (1 - tau) * wd * theta
        running_buffers = [buffers[i] for i in running]
        torch._foreach_mul_(running_buffers, momentum)
        torch._foreach_add_(running_buffers, [grads[i] for i in running], alpha=1 - dampening)
        if weight_decay != 0:
            running_params = [params[i] for i in running]
            torch._foreach_add_(running_buffers, running_params, alpha=(1 - dampening) * weight_decay)
    fresh = [i for i, buffer in enumerate(buffers) if buffer is None]
    if fresh:  # b = g + wd * theta, undamped
        fresh_grads = [grads[i] for i in fresh]
        if weight_decay != 0:
            fresh_buffers = torch._foreach_add(fresh_grads, [params[i] for i in fresh], alpha=weight_decay)
        else:
            fresh_buffers = [grad.clone() for grad in fresh_grads]
        for i, buffer in zip(fresh, fresh_buffers):
            buffers[i] = buffer

    if nesterov:  # theta -= lr * (g + wd * theta + mu * b)
        if weight_decay != 0:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        torch._foreach_add_(params, grads, alpha=-lr)
        torch._foreach_add_(params, buffers, alpha=-lr * momentum)
    else:  # theta -= lr * b
        torch._foreach_add_(params, buffers, alpha=-lr)
