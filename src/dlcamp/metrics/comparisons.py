"""Side by side: parameters, multiply-adds and receptive field of a few designs, to answer the curriculum's questions.

- Why stack small kernels? Two 3x3 convs see a 5x5 window, as one 5x5 conv does, with
  18C² weights instead of 25C² (0.72x) and a nonlinearity between them; three 3x3 see 7x7
  with 27C² instead of 49C² (0.55x). VGG is built on this (Simonyan & Zisserman 2015,
  arXiv:1409.1556, sec. 2.3).
- Why a bottleneck? ResNet's 1x1 reduce (256 -> 64), 3x3 (64 -> 64), 1x1 expand (64 -> 256)
  costs about 1/17 of two 3x3 convs at 256 channels (He et al. 2016, arXiv:1512.03385,
  fig. 5), at the price of a smaller field (3 against 5).
- Why 1x1 reductions in Inception? The naive module (1x1, 3x3, 5x5 and a 3x3 max-pool side
  by side) pays for every spatial conv on all input channels and passes all of them on
  through its pool branch; GoogLeNet's 1x1 convs before the 3x3 and 5x5 (and after the
  pool) cut both (Szegedy et al. 2015, arXiv:1409.4842, fig. 2), shown here with inception
  3a's sizes (Table 1) on 192x28x28.

Every conv here is an ``nn.Conv2d`` with its bias (25C² + C parameters for a 5x5 conv C -> C),
"same" padding and stride 1, with a ReLU between consecutive convs (in the Inception modules
after every conv, as in the paper); no normalisation, so the numbers are the convs' alone. ``compare`` also takes registered
model names (``resnet18``), profiled at ``input_shape`` or at their default input.

Legend: C channels, H, W height and width.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from dlcamp.errors import UsageError
from dlcamp.metrics.complexity import profile, profile_model

C = 64  # channels of the stacked-conv configurations, kept from input to output


@dataclass(frozen=True)
class Configuration:
    """A named toy design: what it is, how to build it, the input it is profiled on."""

    description: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]  # (C, H, W)


def conv_stack(channels: Sequence[int], kernel_size: int) -> nn.Sequential:
    """Convs channels[0] -> channels[1] -> ... with "same" padding and a ReLU between consecutive convs."""
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        if i:
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2))
    return nn.Sequential(*layers)


def conv_relu(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2), nn.ReLU(inplace=True))


class Branches(nn.Module):
    """Parallel branches on one input, concatenated: (B, C_in, H, W) -> (B, sum of branch channels, H, W)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def bottleneck(channels: int = 256, reduced: int = 64) -> nn.Sequential:
    """ResNet's bottleneck body, 1x1 reduce -> 3x3 -> 1x1 expand (the identity sum costs nothing here)."""
    return nn.Sequential(
        conv_relu(channels, reduced, 1), conv_relu(reduced, reduced, 3), nn.Conv2d(reduced, channels, 1)
    )


def inception_naive(c_in: int = 192, ch1x1: int = 64, ch3x3: int = 128, ch5x5: int = 32) -> Branches:
    """Fig. 2(a) of the paper: 1x1, 3x3, 5x5 convs and a 3x3 max-pool, all on the C_in input channels."""
    return Branches(
        conv_relu(c_in, ch1x1, 1),
        conv_relu(c_in, ch3x3, 3),
        conv_relu(c_in, ch5x5, 5),
        nn.MaxPool2d(3, stride=1, padding=1),
    )


def inception_1x1(
    c_in: int = 192,
    ch1x1: int = 64,
    ch3x3red: int = 96,
    ch3x3: int = 128,
    ch5x5red: int = 16,
    ch5x5: int = 32,
    pool_proj: int = 32,
) -> Branches:
    """Fig. 2(b): 1x1 reductions before the 3x3 and 5x5 convs and a 1x1 projection after the pool."""
    return Branches(
        conv_relu(c_in, ch1x1, 1),
        nn.Sequential(conv_relu(c_in, ch3x3red, 1), conv_relu(ch3x3red, ch3x3, 3)),
        nn.Sequential(conv_relu(c_in, ch5x5red, 1), conv_relu(ch5x5red, ch5x5, 5)),
        nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_relu(c_in, pool_proj, 1)),
    )


CONFIGURATIONS: dict[str, Configuration] = {
    "conv5x5": Configuration(f"one 5x5 conv, {C} -> {C}", lambda: conv_stack([C, C], 5), (C, 32, 32)),
    "conv3x3x2": Configuration(f"two 3x3 convs, {C} -> {C} -> {C}", lambda: conv_stack([C] * 3, 3), (C, 32, 32)),
    "conv7x7": Configuration(f"one 7x7 conv, {C} -> {C}", lambda: conv_stack([C, C], 7), (C, 32, 32)),
    "conv3x3x3": Configuration(
        f"three 3x3 convs, {C} -> {C} -> {C} -> {C}", lambda: conv_stack([C] * 4, 3), (C, 32, 32)
    ),
    "bottleneck": Configuration(
        "ResNet bottleneck: 1x1 256 -> 64, 3x3 64 -> 64, 1x1 64 -> 256", bottleneck, (256, 16, 16)
    ),
    "plain3x3x2": Configuration("two 3x3 convs, 256 -> 256 -> 256", lambda: conv_stack([256] * 3, 3), (256, 16, 16)),
    "inception_naive": Configuration(
        "Inception 3a without 1x1 reductions (pool passes all 192 channels)", inception_naive, (192, 28, 28)
    ),
    "inception_1x1": Configuration(
        "Inception 3a with 1x1 reductions (GoogLeNet's module)", inception_1x1, (192, 28, 28)
    ),
}


def check_name(name: str) -> None:
    """Raise a one-line ``UsageError`` listing the choices unless ``name`` is a configuration or a model."""
    from dlcamp.models import MODELS, _load_builtin

    if name in CONFIGURATIONS:
        return
    _load_builtin()
    if name in MODELS:
        return
    models = MODELS.names()
    close = difflib.get_close_matches(name, list(CONFIGURATIONS) + models, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UsageError(
        f"unknown name {name!r} for --compare; {hint}choose a configuration "
        f"({', '.join(CONFIGURATIONS)}) or a model ({', '.join(models)})"
    )


def profile_named(name: str, input_shape: Sequence[int] | None = None) -> dict[str, Any]:
    """Profile a configuration of ``CONFIGURATIONS`` (at its own input) or a registered model (at ``input_shape``)."""
    from dlcamp.models import MODELS

    check_name(name)
    if name in CONFIGURATIONS:
        config = CONFIGURATIONS[name]
        report = profile(config.build(), config.input_shape)
        report["description"] = config.description
    else:
        report = profile_model(name, {}, input_shape)
        report["description"] = MODELS.describe()[name]
    report["model"] = name
    return report


def _shape(shape: Sequence[int] | None) -> str:
    return "x".join(map(str, shape or []))


def _ratio(r: float) -> str:
    """0.72x, 0.059x: two decimals, or two significant digits below 0.1 (a 17-fold saving is not 0.06x)."""
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def conclusion(candidate: dict[str, Any], reference: dict[str, Any]) -> str:
    """One line comparing ``candidate`` with ``reference`` (rows of ``compare``), computed from their numbers."""
    rf, ref_rf = candidate["receptive_field"], reference["receptive_field"]
    sees = (
        f"sees {rf}x{rf} like {reference['name']}"
        if rf == ref_rf
        else f"sees {rf}x{rf} where {reference['name']} sees {ref_rf}x{ref_rf}"
    )
    line = (
        f"{candidate['name']} {sees} with {_ratio(candidate['params'] / max(reference['params'], 1))} the "
        f"parameters and {_ratio(candidate['macs'] / max(reference['macs'], 1))} the MACs"
    )
    if candidate["output"] != reference["output"]:
        line += f" (output {_shape(candidate['output'])} against {_shape(reference['output'])})"
    return line


def compare(names: Sequence[str], input_shape: Sequence[int] | None = None) -> dict[str, Any]:
    """Profile each name and compare the others with the first.

    Returns ``{"reference": names[0], "rows": [{"name", "description", "input", "output",
    "params", "macs", "receptive_field", "jump", "params_ratio", "macs_ratio"}, ...],
    "conclusions": [one line per name after the first]}``; the ratios are against the first.
    ``input_shape`` (C, H, W) applies to registered models; each configuration has its own.
    """
    if len(names) < 2:
        raise UsageError(f"--compare needs at least two names, got {len(names)}")
    for name in names:  # every name checked before anything is built
        check_name(name)
    rows = []
    for name in names:
        report = profile_named(name, input_shape)
        rows.append(
            {
                "name": name,
                "description": report["description"],
                "input": report["input"],
                "output": report["output"],
                "params": report["total_params"],
                "macs": report["total_macs"],
                "receptive_field": report["receptive_field"],
                "jump": report["jump"],
            }
        )
    for row in rows:
        row["params_ratio"] = row["params"] / max(rows[0]["params"], 1)
        row["macs_ratio"] = row["macs"] / max(rows[0]["macs"], 1)
    return {"reference": names[0], "rows": rows, "conclusions": [conclusion(row, rows[0]) for row in rows[1:]]}


def print_comparison(result: dict[str, Any]) -> None:
    """The comparison as a table with one column per name, then the conclusions."""
    from rich.console import Console
    from rich.table import Table

    rows = result["rows"]
    table = Table(title=f"compared with {result['reference']}")
    table.add_column("")
    for row in rows:
        table.add_column(row["name"], justify="right")
    lines = {
        "input": [_shape(r["input"]) for r in rows],
        "output": [_shape(r["output"]) for r in rows],
        "params": [f"{r['params']:,}" for r in rows],
        "MACs": [f"{r['macs']:,}" for r in rows],
        "receptive field": [f"{r['receptive_field']}x{r['receptive_field']}" for r in rows],
        "jump": [str(r["jump"]) for r in rows],
        "params vs first": [_ratio(r["params_ratio"]) for r in rows],
        "MACs vs first": [_ratio(r["macs_ratio"]) for r in rows],
    }
    for label, cells in lines.items():
        table.add_row(label, *cells)
    console = Console()
    console.print(table)
    for r in rows:
        console.print(f"{r['name']}: {r['description']}", highlight=False, soft_wrap=True)
    for line in result["conclusions"]:  # soft_wrap: one line each, whatever the terminal's width
        console.print(line, style="bold", highlight=False, soft_wrap=True)
