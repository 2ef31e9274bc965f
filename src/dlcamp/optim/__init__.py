"""Optimizers written here, as ``torch.optim.Optimizer`` subclasses with torch.optim's signatures.

Each one takes the same arguments, keeps the same state (``step``, ``exp_avg``, ...) and
computes the same numbers as its torch.optim namesake, which ``tests/optim`` checks in
float64, step by step. Each holds a readable per-parameter loop (``foreach=False``) and a
multi-tensor ``torch._foreach_*`` version (the default). By name::

    optimizer = get_optimizer_class("adamw")(model.parameters(), lr=3e-4)
"""

from __future__ import annotations

import torch

from dlcamp.optim._common import OptimizerArgumentError
from dlcamp.optim.adadelta import Adadelta
from dlcamp.optim.adagrad import Adagrad
from dlcamp.optim.adam import Adam, AdamW
from dlcamp.optim.rmsprop import RMSprop
from dlcamp.optim.sgd import SGD
from dlcamp.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")

for _name, _cls in {
    "sgd": SGD,
    "adagrad": Adagrad,
    "adadelta": Adadelta,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
}.items():
    OPTIMIZERS.register(_name)(_cls)


def get_optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The optimizer class registered as ``name`` ("sgd", "adam", ...); else ``UnknownNameError``."""
    return OPTIMIZERS.builder(name)


def list_optimizers() -> dict[str, str]:
    """Registered name -> one-line description."""
    return OPTIMIZERS.describe()


__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "OptimizerArgumentError",
    "RMSprop",
    "get_optimizer_class",
    "list_optimizers",
]
