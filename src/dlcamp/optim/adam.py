"""Adam and AdamW: per-coordinate steps scaled by running moments of the gradient.

Adam, from Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015,
arXiv:1412.6980), keeps two exponential moving averages per weight: ``m`` of the gradient
(momentum) and ``v`` of its square (its scale). The step is ``lr * m / sqrt(v)``: about
``lr`` in size whatever the gradient's units, smaller where the gradient is noisy
(``v`` large compared with ``m**2``), so one learning rate suits every layer.

AMSGrad (Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018) divides
by the largest ``v`` seen so far instead, so a weight's step size can never grow back.

AdamW, from Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019,
arXiv:1711.05101), shrinks the weights directly, ``theta <- theta * (1 - lr * wd)``, instead
of adding ``wd * theta`` to the gradient. In Adam an L2 term in the gradient passes through
the ``1 / sqrt(v)`` scaling, so weights with large gradients are barely regularised; the
decoupled decay shrinks every weight at the same relative rate, as in plain SGD.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import Tensor

from dlcamp.optim._common import (
    CurriculumOptimizer,
    advance_step_counters,
    as_float,
    check_at_least_zero,
    check_fraction,
    new_step_counter,
    run_foreach,
)


class Adam(CurriculumOptimizer):
    """Adam (Kingma & Ba 2015): steps scaled by bias-corrected moments of the gradient; AMSGrad option."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_at_least_zero("learning rate", lr)
        check_at_least_zero("epsilon value", eps)
        check_fraction("beta parameter at index 0", betas[0], one_allowed=False)
        check_fraction("beta parameter at index 1", betas[1], one_allowed=False)
        check_at_least_zero("weight_decay value", weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=foreach,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs = [], [], [], []
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = new_step_counter()
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["amsgrad"] and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            steps.append(state["step"])
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            if group["amsgrad"]:
                max_exp_avg_sqs.append(state["max_exp_avg_sq"])
        beta1, beta2 = group["betas"]
        hyperparameters = dict(
            lr=as_float(group["lr"]),
            beta1=as_float(beta1),
            beta2=as_float(beta2),
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            amsgrad=group["amsgrad"],
            maximize=group["maximize"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )
        lists = (params, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs)
        if self._use_foreach(group):
            run_foreach(_foreach_adam, *lists, **hyperparameters)
        else:
            _loop_adam(*lists, **hyperparameters)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019): Adam with weight decay applied to the weights, not the gradient."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
            decoupled_weight_decay=True,
        )


def _loop_adam(
    params: list[Tensor],
    grads: list[Tensor],
    steps: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """One Adam/AdamW step, one parameter at a time."""
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        exp_avg, exp_avg_sq = exp_avgs[i], exp_avg_sqs[i]
        steps[i] += 1
        t = steps[i].item()

        if weight_decay != 0:
            if decoupled_weight_decay:
                param.mul_(1 - lr * weight_decay)  # AdamW: shrink theta itself, outside m and v
            else:
                grad = grad.add(param, alpha=weight_decay)  # Adam: L2 penalty in the gradient

        exp_avg.lerp_(grad, 1 - beta1)  # m = beta1 * m + (1 - beta1) * g
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # v = beta2 * v + (1 - beta2) * g^2

        # m and v start at zero, so early on they are biased towards zero: after t steps of a
        # constant gradient g, m = (1 - beta1^t) * g. Dividing by (1 - beta^t) removes the bias;
        # without it the first steps of v (beta2 = 0.999) would be tiny and the step huge.
        bias_correction1 = 1 - beta1**t
        bias_correction2 = 1 - beta2**t
        if amsgrad:
            torch.maximum(max_exp_avg_sqs[i], exp_avg_sq, out=max_exp_avg_sqs[i])
            exp_avg_sq = max_exp_avg_sqs[i]
        # theta -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m / bc1 and v_hat = v / bc2.
        denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)


def _foreach_adam(
    params: list[Tensor],
    grads: list[Tensor],
    steps: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """The same step as ``_loop_adam`` on whole lists, with the bias corrections folded into scalars."""
    if maximize:
        grads = torch._foreach_neg(grads)  # ``grads`` belong to autograd: never update them in place
    ts = advance_step_counters(steps)

    if weight_decay != 0:
        if decoupled_weight_decay:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        elif maximize:  # grads is already our copy
            torch._foreach_add_(grads, params, alpha=weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)

    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    if amsgrad:
        torch._foreach_maximum_(max_exp_avg_sqs, exp_avg_sqs)
    denoms = torch._foreach_sqrt(max_exp_avg_sqs if amsgrad else exp_avg_sqs)

    # lr * (m / bc1) / (sqrt(v / bc2) + eps) = (lr * sqrt(bc2) / bc1) * m / (sqrt(v) + eps * sqrt(bc2)):
    # the corrections move into two scalars per tensor, saving a pass over the denominators.
    # One scalar per tensor, as parameters skipped on some steps (grad None) count their own steps.
    bias_correction2_sqrts = [math.sqrt(1 - beta2**t) for t in ts]
    torch._foreach_add_(denoms, [eps * c2 for c2 in bias_correction2_sqrts])
    step_sizes = [-lr * c2 / (1 - beta1**t) for t, c2 in zip(ts, bias_correction2_sqrts)]
    torch._foreach_addcdiv_(params, exp_avgs, denoms, step_sizes)
