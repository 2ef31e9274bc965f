"""RMSprop: divide each step by a running root-mean-square of recent gradients.

From Tieleman & Hinton, "Lecture 6.5 - rmsprop: Divide the gradient by a running average
of its recent magnitude" (COURSERA: Neural Networks for Machine Learning, 2012). Adagrad's
sum of squared gradients becomes an exponential moving average ``v`` (decay ``alpha``), so
the scale tracks the recent gradient rather than all of history and steps do not shrink
to nothing. The centered variant (Graves, "Generating Sequences With Recurrent Neural
Networks", 2013, arXiv:1308.0850) also tracks the mean gradient ``g_avg`` and divides by an
estimate of the standard deviation, ``sqrt(v - g_avg^2)``, instead of the raw RMS.
Momentum, when on, accumulates the scaled steps ``g / (sqrt(v) + eps)``.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from dlcamp.optim._common import (
    CurriculumOptimizer,
    as_float,
    check_at_least_zero,
    new_step_counter,
    run_foreach,
)


class RMSprop(CurriculumOptimizer):
    """RMSprop (Tieleman & Hinton 2012): steps divided by a moving RMS of the gradient; centered, momentum."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        # torch.optim takes ``capturable`` positionally before these; keyword-only here, so
        # a positional call written for torch fails loudly instead of shifting arguments.
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        check_at_least_zero("learning rate", lr)
        check_at_least_zero("epsilon value", eps)
        check_at_least_zero("momentum value", momentum)
        check_at_least_zero("weight_decay value", weight_decay)
        check_at_least_zero("alpha value", alpha)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            alpha=alpha,
            eps=eps,
            centered=centered,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        steps, square_avgs, grad_avgs, momentum_buffers = [], [], [], []
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = new_step_counter()
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["momentum"] > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["centered"] and "grad_avg" not in state:
                state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            steps.append(state["step"])
            square_avgs.append(state["square_avg"])
            if group["momentum"] > 0:
                momentum_buffers.append(state["momentum_buffer"])
            if group["centered"]:
                grad_avgs.append(state["grad_avg"])
        lists = (params, grads, steps, square_avgs, grad_avgs, momentum_buffers)
        hyperparameters = dict(
            lr=as_float(group["lr"]),
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            centered=group["centered"],
            maximize=group["maximize"],
        )
        if self._use_foreach(group):
            run_foreach(_foreach_rmsprop, *lists, **hyperparameters)
        else:
            _loop_rmsprop(*lists, **hyperparameters)


def _loop_rmsprop(
    params: list[Tensor],
    grads: list[Tensor],
    steps: list[Tensor],
    square_avgs: list[Tensor],
    grad_avgs: list[Tensor],
    momentum_buffers: list[Tensor],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """One RMSprop step, one parameter at a time."""
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        steps[i] += 1  # kept for the state's format; RMSprop's maths never reads it
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        square_avg = square_avgs[i]
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)  # v = alpha * v + (1 - alpha) * g^2
        if centered:
            grad_avgs[i].lerp_(grad, 1 - alpha)  # g_avg = alpha * g_avg + (1 - alpha) * g
            # Var[g] = E[g^2] - E[g]^2: scale by the gradient's spread, not its raw size.
            avg = square_avg.addcmul(grad_avgs[i], grad_avgs[i], value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(eps)  # eps after the root (TensorFlow adds it inside)
        if momentum > 0:
            buffer = momentum_buffers[i]
            buffer.mul_(momentum).addcdiv_(grad, avg)  # b = mu * b + g / (sqrt(v) + eps)
            param.add_(buffer, alpha=-lr)
        else:
            param.addcdiv_(grad, avg, value=-lr)


def _foreach_rmsprop(
    params: list[Tensor],
    grads: list[Tensor],
    steps: list[Tensor],
    square_avgs: list[Tensor],
    grad_avgs: list[Tensor],
    momentum_buffers: list[Tensor],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """The same step as ``_loop_rmsprop`` with one multi-tensor op per line."""
    if maximize:
        grads = torch._foreach_neg(grads)  # ``grads`` belong to autograd: never update them in place
    torch._foreach_add_(steps, 1.0)
    if weight_decay != 0:
        if maximize:  # grads is already our copy
            torch._foreach_add_(grads, params, alpha=weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_mul_(square_avgs, alpha)
    torch._foreach_addcmul_(square_avgs, grads, grads, 1 - alpha)
    if centered:
        torch._foreach_lerp_(grad_avgs, grads, 1 - alpha)
        avgs = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, -1)
        torch._foreach_sqrt_(avgs)
    else:
        avgs = torch._foreach_sqrt(square_avgs)
    torch._foreach_add_(avgs, eps)
    if momentum > 0:
        torch._foreach_mul_(momentum_buffers, momentum)
        torch._foreach_addcdiv_(momentum_buffers, grads, avgs)
        torch._foreach_add_(params, momentum_buffers, alpha=-lr)
    else:
        torch._foreach_addcdiv_(params, grads, avgs, -lr)
