"""Benchmark: a ResNet training step, ours against torchvision's, in the same run on the same inputs.

One training step is what a training loop does per batch: forward, cross-entropy,
backward, an SGD step (momentum 0.9, as ResNet's ImageNet recipe) and ``zero_grad``.
Both networks start from the same weights (torchvision's initialisation loaded into ours,
strict: the state dicts are the same), see the same images and labels, and use the same
optimizer (``torch.optim.SGD``), so the only difference left is the model code.

Each mode is a way of running both models:

* ``eager``: plain PyTorch, NCHW tensors;
* ``channels_last``: the model's weights and the images in NHWC memory format, which
  cuDNN (tensor cores) and oneDNN prefer for convolutions;
* ``compile``: ``torch.compile(model)`` in its default mode; the first (warm-up) step
  compiles the forward and backward graphs, and that cost is reported apart (inductor's
  caches are switched off so that both compilations start cold);
* ``channels_last+compile``: both.

Steps are timed alternately (ours then torchvision's, torchvision's then ours, ...) so
that drifts in the machine's speed hit both; each figure is the median step time after
``warmup`` steps. The figure of merit is the ratio of images/s, ours / torchvision's.

The first step of each mode also checks the comparison itself: from the same weights on
the same batch, both models must give the same loss and the same parameters afterwards.

On a GPU the comparison the issue asks for is bf16 with images/s, for example
``dlcamp bench resnet50 --set batch_size=128 --set steps=20 --set warmup=3 --set dtype=bfloat16``.
The defaults are sized for a 2-core CPU, where one ResNet-50 step on 8 images of 224x224
takes 4-10 s and each cold compilation about a minute: the default run takes 5-10 minutes.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.bench import register_benchmark
from dlcamp.bench.machine import describe_machine, synchronize
from dlcamp.errors import UsageError
from dlcamp.models import get_model

GOAL_RATIO = 0.95  # ours must reach at least 95% of torchvision's images/s
MODES = ("eager", "channels_last", "compile", "channels_last+compile")
DEFAULT_MODES = ("eager", "channels_last", "compile")
SGD_SETTINGS: dict[str, Any] = dict(lr=0.1, momentum=0.9, weight_decay=1e-4)  # ResNet's ImageNet recipe
NUM_CLASSES = 1000  # torchvision's ImageNet classifiers
# The ImageNet ResNets: ours load torchvision's state dicts as they are.
MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")

# (loss, parameter) absolute tolerances for "the same training step". In float32 both
# models run the same kernels in the same order, so they agree to rounding; under bf16
# autocast a different accumulation order can move the loss by a bf16 ulp (2^-8 relative).
TOLERANCES: dict[str, tuple[float, float]] = {"float32": (1e-5, 1e-5), "bfloat16": (1e-2, 1e-3)}
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class _Contender:
    """One side of the comparison: the module whose parameters train and what is called."""

    module: nn.Module  # the plain model: parameters, state dict
    step_fn: nn.Module  # the model itself, or torch.compile's wrapper around it
    optimizer: torch.optim.Optimizer


@register_benchmark("resnet50")
def resnet50(
    *,
    batch_size: int = 8,
    image_size: int = 224,
    steps: int = 3,
    warmup: int = 1,
    modes: list[str] | None = None,
    device: str = "auto",
    dtype: str = "float32",
    model: str = "resnet50",
) -> dict[str, Any]:
    """ResNet-50 training step (forward, loss, backward, SGD) against torchvision's: images/s per mode."""
    if isinstance(modes, str):  # `--set modes=eager,compile` on the command line
        modes = [mode.strip() for mode in modes.split(",")]
    modes = list(DEFAULT_MODES) if modes is None else list(modes)
    target = _resolve_device(device)
    _check_settings(
        batch_size=batch_size, image_size=image_size, steps=steps, warmup=warmup, modes=modes, dtype=dtype, model=model
    )
    autocast_dtype = None if dtype == "float32" else DTYPES[dtype]

    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.get_model(model, weights=None)
    ours = get_model(model)
    ours.load_state_dict(reference.state_dict(), strict=True)  # same keys, same shapes, same values
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, image_size, image_size, generator=generator)  # (B, 3, H, W)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator)  # (B,)

    rows, step_times_ms = [], {}
    for mode in modes:
        row, times = _measure_mode(
            mode,
            ours,
            reference,
            images,
            labels,
            device=target,
            autocast_dtype=autocast_dtype,
            steps=steps,
            warmup=warmup,
            tolerances=TOLERANCES[dtype],
        )
        rows.append(row)
        step_times_ms[mode] = {name: [round(t * 1e3, 1) for t in ts] for name, ts in times.items()}
    machine = describe_machine(target)
    loss_tol, param_tol = TOLERANCES[dtype]
    return {
        "title": f"{model} training step, batch {batch_size} of {image_size}x{image_size}, {dtype}, "
        f"{target}: ours vs torchvision",
        "rows": rows,
        "ok": all(row["same_loss"] and row["same_params"] for row in rows),
        "machine": machine,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(target),
        "dtype": dtype,
        "model": model,
        "batch_size": batch_size,
        "image_size": image_size,
        "steps": steps,
        "warmup": warmup,
        "goal": f"ratio >= {GOAL_RATIO}",
        "step_times_ms": step_times_ms,  # every step, warm-up included, in the order taken
        "notes": [
            f"machine: {machine}; torch {torch.__version__}, torchvision {torchvision.__version__}",
            f"settings: {model}, batch {batch_size}, {image_size}x{image_size} random images, {NUM_CLASSES} classes, "
            f"{dtype}{' autocast' if autocast_dtype is not None else ''}; one step = forward, cross-entropy, "
            f"backward, torch.optim.SGD ({_settings_text(SGD_SETTINGS)}), zero_grad",
            f"median step time of {steps} steps after {warmup} warm-up steps, ours and torchvision's alternating; "
            f"the figure of merit is the ratio of images/s, ours / torchvision (goal >= {GOAL_RATIO}); "
            "absolute images/s move with the machine's load",
            "compile: torch.compile default mode, inductor caches off (cold); compile_s = first step "
            "(compilation included) minus the median step",
            f"check: torchvision's initial weights loaded into ours (strict); after the first step of each mode "
            f"same_loss: |loss difference| <= {loss_tol:g}, same_params: every parameter and batch-norm "
            f"statistic within {param_tol:g}",
        ],
    }


def _measure_mode(
    mode: str,
    ours: nn.Module,
    reference: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    steps: int,
    warmup: int,
    tolerances: tuple[float, float],
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Train fresh copies of both models for ``warmup + steps`` alternating steps: the table row and
    each side's step times in seconds."""
    parts = set(mode.split("+"))
    compiled = "compile" in parts
    memory_format = torch.channels_last if "channels_last" in parts else torch.contiguous_format
    images = images.to(device).contiguous(memory_format=memory_format)
    labels = labels.to(device)
    contenders = {
        "ours": _contender(ours, device, memory_format, compiled),
        "torchvision": _contender(reference, device, memory_format, compiled),
    }

    times: dict[str, list[float]] = {name: [] for name in contenders}
    first_loss: dict[str, float] = {}
    with _cold_compile(device) if compiled else contextlib.nullcontext():
        for i in range(warmup + steps):
            order = ("ours", "torchvision") if i % 2 == 0 else ("torchvision", "ours")
            for name in order:
                seconds, loss = _timed_step(contenders[name], images, labels, device, autocast_dtype)
                times[name].append(seconds)
                if i == 0:
                    first_loss[name] = loss.item()
            if i == 0:  # both have taken exactly one step from the same weights on the same batch
                param_diff = _max_state_difference(contenders["ours"].module, contenders["torchvision"].module)
    if compiled:
        torch._dynamo.reset()  # drop the compiled graphs (and the models they hold)

    median = {name: statistics.median(t[warmup:]) for name, t in times.items()}
    ratio = median["torchvision"] / median["ours"]  # = ours images/s / torchvision images/s
    loss_diff = abs(first_loss["ours"] - first_loss["torchvision"])
    row: dict[str, Any] = {
        "mode": mode,
        "ours_img_s": round(images.shape[0] / median["ours"], 2),
        "torchvision_img_s": round(images.shape[0] / median["torchvision"], 2),
        "ratio": round(ratio, 3),
        "meets_goal": ratio >= GOAL_RATIO,
        "ours_ms": round(median["ours"] * 1e3, 1),
        "torchvision_ms": round(median["torchvision"] * 1e3, 1),
    }
    if compiled:
        row["ours_compile_s"] = round(times["ours"][0] - median["ours"], 1)
        row["torchvision_compile_s"] = round(times["torchvision"][0] - median["torchvision"], 1)
    row.update(
        loss_diff=float(f"{loss_diff:.3g}"),
        same_loss=loss_diff <= tolerances[0],
        param_diff=float(f"{param_diff:.3g}"),
        same_params=param_diff <= tolerances[1],
    )
    return row, times


def _contender(base: nn.Module, device: torch.device, memory_format: torch.memory_format, compiled: bool) -> _Contender:
    """A fresh copy of ``base`` in training mode, on ``device``, with its own optimizer."""
    module = copy.deepcopy(base).to(device, memory_format=memory_format).train()
    optimizer = torch.optim.SGD(module.parameters(), **SGD_SETTINGS)
    return _Contender(module, torch.compile(module) if compiled else module, optimizer)


def _timed_step(
    contender: _Contender,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> tuple[float, torch.Tensor]:
    """One training step; its wall time in seconds (the device synchronised on both ends) and its loss."""
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )
    synchronize(device)
    start = time.perf_counter()
    with autocast:
        logits = contender.step_fn(images)  # (B, K)
        loss = F.cross_entropy(logits, labels)
    loss.backward()
    contender.optimizer.step()
    contender.optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return time.perf_counter() - start, loss.detach()


@torch.no_grad()
def _max_state_difference(ours: nn.Module, reference: nn.Module) -> float:
    """Largest absolute difference over the floating-point entries of the two (same-keyed) state dicts."""
    theirs = reference.state_dict()
    return max(
        (value.float() - theirs[key].float()).abs().max().item()
        for key, value in ours.state_dict().items()
        if value.is_floating_point()
    )


@contextlib.contextmanager
def _cold_compile(device: torch.device) -> Iterator[None]:
    """Inductor with its on-disk caches off, so each compilation is timed from scratch."""
    import torch._dynamo
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    with inductor_config.patch(force_disable_caches=True), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*force_disable_caches.*")  # "dynamo_pgo force disabled by ..."
        _warm_up_compiler(device)
        yield


def _warm_up_compiler(device: torch.device) -> None:
    """Compile a one-line training step, so that the process's one-time costs (importing the compiler,
    starting its worker processes, the first C++ or Triton build) do not land on whichever model compiles first."""
    weight = torch.ones(4, device=device, requires_grad=True)
    step = torch.compile(lambda x: (x * weight).relu().sum())
    step(torch.randn(4, device=device)).backward()


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except RuntimeError:
        raise UsageError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} asked for but CUDA is not available; use device=cpu or auto")
    if target.type not in ("cpu", "cuda"):
        raise UsageError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return target


def _check_settings(
    *, batch_size: int, image_size: int, steps: int, warmup: int, modes: list[str], dtype: str, model: str
) -> None:
    """Fail on a bad setting before building or timing anything."""
    # Batch norm in training mode needs two values per channel, and the last stage of a 32x32 image is 1x1.
    for name, value, least in (
        ("batch_size", batch_size, 2),
        ("image_size", image_size, 32),
        ("steps", steps, 1),
        ("warmup", warmup, 0),
    ):
        if not isinstance(value, int) or value < least:
            raise UsageError(f"{name} must be an integer >= {least}, got {value!r}")
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or not modes:
        raise UsageError(f"modes must name one or more of {', '.join(MODES)}; got {modes!r}")
    if warmup < 1 and any("compile" in mode for mode in modes):
        raise UsageError("warmup must be >= 1 with a compile mode: the first step compiles")
    if dtype not in DTYPES:
        raise UsageError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if model not in MODELS:
        raise UsageError(
            f"model must be one of {', '.join(MODELS)} (ours and torchvision's share their state dicts), got {model!r}"
        )


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())
