"""``dlcamp tour``: one quick recipe per family on embedded data, one report.

Each family contributes a section: a function ``(out_dir, quick) -> (heading, html)``
registered in ``SECTIONS``. The foundation's section trains the MLP on digits and
compares the optimizers on the same MLP; later families add theirs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from dlcamp.registry import Registry

SECTIONS: Registry = Registry("tour section")

MARKER = ".dlcamp-tour"  # marks a directory the tour may replace
OPTIMIZER_RECIPES = ["mlp-digits-sgd", "mlp-digits-momentum", "mlp-digits-nesterov", "mlp-digits-adagrad",
                     "mlp-digits-adadelta", "mlp-digits-rmsprop", "mlp-digits-adam", "mlp-digits-adamw"]


def _train(recipe: str, out: Path, overrides: list[str]) -> dict:
    from dlcamp.engine.run import resolve, train
    from dlcamp.recipes import get_recipe

    cfg = resolve(get_recipe(recipe), overrides)
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


CNN_RECIPES = ["alexnet-digits32", "vgg11-digits32", "googlenet-digits32", "resnet20-digits32", "densenet-digits32"]
# The tour trains the family's quick recipe, ResNet-20 (10 epochs; 1 in the quick tour).
# The others are profiled live and shown with what their full recipes are benchmarked to:
# squeezed into 2-3 epochs their schedules end before batch norm settles, and the
# accuracies that come out (VGG at 0.19) would teach the wrong lesson.
CNN_TOUR_RECIPE, CNN_TOUR_EPOCHS = "resnet20-digits32", 10
COMPARISONS = [("conv5x5", "conv3x3x2"), ("conv7x7", "conv3x3x3"), ("plain3x3x2", "bottleneck"),
               ("inception_naive", "inception_1x1")]


@SECTIONS.register("cnn")
def cnn_section(out: Path, quick: bool) -> tuple[str, str]:
    """Modern CNNs on digits32, side by side, and the design questions answered in numbers."""
    from dlcamp.engine.run import resolve
    from dlcamp.metrics.comparisons import compare
    from dlcamp.metrics.complexity import profile_model
    from dlcamp.recipes import get_recipe
    from dlcamp.report.html import run_section, table

    rows = []
    for recipe in CNN_RECIPES:
        cfg = resolve(get_recipe(recipe))
        args = {k: v for k, v in cfg["model"].items() if k != "name"}
        prof = profile_model(cfg["model"]["name"], args, (1, 32, 32))
        row = {"recipe": recipe, "model": cfg["model"]["name"], "params": f"{prof['total_params']:,}",
               "MACs / image": f"{prof['total_macs']:,}", "receptive field": prof["receptive_field"]}
        if recipe == CNN_TOUR_RECIPE:
            epochs = 1 if quick else CNN_TOUR_EPOCHS
            summary = _train(recipe, out, [f"trainer.max_epochs={epochs}"])
            row.update({"trained here": f"{epochs} epochs, {summary['train_seconds']:.0f} s",
                        "test/acc here": round(summary["metrics"]["test/acc"], 4)})
        else:
            row.update({"trained here": "—", "test/acc here": "—"})
        exp = cfg["expect"]
        row["full recipe"] = f"{cfg['trainer']['max_epochs']} epochs"
        row["full recipe measured"] = exp["measured"] or "not yet"
        row["expects"] = f"{exp['metric']} {exp['op']} {exp['value']} within {exp['within_seconds']:.0f} s"
        rows.append(row)
    html = ("<p>The line from AlexNet to DenseNet, each built for 32×32 images, on the digits resized to "
            "32×32. Parameters, multiply-adds and receptive fields are measured here; the tour trains "
            f"{CNN_TOUR_RECIPE}, and every family's full recipe is benchmarked with "
            "<code>dlcamp bench recipe:NAME</code> (figures in BENCHMARKS.md).</p>")
    html += table(rows)
    comparison_rows, conclusions = [], []
    for pair in COMPARISONS:
        result = compare(list(pair))
        for r in result["rows"]:
            comparison_rows.append({"design": r["name"], "input": "x".join(map(str, r["input"])),
                                    "output": "x".join(map(str, r["output"])), "params": f"{r['params']:,}",
                                    "MACs": f"{r['macs']:,}", "receptive field": r["receptive_field"],
                                    "vs first of pair": f"{r['params_ratio']:.2f}x params"})
        conclusions += result["conclusions"]
    html += "<h3>Why 3×3 stacks, bottlenecks and 1×1 reductions</h3>" + table(comparison_rows)
    html += "<ul>" + "".join(f"<li>{c}</li>" for c in conclusions) + "</ul>"
    run_dir = out / "resnet20-digits32"
    summary = json.loads((run_dir / "summary.json").read_text())
    html += "<h3>ResNet-20 on digits32</h3>" + run_section(summary, sorted((run_dir / "figures").glob("*.png")))
    return "Modern CNNs", html


# The likelihood week: (recipe, epochs in the tour, epochs in the quick tour). The tour's
# budgets are short; BENCHMARKS.md has each recipe at its full budget.
GENERATIVE_TOUR = [("bernoulli-digits", 30, 3), ("nade-digits", 25, 2), ("pixelcnn-digits", 20, 2),
                   ("pixelrnn-digits", 6, 1), ("vae-digits", 100, 5), ("cvae-digits", 60, 5)]


@SECTIONS.register("generative")
def generative_section(out: Path, quick: bool) -> tuple[str, str]:
    """Likelihood models on binarized digits: NLL in nats side by side, samples of each, the VAE's latent space."""
    from dlcamp.engine.run import resolve
    from dlcamp.recipes import get_recipe
    from dlcamp.report.html import img_tag, table

    rows, samples = [], []
    for recipe, epochs, quick_epochs in GENERATIVE_TOUR:
        n = quick_epochs if quick else epochs
        summary = _train(recipe, out, [f"trainer.max_epochs={n}"])
        cfg = resolve(get_recipe(recipe))
        m = summary["metrics"]
        rows.append({"model": summary["model"], "recipe": recipe, "trained here": f"{n} epochs, {summary['train_seconds']:.0f} s",
                     "test NLL (nats)": round(m["test/nll_nats"], 2), "bits/dim": round(m["test/bpd"], 4),
                     "ELBO terms (recon + KL)": (f"{m['test/recon_nats']:.2f} + {m['test/kl_nats']:.2f}"
                                                 if "test/kl_nats" in m else "—"),
                     "params": f"{summary['params']:,}",
                     "full recipe measured": (cfg.get("expect") or {}).get("measured") or "—"})
        samples.append(img_tag(out / recipe / "figures" / "samples.png", f"samples: {recipe}"))
    html = ("<p>Explicit densities over 8×8 binary digits (dynamic binarization; every model scored on the "
            "same fixed draw of the 360 test digits). The chain rule makes NADE, PixelCNN and PixelRNN exact; "
            "the VAE's NLL is its importance-weighted bound with 500 samples. Lower is better; 64 ln 2 = 44.36 "
            "nats is a coin flip per pixel.</p>")
    html += table(rows)
    html += "<h3>Samples</h3>" + "".join(samples)
    for recipe, names in (("nade-digits", ("completions",)), ("vae-digits", ("sample_means", "reconstructions", "latent_traversal")),
                          ("cvae-digits", ("latent_map", "latent_traversal"))):
        html += f"<h3>{recipe}</h3>" + "".join(img_tag(out / recipe / "figures" / f"{n}.png", f"{recipe}: {n}")
                                              for n in names)
    return "Likelihood models: NADE, PixelCNN, PixelRNN, VAE", html


def _tour_rows(tour: list[tuple[str, list[str], list[str]]], out: Path, quick: bool,
               metrics: Callable[[dict], dict]) -> list[dict]:
    """Train each (recipe, overrides, quick overrides) of a section; one table row each.

    A row: the recipe, its model, what was trained here, the section's ``metrics(summary)``
    columns, and what the full recipe measured (its ``expect`` block).
    """
    from dlcamp.engine.run import resolve
    from dlcamp.recipes import get_recipe

    rows = []
    for recipe, overrides, quick_overrides in tour:
        summary = _train(recipe, out, quick_overrides if quick else overrides)
        measured = (resolve(get_recipe(recipe)).get("expect") or {}).get("measured") or "—"
        rows.append({"recipe": recipe, "model": summary["model"],
                     "trained here": f"{summary['steps']} steps, {summary['train_seconds']:.0f} s",
                     **metrics(summary), "full recipe measured": measured})
    return rows


# The sequence week: (recipe, overrides in the tour, overrides in the quick tour).
SEQUENCE_TOUR = [
    ("gru-attention-dates", ["trainer.max_epochs=1"], ["trainer.max_epochs=1", "trainer.limit_train_batches=40"]),
    ("gru-dates", ["trainer.max_epochs=1"], ["trainer.max_epochs=1", "trainer.limit_train_batches=40"]),
    ("lstm-reber", ["trainer.max_epochs=6", "data.min_length=10", "data.max_length=20"],
     ["trainer.max_epochs=1", "data.min_length=10", "data.max_length=20"]),
    ("transformer-stdlib", ["trainer.max_steps=80"], ["trainer.max_steps=10"]),
]


@SECTIONS.register("sequence")
def sequence_section(out: Path, quick: bool) -> tuple[str, str]:
    """Sequence models: date normalisation with attention, the Reber grammar, a character LM's samples."""
    from dlcamp.report.html import img_tag, table

    def metrics(summary: dict) -> dict[str, str]:
        test = {k.removeprefix("test/"): round(v, 4) for k, v in summary["metrics"].items() if k.startswith("test/")}
        return {"data": summary["dataset"], "test metrics": ", ".join(f"{k} {v}" for k, v in test.items())}

    rows = _tour_rows(SEQUENCE_TOUR, out, quick, metrics)
    figures = [p for recipe, _, _ in SEQUENCE_TOUR
               for p in sorted((out / recipe / "figures").glob("*.png")) if p.stem != "curves"]
    html = ("<p>Sequence models on data generated here: dates written in many forms normalised to ISO by a "
            "GRU encoder–decoder with attention and by the same GRU without it, at the same budget (the attention "
            "map shows which source characters each output character read; without attention the whole date "
            "must pass through one state vector); the embedded Reber grammar, where an LSTM must carry one symbol "
            "across the string; and a character-level Transformer on the Python standard library's own source, "
            "its samples and its causal self-attention. The tour's budgets are short; BENCHMARKS.md has each "
            "recipe at its full budget, the Transformer translating dates included.</p>")
    html += table(rows) + "".join(img_tag(p, f"{p.parent.parent.name}: {p.stem}") for p in figures)
    return "Sequence models: RNN, LSTM, GRU, attention, Transformers", html


# The detection week: (recipe, overrides in the tour, overrides in the quick tour). The test
# split is cut to 100 scenes (50 in the quick tour) to keep evaluation short.
DETECTION_SMALL = ["data.val_size=50", "data.test_size=100"]
DETECTION_TOUR = [
    ("ssd-shapes", ["trainer.max_steps=300", *DETECTION_SMALL],
     ["trainer.max_steps=20", "data.train_size=320", "data.val_size=20", "data.test_size=50"]),
    ("fasterrcnn-shapes", ["trainer.max_steps=200", *DETECTION_SMALL],
     ["trainer.max_steps=20", "data.train_size=320", "data.val_size=20", "data.test_size=50"]),
]


@SECTIONS.register("detection")
def detection_section(out: Path, quick: bool) -> tuple[str, str]:
    """Detection on the shapes world: SSD (one stage) and Faster R-CNN (two stages), COCO mAP, anchors."""
    from dlcamp.report.html import img_tag, table

    def metrics(summary: dict) -> dict[str, object]:
        m = summary["metrics"]
        return {"test mAP@0.5": round(m["test/map_50"], 4), "test mAP@[.5:.95]": round(m["test/map"], 4),
                "ours vs pycocotools": f"{m['test/ours_vs_pycocotools']:.1e}"}

    rows = _tour_rows(DETECTION_TOUR, out, quick, metrics)
    figures = [out / recipe / "figures" / f"{name}.png" for recipe, _, _ in DETECTION_TOUR
               for name in ("detections", "anchors", "pr_curves")]
    html = ("<p>Object detection on the shapes world, scenes of circles, squares, triangles, stars and crosses "
            "on textured ground, generated here (<code>dlcamp data export shapes</code> writes them as COCO JSON). "
            "SSD predicts classes and box offsets for ~1,400 default boxes over four feature scales in one pass, "
            "balancing the flood of background boxes by hard negative mining; Faster R-CNN first proposes regions "
            "with an RPN over anchors, then classifies a 7x7 RoI Align window of each. mAP is pycocotools' "
            "(ours, computed beside it, agrees to the last digit). The tour's budgets are short; "
            "BENCHMARKS.md has both detectors at their full budgets, with inference speed and the ablations.</p>")
    html += table(rows) + "".join(img_tag(p, f"{p.parent.parent.name}: {p.stem}") for p in figures if p.exists())
    return "Object detection: SSD and Faster R-CNN", html


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

    names = sections or SECTIONS.names(registration_order=True)  # the curriculum's order
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
