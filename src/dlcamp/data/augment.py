"""Augmentation from recipe specs, built from torchvision.transforms.v2.

A recipe lists augmentations as specs, one dict per transform, naming a class of
``torchvision.transforms.v2`` and its keyword arguments::

    augment:
      - {name: RandomAffine, degrees: 10, translate: [0.1, 0.1]}
      - {name: RandomApply, p: 0.5, transforms: [{name: GaussianBlur, kernel_size: 3}]}

``build_augment(specs)`` turns the list into one callable on an image Tensor[C, H, W] in
[0, 1]. Data modules run it inside the per-sample seeded transform hook of
``dlcamp.data.module`` (``InputTransform`` below), so every random draw is a function of
(seed, epoch, index): reproducible and independent of the number of workers.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

import torch
from torchvision.transforms import v2

from dlcamp.errors import UsageError
from dlcamp.registry import check_kwargs


def available_transforms() -> dict[str, type[v2.Transform]]:
    """Name -> class of every concrete ``v2.Transform`` that a spec may name."""
    return {
        name: cls
        for name, cls in vars(v2).items()
        if isinstance(cls, type) and issubclass(cls, v2.Transform) and cls is not v2.Transform
    }


def build_augment(specs: list[dict] | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """One transform from a list of specs ``{"name": "RandomAffine", **kwargs}``; None for none.

    Raises ``UsageError`` (one line, naming the spec) for an unknown name, a name that is not
    a ``v2.Transform``, or arguments the transform refuses.
    """
    if not specs:
        return None
    if not isinstance(specs, (list, tuple)):
        raise UsageError(f"data.augment must be a list of {{name: ..., ...}} specs, got {specs!r}")
    transforms = [_build_one(spec, f"augment[{i}]") for i, spec in enumerate(specs)]
    return transforms[0] if len(transforms) == 1 else v2.Compose(transforms)


def _build_one(spec: Any, where: str) -> v2.Transform:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise UsageError(f"{where} must be a dict with a 'name' naming a torchvision.transforms.v2 class, got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    name = spec["name"]
    known = available_transforms()
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.transforms.v2 for the names"
        raise UsageError(f"{where}: unknown transform {name!r}; {hint}")
    # Containers (Compose, RandomApply, RandomChoice, RandomOrder) take nested specs.
    if isinstance(kwargs.get("transforms"), list):
        kwargs["transforms"] = [_build_one(s, f"{where}.transforms[{j}]") for j, s in enumerate(kwargs["transforms"])]
    cls = known[name]
    check_kwargs(cls, kwargs, f"{where} {name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        detail = " ".join(str(err).split())  # one line, whatever torchvision wrote
        raise UsageError(f"{where}: {name}({_show(kwargs)}) is refused: {detail}") from None


def _show(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


class InputTransform:
    """A per-sample ``(x, y) -> (x, y)`` transform applying ``steps`` to the input in order.

    A class rather than a lambda so that data modules stay picklable (DataLoader workers
    started with "spawn"). ``None`` steps are dropped.
    """

    def __init__(self, *steps: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        self.steps = [step for step in steps if step is not None]

    def __call__(self, x: torch.Tensor, y: Any) -> tuple[torch.Tensor, Any]:
        for step in self.steps:
            x = step(x)
        return x, y

    def __repr__(self) -> str:
        return f"InputTransform({', '.join(map(repr, self.steps))})"


def input_transform(*steps: Callable[[torch.Tensor], torch.Tensor] | None) -> InputTransform | None:
    """``InputTransform(*steps)``, or None when every step is None (no per-sample work)."""
    transform = InputTransform(*steps)
    return transform if transform.steps else None
