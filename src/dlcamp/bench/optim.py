"""Benchmark: each optimizer's ``step()`` time, ours against torch.optim's, on ResNet-50's parameters.

Both optimizers get the same hyperparameters, identical parameters (161 float32 tensors
of ResNet-50's shapes, 25.6M values) and the same random gradients. torch.optim is built
with its default arguments, so it picks its own implementation (on CUDA the multi-tensor
``foreach`` one; on CPU its per-parameter loop); ours runs its default ``foreach`` path.
Steps are timed alternately (ours then torch, torch then ours, ...) so that drifts in the
machine's speed hit both; each figure is the median over ``repeats`` after ``warmup``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import torch

from dlcamp.bench import register_benchmark
from dlcamp.bench.machine import describe_machine, synchronize
from dlcamp.optim import get_optimizer_class

GOAL_RATIO = 1.5  # ours may take at most 1.5x torch.optim's time per step

# Typical settings for each optimizer (the same for ours and torch's).
SETTINGS: dict[str, dict[str, Any]] = {
    "sgd": dict(lr=0.1, momentum=0.9, weight_decay=1e-4),  # ResNet's ImageNet recipe
    "adagrad": dict(lr=1e-2),
    "adadelta": dict(lr=1.0),
    "rmsprop": dict(lr=1e-2, momentum=0.9),
    "adam": dict(lr=1e-3),
    "adamw": dict(lr=1e-3, weight_decay=1e-2),
}

REFERENCES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def resnet50_shapes() -> list[torch.Size]:
    """The shapes of ResNet-50's 161 parameter tensors (built on the meta device: no memory, no init)."""
    from torchvision.models import resnet50

    with torch.device("meta"):
        model = resnet50()
    return [p.shape for p in model.parameters()]


@register_benchmark("optim")
def optim(
    *,
    repeats: int = 20,
    warmup: int = 3,
    names: list[str] | None = None,
    shapes: Sequence[Sequence[int]] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Each optimizer's step time against torch.optim's default implementation on ResNet-50-sized parameter lists."""
    names = list(SETTINGS) if names is None else names
    for name in names:
        get_optimizer_class(name)  # an unknown name fails here, before any timing
    shapes = resnet50_shapes() if shapes is None else [torch.Size(s) for s in shapes]
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    rows = []
    for name in names:
        ours_ms, torch_ms = _time_both(name, shapes, target, repeats=repeats, warmup=warmup)
        ratio = ours_ms / torch_ms
        rows.append(
            {
                "optimizer": name,
                "settings": ", ".join(f"{k}={v}" for k, v in SETTINGS.get(name, {}).items()),
                "ours_ms": round(ours_ms, 3),
                "torch_ms": round(torch_ms, 3),
                "ratio": round(ratio, 3),
                "meets_goal": ratio <= GOAL_RATIO,
            }
        )
    return {
        "title": f"Optimizer step on ResNet-50's parameters ({len(shapes)} tensors, "
        f"{sum(s.numel() for s in shapes) / 1e6:.1f}M float32): ours vs torch.optim",
        "rows": rows,
        "machine": describe_machine(target),
        "torch": torch.__version__,
        "device": str(target),
        "goal": f"ratio <= {GOAL_RATIO}",
        "repeats": repeats,
        "warmup": warmup,
        "notes": [
            f"machine: {describe_machine(target)}; torch {torch.__version__}",
            "ours: dlcamp.optim with default arguments (foreach path); reference: torch.optim with default "
            "arguments (its for-loop implementation on CPU, foreach on CUDA)",
            f"median step time of {repeats} steps after {warmup} warm-up steps, ours and torch's alternating; "
            f"goal: ratio <= {GOAL_RATIO}",
        ],
    }


def _time_both(
    name: str, shapes: list[torch.Size], device: torch.device, *, repeats: int, warmup: int
) -> tuple[float, float]:
    """Median step time in ms of ours and of torch.optim's, timed alternately on the same inputs."""
    generator = torch.Generator().manual_seed(0)
    initial = [torch.randn(shape, generator=generator).to(device) for shape in shapes]
    grads = [torch.randn(shape, generator=generator).to(device) for shape in shapes]
    ours_params = [torch.nn.Parameter(t.clone()) for t in initial]
    torch_params = [torch.nn.Parameter(t.clone()) for t in initial]
    del initial
    # Both read the same gradient tensors; neither optimizer writes to them.
    for p, g in zip(ours_params + torch_params, grads + grads):
        p.grad = g
    settings = SETTINGS.get(name, {})
    ours = get_optimizer_class(name)(ours_params, **settings)
    reference = REFERENCES[name](torch_params, **settings)

    ours_times, torch_times = [], []
    for i in range(warmup + repeats):
        first, second = (ours, reference) if i % 2 == 0 else (reference, ours)
        first_ms, second_ms = _time_step(first, device), _time_step(second, device)
        if i >= warmup:
            ours_times.append(first_ms if first is ours else second_ms)
            torch_times.append(second_ms if first is ours else first_ms)
    return statistics.median(ours_times), statistics.median(torch_times)


def _time_step(optimizer: torch.optim.Optimizer, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    optimizer.step()
    synchronize(device)
    return (time.perf_counter() - start) * 1e3
