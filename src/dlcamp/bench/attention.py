"""Benchmark: ``dlcamp.nn.MultiheadAttention`` against ``torch.nn.MultiheadAttention``.

Self-attention on batch-first float32 input (B, L, E), both modules holding the same
weights (ours loads torch's state dict). Two paths of ours are measured:

- *fused*: ours with ``fast_path=True`` and ``need_weights=False``, so its core is
  PyTorch's fused ``F.scaled_dot_product_attention``; torch's module is called with
  ``need_weights=False`` too. In the forward-only rows (under ``no_grad``, eval mode)
  torch takes its own fused "fast path" for self-attention (``_native_multi_head_attention``).
- *written-out*: ours with ``fast_path=False`` and ``need_weights=True`` (the (B, nh, L, L)
  weights are materialised, softmax and all, in Python); torch's module is called with
  ``need_weights=True`` as well, which puts it on its own explicit path.

Each row is one sequence length, path and pass ("forward", or "forward+backward" of the
output's sum). Calls are timed alternately (ours then torch's, torch's then ours, ...) so
drifts in the machine's speed hit both; each figure is the median over ``repeats``.
Before timing, each call runs once to check agreement, which also warms it up;
``warmup`` adds untimed calls on top. ``speedup`` = torch_ms / ours_ms: 1.0 or more means ours is as fast.
``max_abs_diff`` is the largest difference of the outputs (forward rows) or of the
parameter gradients (forward+backward rows) between the two modules; the gradients are
of a sum over B * L positions, so they (and their float32 rounding) grow with L.

The defaults (L up to 1024, 3 repeats) take about a minute on 2 CPU cores, most of it in
the written-out forward+backward at L = 1024, whose (B, nh, L, L) weights are 256 MiB.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from dlcamp.bench import register_benchmark
from dlcamp.bench.machine import describe_machine, synchronize
from dlcamp.nn.attention import MultiheadAttention

PATHS = ("fused", "written-out")
PASSES = ("forward", "forward+backward")


@register_benchmark("attention")
def attention(
    *,
    seq_lens: Sequence[int] = (64, 256, 1024),
    embed_dim: int = 256,
    num_heads: int = 8,
    batch: int = 8,
    repeats: int = 3,
    warmup: int = 0,
    causal: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Multi-head self-attention, forward and forward+backward: ours (fused and written-out) vs torch.nn's."""
    if embed_dim % num_heads != 0:
        raise ValueError(f"embed_dim={embed_dim} must be a multiple of num_heads={num_heads}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True).to(target).eval()
    modules = {
        path: MultiheadAttention(embed_dim, num_heads, batch_first=True, fast_path=path == "fused").to(target).eval()
        for path in PATHS
    }
    for ours in modules.values():
        ours.load_state_dict(theirs.state_dict(), strict=True)

    rows = []
    for seq_len in seq_lens:
        x = torch.randn(batch, seq_len, embed_dim, device=target)  # (B, L, E)
        # torch wants the mask itself with is_causal (True = hidden); ours builds it from is_causal.
        mask = torch.ones(seq_len, seq_len, dtype=torch.bool, device=target).triu(1) if causal else None
        for path in PATHS:
            need_weights = path == "written-out"

            def call_ours(ours: MultiheadAttention = modules[path], need_weights: bool = need_weights) -> Tensor:
                return ours(x, x, x, need_weights=need_weights, is_causal=causal)[0]

            def call_theirs(need_weights: bool = need_weights) -> Tensor:
                return theirs(x, x, x, need_weights=need_weights, attn_mask=mask, is_causal=causal)[0]

            for pass_name in PASSES:
                if pass_name == "forward":
                    ours_step, theirs_step = _no_grad(call_ours), _no_grad(call_theirs)
                    max_diff = (ours_step() - theirs_step()).abs().max().item()
                else:
                    ours_step = _with_backward(call_ours, modules[path])
                    theirs_step = _with_backward(call_theirs, theirs)
                    max_diff = _max_grad_difference(ours_step, theirs_step, modules[path], theirs)
                ours_ms, torch_ms = _time_both(ours_step, theirs_step, target, repeats=repeats, warmup=warmup)
                rows.append(
                    {
                        "seq_len": seq_len,
                        "path": path,
                        "pass": pass_name,
                        "ours_ms": round(ours_ms, 3),
                        "torch_ms": round(torch_ms, 3),
                        "speedup": round(torch_ms / ours_ms, 3),
                        "max_abs_diff": float(f"{max_diff:.3g}"),
                    }
                )

    machine = describe_machine(target)
    return {
        "title": f"Multi-head self-attention, B={batch}, E={embed_dim}, nh={num_heads}"
        f"{', causal' if causal else ''}, float32: ours vs torch.nn.MultiheadAttention",
        "rows": rows,
        "machine": machine,
        "torch": torch.__version__,
        "device": str(target),
        "repeats": repeats,
        "warmup": warmup,
        "notes": [
            f"machine: {machine}; torch {torch.__version__}",
            "fused: ours fast_path=True, need_weights=False vs torch need_weights=False (forward under no_grad: "
            "torch's native fused MHA); written-out: ours fast_path=False, need_weights=True vs torch "
            "need_weights=True",
            f"median of {repeats} calls after 1 agreement check + {warmup} warm-up calls, ours and torch's "
            "alternating; "
            "speedup = torch_ms / ours_ms (>= 1.0: ours as fast); max_abs_diff: outputs (forward) or "
            "parameter gradients (forward+backward)",
        ],
    }


def _no_grad(call: Callable[[], Tensor]) -> Callable[[], Tensor]:
    def step() -> Tensor:
        with torch.no_grad():
            return call()

    return step


def _with_backward(call: Callable[[], Tensor], module: nn.Module) -> Callable[[], Tensor]:
    def step() -> Tensor:
        module.zero_grad(set_to_none=True)
        output = call()
        output.sum().backward()
        return output

    return step


def _max_grad_difference(ours_step, theirs_step, ours: nn.Module, theirs: nn.Module) -> float:
    ours_step()
    theirs_step()
    grads = dict(theirs.named_parameters())
    return max((p.grad - grads[name].grad).abs().max().item() for name, p in ours.named_parameters())


def _time_both(
    ours_step: Callable[[], Tensor],
    theirs_step: Callable[[], Tensor],
    device: torch.device,
    *,
    repeats: int,
    warmup: int,
) -> tuple[float, float]:
    """Median time in ms of ours and of torch's, timed alternately."""
    ours_times, torch_times = [], []
    for i in range(warmup + repeats):
        order = [(ours_step, ours_times), (theirs_step, torch_times)]
        for step, times in order if i % 2 == 0 else reversed(order):
            ms = _time_call(step, device)
            if i >= warmup:
                times.append(ms)
    return statistics.median(ours_times), statistics.median(torch_times)


def _time_call(step: Callable[[], Tensor], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return (time.perf_counter() - start) * 1e3
