"""Model inspector: per layer its output shape, parameters, multiply-adds and receptive field.

Multiply-adds (MACs) count the multiplications of the layers that do the arithmetic
(convolutions and linear maps, one MAC per weight use); normalisation and activations are
not counted, as is conventional. The receptive field is followed along the order in which
layers run (the main path): a layer with kernel k and stride s takes a field r with jump
j to r + (k - 1)·j and jump j·s.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn as nn

from dlcamp.errors import UsageError

SPATIAL = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)


def _pair(v: Any) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds of one call of ``module`` producing ``output`` (batch of one)."""
    if isinstance(module, nn.Linear):
        return module.in_features * output.numel()
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return per_output * output.numel()
    return 0


def profile(model: nn.Module, input_shape: Sequence[int]) -> dict[str, Any]:
    """Run one input of ``input_shape`` (no batch dim) through ``model``, recording each leaf layer."""
    rows: list[dict[str, Any]] = []
    rf, jump = 1, 1
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal rf, jump
        if not isinstance(output, torch.Tensor):
            return
        if isinstance(module, SPATIAL):
            k, s = _pair(module.kernel_size), _pair(module.stride)
            d = _pair(getattr(module, "dilation", 1))
            rf, jump = rf + (k - 1) * d * jump, jump * s
        rows.append({
            "layer": names[module], "type": type(module).__name__, "output": list(output.shape[1:]),
            "params": sum(p.numel() for p in module.parameters(recurse=False)),
            "macs": layer_macs(module, output[0:1]), "rf": rf, "jump": jump,
        })

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    except RuntimeError as e:
        raise UsageError(f"input shape {'x'.join(map(str, input_shape))} does not fit this model: {str(e).splitlines()[0]}") from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    total_params = sum(p.numel() for p in model.parameters())
    return {"input": list(input_shape), "layers": rows, "total_params": total_params,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total_macs": sum(r["macs"] for r in rows)}


def profile_model(name: str, kwargs: dict[str, Any], input_shape: Sequence[int] | None) -> dict[str, Any]:
    """Build a registered model and profile it (the input shape defaults to the builder's)."""
    import inspect

    from dlcamp.models import MODELS, _load_builtin
    from dlcamp.registry import signature_params

    _load_builtin()
    builder = MODELS.builder(name)
    params = signature_params(builder)
    if input_shape is None:
        default = params.get("input_shape")
        input_shape = tuple(default.default) if default is not None and default.default is not inspect.Parameter.empty else (3, 224, 224)
    else:  # the builder learns the input as the engine tells it (digits32 is 1x32x32)
        if "input_shape" in params:
            kwargs = {"input_shape": list(input_shape), **kwargs}
        if "in_channels" in params:
            kwargs = {"in_channels": int(input_shape[0]), **kwargs}
    try:
        model = MODELS.build(name, **kwargs)
    except (ValueError, TypeError) as e:
        raise UsageError(f"model {name!r}: {e}") from None
    report = profile(model, input_shape)
    report["model"] = name
    return report


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report['model']} on input {'x'.join(map(str, report['input']))}")
    for col in ("layer", "type", "output", "params", "MACs", "RF", "jump"):
        table.add_column(col, justify="right" if col not in ("layer", "type") else "left")
    for r in report["layers"]:
        table.add_row(r["layer"], r["type"], "x".join(map(str, r["output"])), f"{r['params']:,}", f"{r['macs']:,}",
                      str(r["rf"]), str(r["jump"]))
    table.add_row("total", "", "", f"{report['total_params']:,}", f"{report['total_macs']:,}", "", "", style="bold")
    Console().print(table)
