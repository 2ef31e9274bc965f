"""The tour's first section: the MLP on digits, and the curriculum's optimizers compared on it."""

from __future__ import annotations

from pathlib import Path

from dlcamp.tour import Tour, tour_section

OPTIMIZER_RECIPES = [
    "mlp-digits-sgd",
    "mlp-digits-momentum",
    "mlp-digits-nesterov",
    "mlp-digits-adagrad",
    "mlp-digits-adadelta",
    "mlp-digits-rmsprop",
    "mlp-digits-adam",
    "mlp-digits-adamw",
]


@tour_section("mlp", title="MLP, optimizers and regularizers", order=10, budget_s=50, quick_budget_s=18)
def mlp_section(tour: Tour) -> str:
    """MLP on digits, and the optimizers of the curriculum compared on the same MLP."""
    from dlcamp.report import figures as F
    from dlcamp.report.html import img_tag, run_section, table

    main = tour.train("mlp-digits", ["trainer.max_epochs=5"] if tour.quick else [])
    html = "<p>A two-layer MLP with batch norm, dropout and label smoothing on scikit-learn's 8×8 digits.</p>"
    html += run_section(main, tour.figures("mlp-digits"))

    rows, curves = [], {}
    for recipe in OPTIMIZER_RECIPES:
        s = tour.train(recipe, ["trainer.max_epochs=3"] if tour.quick else [])
        label = _optim_label(tour.out / recipe)
        rows.append(
            {
                "recipe": recipe,
                "optimizer": label,
                "test/acc": s["metrics"]["test/acc"],
                "test/loss": s["metrics"]["test/loss"],
                "train seconds": s["train_seconds"],
            }
        )
        curves[label] = F.read_metrics_csv(tour.out / recipe / "metrics.csv").get("train/loss_step", [])
    path = F.save(
        F.plot_compare(curves, ylabel="training loss", title="optimizers on the same MLP (digits)"),
        tour.out / "figures" / "optimizers.png",
    )
    html += "<h3>Optimizers on the same MLP</h3>" + table(rows) + img_tag(path, "training loss per step, by optimizer")
    return html


def _optim_label(run_dir: Path) -> str:
    """The optimizer a run used, from its config.yaml: ``sgd (momentum, nesterov) lr=0.1``."""
    import yaml

    optim = yaml.safe_load((run_dir / "config.yaml").read_text())["optim"]
    extras = [k for k in ("momentum", "nesterov", "centered", "amsgrad") if optim.get(k)]
    return f"{optim['name']}" + (f" ({', '.join(extras)})" if extras else "") + f" lr={optim.get('lr')}"
