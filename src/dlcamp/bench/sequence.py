"""Sequence-model benchmarks: each trains a family of recipes in one run, one table.

- ``dlcamp bench reber``: the vanilla RNN against the LSTM and the GRU on the embedded
  Reber grammar as the dependency distance grows. The classifier must carry the second
  symbol (T or P) across the whole inner string to say which symbol closes the string;
  ``data.min_length``/``max_length`` set that distance. Chance is 0.5. Same budget, same
  hidden size, same data for the three cells at every distance.
- ``dlcamp bench charlm``: bits per character on held-out files of the Python standard
  library's source for the n-gram baseline, the LSTM and the Transformer decoder, at
  matched parameter counts and training budgets.
- ``dlcamp bench dates``: date normalisation, exact-match accuracy of the Transformer, the
  GRU encoder–decoder with attention, and the same GRU without attention.
- ``dlcamp bench vit``: ViT on digits32 next to ResNet-20.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from dlcamp.bench import register_benchmark
from dlcamp.bench.runs import run_root

REBER_CELLS = ("rnn", "lstm", "gru")
REBER_DISTANCES = ((5, 10), (10, 20), (20, 30), (40, 50))
CHARLM_RECIPES = ["ngram-stdlib", "lstm-stdlib", "transformer-stdlib"]
DATES_RECIPES = ["transformer-dates", "gru-attention-dates", "gru-dates"]
VIT_RECIPES = ["vit-digits32", "resnet20-digits32"]


def _train_rows(
    names: Sequence[str],
    columns: dict[str, str],
    root: Path,
    overrides: Sequence[str] = (),
    extra: dict[str, list[str]] | None = None,
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Train each recipe once (seed 0); one row each with ``columns`` {label: metric}, and expect verdicts."""
    from dlcamp.bench.recipes import OPS
    from dlcamp.engine.run import resolve, train
    from dlcamp.recipes import get_recipe

    cfgs = {name: resolve(get_recipe(name), list(overrides) + (extra or {}).get(name, [])) for name in names}
    rows, notes, ok = [], [], True
    for name, cfg in cfgs.items():
        summary = train(cfg, root / name, progress="none")
        assert summary is not None
        m = summary["metrics"]
        row: dict[str, Any] = {"recipe": name, "model": cfg["model"]["name"], "params": summary["params"]}
        row.update({label: m.get(metric, float("nan")) for label, metric in columns.items()})
        row.update({"train s": summary["train_seconds"], "epochs": summary["epochs"], "steps": summary["steps"]})
        rows.append(row)
        exp = cfg.get("expect")
        if exp and exp["metric"] in m:
            met = OPS[exp["op"]](m[exp["metric"]], exp["value"])
            within = exp["within_seconds"] is None or summary["train_seconds"] <= exp["within_seconds"]
            ok &= met and within
            notes.append(
                f"{name}: expect {exp['metric']} {exp['op']} {exp['value']} within {exp['within_seconds']} s: "
                f"{m[exp['metric']]:.4f} in {summary['train_seconds']:.0f} s -> {'PASS' if met and within else 'FAIL'}"
            )
    return rows, notes, ok


@register_benchmark("reber")
def reber(
    *,
    cells: list[str] | None = None,
    distances: list[list[int]] | None = None,
    overrides: list[str] | None = None,
    out: str | None = None,
) -> dict[str, Any]:
    """RNN vs LSTM vs GRU on the embedded Reber grammar as the dependency distance grows (test accuracy)."""
    from dlcamp.engine.run import resolve, train
    from dlcamp.recipes import get_recipe

    cells = list(cells or REBER_CELLS)
    distances = [tuple(d) for d in (distances or REBER_DISTANCES)]
    root = run_root(out, "reber")
    cfgs = {
        (cell, d): resolve(
            get_recipe(f"{cell}-reber"), list(overrides or []) + [f"data.min_length={d[0]}", f"data.max_length={d[1]}"]
        )
        for d in distances
        for cell in cells
    }  # every config checked before any training
    rows = []
    for d in distances:
        row: dict[str, Any] = {"inner string length (distance)": f"{d[0]}-{d[1]}"}
        for cell in cells:
            summary = train(cfgs[(cell, d)], root / f"{cell}-{d[0]}-{d[1]}", progress="none")
            assert summary is not None
            row[f"{cell} test acc"] = summary["metrics"]["test/acc"]
            row[f"{cell} s"] = summary["train_seconds"]
        row["params (rnn/lstm/gru)"] = "/".join(str(_params(root / f"{cell}-{d[0]}-{d[1]}")) for cell in cells)
        rows.append(row)
    return {
        "title": "embedded Reber grammar: which symbol closes the string (chance 0.5)",
        "rows": rows,
        "ok": True,
        "notes": [],
        "run_root": str(root),
    }


def _params(run_dir: Path) -> int:
    import json

    return int(json.loads((run_dir / "summary.json").read_text())["params"])


@register_benchmark("charlm")
def charlm(
    *, recipes: list[str] | None = None, overrides: list[str] | None = None, out: str | None = None
) -> dict[str, Any]:
    """n-gram vs LSTM vs Transformer character LMs on the standard library's source: test bits per character."""
    root = run_root(out, "charlm")
    rows, notes, ok = _train_rows(
        recipes or CHARLM_RECIPES, {"test bpc": "test/bpc", "val bpc": "val/bpc"}, root, overrides or []
    )
    return {
        "title": "character language models on the Python standard library's source (held-out files)",
        "rows": rows,
        "ok": ok,
        "notes": notes,
        "run_root": str(root),
    }


@register_benchmark("dates")
def dates(
    *, recipes: list[str] | None = None, overrides: list[str] | None = None, out: str | None = None
) -> dict[str, Any]:
    """Date normalisation: exact match of the Transformer and the GRU with and without attention."""
    root = run_root(out, "dates")
    rows, notes, ok = _train_rows(
        recipes or DATES_RECIPES,
        {
            "test exact (greedy)": "test/exact_match",
            "test exact (beam)": "test/exact_match_beam",
            "test token acc": "test/token_acc",
        },
        root,
        overrides or [],
    )
    return {
        "title": "date normalisation (many written forms -> ISO), 1,000 test dates",
        "rows": rows,
        "ok": ok,
        "notes": notes,
        "run_root": str(root),
    }


@register_benchmark("vit")
def vit(
    *, recipes: list[str] | None = None, overrides: list[str] | None = None, out: str | None = None
) -> dict[str, Any]:
    """ViT against ResNet-20 on digits32 (360 test images)."""
    root = run_root(out, "vit")
    rows, notes, ok = _train_rows(recipes or VIT_RECIPES, {"test acc": "test/acc"}, root, overrides or [])
    return {"title": "ViT vs ResNet-20 on digits32", "rows": rows, "ok": ok, "notes": notes, "run_root": str(root)}
