"""Model inspector: per layer its output shape, parameters, multiply-adds and receptive field.

One input of the given shape (batch of one) runs through the model; a forward hook on every
leaf module records what that module produced. ``profile`` works on any device, the meta
device included: counts depend only on shapes, so ``with torch.device("meta"):`` builds even
VGG-19 without allocating its 143M weights.

Multiply-adds (MACs) count the multiplications of the layers that do the arithmetic:
convolutions and linear maps, one MAC per use of a weight (a conv producing an H'xW'
map of C_out channels from C_in/groups channels with a kxk kernel costs
C_in/groups * k*k * C_out * H' * W'). Bias additions, normalisation, activations, pooling
and the additions/concatenations of branches are not counted. This is the convention of
torchvision's published "GFLOPS" (``get_model_weights(name).DEFAULT.meta["_ops"]``), which
are in fact giga multiply-adds of convs and matmuls (half of what
``torch.utils.flop_counter`` reports), taken in eval mode on 3x224x224: ours agree with
them to their three decimals for AlexNet, VGG, GoogLeNet, ResNet and DenseNet. Only the
modules that ``forward`` runs are counted, so GoogLeNet's auxiliary heads (built, but run
only by ``forward_with_aux``) add parameters to ``total_params`` but no MACs; their
parameters are reported as ``params_not_run``. A transposed convolution works the other
way round: each *input* pixel scatters one kernel, so it costs C_in * C_out/groups * k*k *
H * W of its input (cropping by ``padding`` discards some of those products, which are still
paid for; ``torch.utils.flop_counter`` counts the same, times two).

Receptive field. A layer with kernel k, dilation d and stride s takes a field r with jump j
(the input pixels between two neighbouring outputs) to r + (k - 1)·d·j and jump j·s;
every other layer (activations, norms, global pooling, flatten, linear maps) passes the
field through unchanged. Branching nets are followed along every path at once: each tensor
carries its own (field, jump), every torch operation gives its output the widest field
among its inputs, so a residual sum or an Inception concatenation sees the largest field of
its branches (the field of a sum of centred windows is the largest window). A shortcut's
stride-2 1x1 conv therefore does not compound with the main branch's stride: ResNet-18 ends
with jump 32 and field 435. ``report["receptive_field"]`` and ``report["jump"]`` are those
of the model's output, which for a classifier is the field of its final feature map
(global pooling and the classifier pass it through). Fields are theoretical (they can exceed
the input; padding is not clipped), kernels are taken as square (the first size), and only
layers that are modules (not functional calls such as ``F.max_pool2d``) widen the field.

Transposed convolutions (``nn.ConvTranspose1d/2d/3d`` and ``dlcamp.nn.ConvTranspose2d``)
upsample: input i reaches output o through kernel tap t where o + p = i*s + t*d, so an
output reads only the taps whose offset t*d has its phase (o + p) mod s, and the inputs
those taps read span (largest t*d - smallest t*d)/s + 1 cells. The widest phase gives the
layer's ``span``: ceil(k/s) without dilation, at most ceil(k_eff/s) with it, k_eff =
d*(k - 1) + 1 (less when the dilated taps fall into different phases: k = 2, d = 3, s = 2
reads one cell per output). The field grows by (span - 1)*j and the jump becomes j/s, since
neighbouring outputs lie 1/s of an input cell apart; a stride-4 transposed conv after two
stride-2 convs brings the jump back to 1. Jumps (and then fields) can become fractions:
they are kept exact, reported as ints when whole and floats otherwise, and printed as
fractions ("1/4").
"""

from __future__ import annotations

import inspect
import math
from fractions import Fraction
from typing import Any, Sequence

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

from dlcamp.errors import UsageError
from dlcamp.nn.conv_transpose import ConvTranspose2d

TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, ConvTranspose2d)

SPATIAL = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
)


def _first(v: Any) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def layer_macs(module: nn.Module, output: torch.Tensor, input: torch.Tensor | None = None) -> int:
    """Multiply-adds of one call of ``module`` producing ``output`` from ``input`` (batch of one;
    a transposed convolution needs ``input``, the other layers only ``output``)."""
    if isinstance(module, TRANSPOSED):
        if input is None:
            raise ValueError(f"the MACs of {type(module).__name__} depend on its input: pass input=")
        # One kernel scattered per input pixel: C_in * C_out/g * prod(k) * prod(spatial input).
        return (module.out_channels // module.groups) * math.prod(module.kernel_size) * input.numel()
    if isinstance(module, nn.Linear):
        return module.in_features * output.numel()
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return per_output * output.numel()
    return 0


class _FieldTracker(TorchFunctionMode):
    """Carries each tensor's (receptive field, jump) through every torch operation.

    An operation's outputs get the widest field among its tensor inputs (weights and
    constants have none and are ignored); the hooks on spatial layers then widen it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fields: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def widest(self, tree: Any) -> tuple[int, int] | None:
        known = [self.fields[t] for t in tree_leaves(tree) if isinstance(t, torch.Tensor) and t in self.fields]
        return max(known) if known else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        field = self.widest((args, kwargs))
        if field is not None:
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.fields[t] = field
        return out


def transposed_span(kernel: int, stride: int, dilation: int) -> int:
    """Input cells that one output of a transposed conv can read (the widest phase, see the module docstring)."""
    offsets = [t * dilation for t in range(kernel)]  # where tap t lands, relative to i*s
    spans = []
    for phase in range(stride):
        landing = [o for o in offsets if o % stride == phase]  # the taps that reach outputs of this phase
        if landing:
            spans.append((max(landing) - min(landing)) // stride + 1)
    return max(spans)


def _number(value: int | Fraction) -> int | float:
    """An exact field or jump as an int when whole, else a float (what the report and JSON hold)."""
    return int(value) if value.denominator == 1 else float(value)


def _show(value: int | float) -> str:
    """A field or jump for the table: 4, or 1/4 when an upsampling made it fractional."""
    if isinstance(value, int):
        return str(value)
    ratio = Fraction(value).limit_denominator(1 << 20)
    return f"{ratio.numerator}/{ratio.denominator}"


def _module_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def profile(model: nn.Module, input_shape: Sequence[int]) -> dict[str, Any]:
    """Run one input of ``input_shape`` (no batch dim) through ``model``, recording each leaf layer.

    Returns ``input``, ``output`` (the output's shape without batch dim), ``layers`` (one row
    per leaf call in execution order: ``layer``, ``type``, ``output``, ``params``, ``macs``,
    ``rf``, ``jump``), ``total_params``, ``trainable_params``, ``params_not_run`` (in leaf
    modules that ``forward`` never called), ``total_macs``, ``receptive_field`` and ``jump``.
    """
    rows: list[dict[str, Any]] = []
    names = {m: n for n, m in model.named_modules()}
    tracker = _FieldTracker()
    called: set[nn.Module] = set()

    def hook(module: nn.Module, inputs, output) -> None:
        called.add(module)
        if not isinstance(output, torch.Tensor):
            return
        rf, jump = tracker.widest(inputs) or (1, 1)
        if isinstance(module, SPATIAL):
            k, s = _first(module.kernel_size), _first(module.stride)
            d = _first(getattr(module, "dilation", 1))
            rf, jump = rf + (k - 1) * d * jump, jump * s
        elif isinstance(module, TRANSPOSED):
            k, s, d = _first(module.kernel_size), _first(module.stride), _first(module.dilation)
            rf, jump = rf + (transposed_span(k, s, d) - 1) * jump, Fraction(jump) / s
        tracker.fields[output] = (rf, jump)
        first_input = next((t for t in tree_leaves(inputs) if isinstance(t, torch.Tensor)), None)
        rows.append(
            {
                "layer": names[module],
                "type": type(module).__name__,
                "output": list(output.shape[1:]),
                "params": _module_params(module),
                "macs": layer_macs(module, output[0:1], None if first_input is None else first_input[0:1]),
                "rf": _number(rf),
                "jump": _number(jump),
            }
        )

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    image = torch.zeros(1, *input_shape, device=device)
    try:
        with torch.no_grad(), tracker:
            tracker.fields[image] = (1, 1)
            output = model(image)
            rf, jump = tracker.widest(output) or (1, 1)
    except RuntimeError as e:
        raise UsageError(
            f"input shape {'x'.join(map(str, input_shape))} does not fit this model: {str(e).splitlines()[0]}"
        ) from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    first_tensor = next((t for t in tree_leaves(output) if isinstance(t, torch.Tensor)), None)
    return {
        "input": list(input_shape),
        "output": None if first_tensor is None else list(first_tensor.shape[1:]),
        "layers": rows,
        "total_params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "params_not_run": sum(_module_params(m) for m in leaves if m not in called),
        "total_macs": sum(r["macs"] for r in rows),
        "receptive_field": _number(rf),
        "jump": _number(jump),
    }


def profile_model(name: str, kwargs: dict[str, Any], input_shape: Sequence[int] | None) -> dict[str, Any]:
    """Build a registered model and profile it (the input shape defaults to the builder's)."""
    from dlcamp.models import MODELS, _load_builtin
    from dlcamp.registry import signature_params

    _load_builtin()
    builder = MODELS.builder(name)
    params = signature_params(builder)
    if input_shape is None:
        default = params.get("input_shape")
        has_default = default is not None and default.default is not inspect.Parameter.empty
        input_shape = tuple(default.default) if has_default else (3, 224, 224)
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

    rows = [
        [
            r["layer"],
            r["type"],
            "x".join(map(str, r["output"])),
            f"{r['params']:,}",
            f"{r['macs']:,}",
            _show(r["rf"]),
            _show(r["jump"]),
        ]
        for r in report["layers"]
    ]
    total = [
        "total",
        "",
        "x".join(map(str, report["output"] or [])),
        f"{report['total_params']:,}",
        f"{report['total_macs']:,}",
        _show(report["receptive_field"]),
        _show(report["jump"]),
    ]
    table = Table(title=f"{report['model']} on input {'x'.join(map(str, report['input']))}")
    for i, col in enumerate(("layer", "type", "output", "params", "MACs", "RF", "jump")):
        if col in ("layer", "type"):  # names may wrap on a narrow terminal; numbers are never cut
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, justify="right", no_wrap=True, min_width=max(len(row[i]) for row in rows + [total]))
    for row in rows:
        table.add_row(*row)
    table.add_row(*total, style="bold")
    console = Console()
    console.print(table)
    if report["params_not_run"]:
        console.print(f"{report['params_not_run']:,} of the parameters are in layers that forward does not run.")
