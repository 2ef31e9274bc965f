"""From a recipe's ``optim:`` section to optimizers: one spec or one per named parameter group.

``optim:`` is either one optimizer spec (the shorthand: every trained parameter, one
optimizer) or a mapping of named specs, one per parameter group that the model or task
declares::

    optim: {name: adamw, lr: 3.0e-4, weight_decay: 0.05, no_decay: true, schedule: {name: cosine}}

    optim:
      generator: {name: adam, lr: 2.0e-4, betas: [0.5, 0.999]}
      discriminator: {name: adam, lr: 2.0e-4, betas: [0.5, 0.999], schedule: {name: linear}}

``no_decay: true`` keeps biases, normalisation parameters, embeddings and learned tokens
out of weight decay: decaying them pulls a layer's scale or a token's position towards 0
for no gain in generalisation (the usual practice for Transformers since BERT; Loshchilov
& Hutter's AdamW paper decays the weight matrices only).

A phase (``Phase``) says which groups train for a share of the run, whether the optimizers
forget their moments when it starts, and whether the schedule starts again: Faster
R-CNN's four-step training (Ren et al. 2015, section 3.2) is four phases.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import torch
import torch.nn as nn

SPEC_KEYS = ("name", "schedule", "no_decay")  # what a spec holds besides the optimizer's own arguments
# Parameters a learned embedding or token holds: never decayed under no_decay.
TOKEN_NAMES = ("cls_token", "class_token", "mask_token", "pos_embed", "position_embedding")


def is_multi(optim: dict[str, Any]) -> bool:
    """Whether ``optim`` is a mapping of named specs rather than one spec."""
    return "name" not in optim and bool(optim) and all(isinstance(v, dict) for v in optim.values())


def specs(optim: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Group name -> spec; the shorthand's single spec is named ``"all"`` (every trained parameter)."""
    return {k: dict(v) for k, v in optim.items()} if is_multi(optim) else {"all": dict(optim)}


def _embedding_types() -> tuple[type, ...]:
    from dlcamp.nn.positional import LearnedPositionalEmbedding

    return (nn.Embedding, LearnedPositionalEmbedding)


def decays(module: nn.Module, name: str, param: nn.Parameter) -> bool:
    """Whether ``no_decay`` keeps weight decay on this parameter: weight matrices and kernels only."""
    leaf = name.rsplit(".", 1)[-1]
    return param.ndim >= 2 and not isinstance(module, _embedding_types()) and leaf not in TOKEN_NAMES


def param_groups_for(
    modules: Iterable[nn.Module], *, no_decay: bool, weight_decay: float | None
) -> list[dict[str, Any]]:
    """The ``params`` argument of an optimizer over ``modules``' trainable-or-not parameters.

    Without ``no_decay``: one plain list (the optimizer's own ``weight_decay`` applies).
    With it: two named groups, ``decay`` and ``no_decay`` (weight decay 0).
    """
    seen: set[int] = set()
    decay, keep = [], []
    for top in modules:
        for mod_name, module in top.named_modules():
            for p_name, p in module.named_parameters(recurse=False):
                if id(p) in seen:
                    continue
                seen.add(id(p))
                (decay if not no_decay or decays(module, f"{mod_name}.{p_name}", p) else keep).append(p)
    if not no_decay:
        return decay
    groups = [{"params": decay, "name": "decay"}]
    if keep:
        groups.append({"params": keep, "name": "no_decay", "weight_decay": 0.0})
    return groups


def parameters_in_order(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
    """Every parameter of ``modules`` once, in registration order."""
    seen: set[int] = set()
    out = []
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def build_optimizer(spec: dict[str, Any], modules: list[nn.Module]) -> torch.optim.Optimizer:
    """An optimizer from one spec (``name``, its arguments, ``no_decay``) over ``modules``."""
    from dlcamp.optim import get_optimizer_class

    args = {k: v for k, v in spec.items() if k not in SPEC_KEYS}
    if spec.get("no_decay"):
        params: Any = param_groups_for(modules, no_decay=True, weight_decay=args.get("weight_decay"))
    else:
        params = parameters_in_order(modules)
    return get_optimizer_class(spec["name"])(params, **args)


@dataclasses.dataclass
class Phase:
    """One phase of a phased schedule: which parameter groups train, for what share of the steps."""

    name: str
    train: list[str]  # the groups that train; every other group is frozen (and in eval mode)
    share: float = 1.0  # relative length: the phases split the run's steps by these shares
    fresh_state: bool = True  # the optimizers forget their moments when the phase starts
    restart_schedule: bool = True  # the learning-rate schedule runs again from its start in this phase


def phase_bounds(phases: list[Phase], total_steps: int) -> list[int]:
    """Step at which each phase starts, and the total: [0, b1, ..., total]."""
    bounds, acc, whole = [0], 0.0, sum(p.share for p in phases)
    for p in phases:
        acc += p.share
        bounds.append(round(total_steps * acc / whole))
    return bounds


def phase_index(bounds: list[int], step: int) -> int:
    """The phase (0-based) that step ``step`` belongs to; the last phase after the end."""
    for k in range(len(bounds) - 1):
        if step < bounds[k + 1]:
            return k
    return len(bounds) - 2
