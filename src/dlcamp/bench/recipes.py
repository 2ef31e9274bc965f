"""``dlcamp bench recipe:NAME``: rerun a recipe over seeds and check its ``expect`` block,
with the recipe's reference baselines measured in the same run."""

from __future__ import annotations

import operator
import statistics
from typing import Any

from dlcamp.bench import register_benchmark
from dlcamp.bench.runs import run_root
from dlcamp.errors import UsageError

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


@register_benchmark("recipe")
def recipe(
    *, recipe: str, seeds: int | None = None, overrides: list[str] | None = None, out: str | None = None
) -> dict[str, Any]:
    """Rerun a recipe over seeds, check its expect block, and run its reference baselines beside it."""
    from dlcamp.bench.references import get_reference
    from dlcamp.engine.run import resolve, train
    from dlcamp.recipes import get_recipe

    base = resolve(get_recipe(recipe), overrides or [])
    expect = base.get("expect")
    if expect is None:
        raise UsageError(f"recipe {recipe!r} has no expect block to check")
    n = int(seeds or expect["seeds"])
    metric = expect["metric"]
    root = run_root(out, base["name"])
    rows, values, seconds = [], [], []
    for seed in range(n):
        cfg = dict(base, seed=seed)
        summary = train(cfg, root / f"seed{seed}", progress="none")
        assert summary is not None
        values.append(summary["metrics"][metric])
        seconds.append(summary["train_seconds"])
        rows.append(
            {
                "what": base["name"],
                "seed": seed,
                metric: values[-1],
                "train_seconds": seconds[-1],
                "params": summary["params"],
            }
        )
    mean, mean_s = statistics.fmean(values), statistics.fmean(seconds)
    met = OPS[expect["op"]](mean, expect["value"])
    in_budget = expect["within_seconds"] is None or mean_s <= expect["within_seconds"]
    rows.append(
        {
            "what": f"{base['name']} mean ± sd",
            "seed": f"{n} seeds",
            metric: f"{mean:.4f} ± {_spread(values):.4f}",
            "train_seconds": f"{mean_s:.1f} ± {_spread(seconds):.1f}",
            "params": rows[0]["params"],
        }
    )
    for ref in expect.get("references", []):
        ref_values, ref_seconds = [], []
        for seed in range(n):
            r = get_reference(ref)(seed=seed)
            ref_values.append(r[metric])
            ref_seconds.append(r["train_seconds"])
        rows.append(
            {
                "what": f"reference: {ref}",
                "seed": f"{n} seeds",
                metric: f"{statistics.fmean(ref_values):.4f} ± {_spread(ref_values):.4f}",
                "train_seconds": f"{statistics.fmean(ref_seconds):.1f} ± {_spread(ref_seconds):.1f}",
                "params": "",
            }
        )
    budget = f" within {expect['within_seconds']} s" if expect["within_seconds"] is not None else ""
    verdict = (
        f"expect {metric} {expect['op']} {expect['value']}{budget} on {expect['hardware']}: "
        f"mean {mean:.4f} in {mean_s:.1f} s -> {'PASS' if met and in_budget else 'FAIL'}"
    )
    return {
        "title": f"recipe {base['name']}",
        "rows": rows,
        "ok": bool(met and in_budget),
        "notes": [verdict],
        "mean": mean,
        "train_seconds": mean_s,
        "run_root": str(root),
    }
