"""``dlcamp tour``: one quick recipe per family on embedded data, one report.

Each family contributes a section: a function ``(out_dir, quick) -> (heading, html)``
registered in ``SECTIONS``. The foundation's section trains the MLP on digits and
compares the optimizers on the same MLP; later families add theirs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from dlcamp.registry import Registry

SECTIONS: Registry = Registry("tour section")

MARKER = ".dlcamp-tour"  # marks a directory the tour may replace
OPTIMIZER_RECIPES = ["mlp-digits-sgd", "mlp-digits-momentum", "mlp-digits-nesterov", "mlp-digits-adagrad",
                     "mlp-digits-adadelta", "mlp-digits-rmsprop", "mlp-digits-adam", "mlp-digits-adamw"]


def _train(recipe: str, out: Path, overrides: list[str]) -> dict:
    from dlcamp.engine.config import apply_overrides
    from dlcamp.engine.run import resolve, train
    from dlcamp.recipes import get_recipe

    cfg = resolve(apply_overrides(get_recipe(recipe), overrides))
    summary = train(cfg, out / recipe, progress="none")
    assert summary is not None
    print(f"  {recipe}: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items() if k.startswith("test/"))
          + f" ({summary['train_seconds']:.1f} s)", flush=True)
    return summary


@SECTIONS.register("mlp")
def mlp_section(out: Path, quick: bool) -> tuple[str, str]:
    """MLP on digits, and the optimizers of the curriculum compared on the same MLP."""
    from dlcamp.report import figures as F
    from dlcamp.report.html import img_tag, run_section, table

    epochs = ["trainer.max_epochs=5"] if quick else []
    main = _train("mlp-digits", out, epochs)
    run_dir = out / "mlp-digits"
    figs = sorted((run_dir / "figures").glob("*.png"))
    html = "<p>A two-layer MLP with batch norm, dropout and label smoothing on scikit-learn's 8×8 digits.</p>"
    html += run_section(main, figs)

    rows, curves = [], {}
    for recipe in OPTIMIZER_RECIPES:
        s = _train(recipe, out, ["trainer.max_epochs=3"] if quick else [])
        rows.append({"recipe": recipe, "optimizer": _optim_label(out / recipe),
                     "test/acc": s["metrics"]["test/acc"], "test/loss": s["metrics"]["test/loss"],
                     "train seconds": s["train_seconds"]})
        series = F.read_metrics_csv(out / recipe / "metrics.csv")
        curves[_optim_label(out / recipe)] = series.get("train/loss_step", [])
    path = F.save(F.plot_compare(curves, ylabel="training loss", title="optimizers on the same MLP (digits)"),
                  out / "figures" / "optimizers.png")
    html += "<h3>Optimizers on the same MLP</h3>" + table(rows) + img_tag(path, "training loss per step, by optimizer")
    return "MLP, optimizers and regularizers", html


def _optim_label(run_dir: Path) -> str:
    import yaml

    optim = yaml.safe_load((run_dir / "config.yaml").read_text())["optim"]
    extras = [k for k in ("momentum", "nesterov", "centered", "amsgrad") if optim.get(k)]
    return f"{optim['name']}" + (f" ({', '.join(extras)})" if extras else "") + f" lr={optim.get('lr')}"


def run_tour(out: Path, *, quick: bool = False, sections: list[str] | None = None) -> Path:
    """Run every section (or the named ones) into ``out`` and write ``out/report.html``."""
    import shutil

    from dlcamp.errors import UsageError
    from dlcamp.io import write_text
    from dlcamp.report.html import page

    names = sections or SECTIONS.names()
    fns: list[Callable[[Path, bool], tuple[str, str]]] = [SECTIONS.builder(n) for n in names]  # names checked first
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise UsageError(f"{str(out)!r} exists and is not a tour directory; choose another -o")
        shutil.rmtree(out)  # a tour is always a fresh run of everything
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()
    t0 = time.perf_counter()
    parts = []
    for name, fn in zip(names, fns):
        print(f"tour: {name}", flush=True)
        parts.append(fn(out, quick))
    seconds = time.perf_counter() - t0
    path = out / "report.html"
    write_text(path, page("dlcamp tour", parts,
                          subtitle=f"{'quick ' if quick else ''}tour, {seconds:.0f} s on this machine"))
    return path
