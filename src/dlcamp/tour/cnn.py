"""The tour's CNN section: AlexNet to DenseNet on digits32, profiled, and the design questions in numbers."""

from __future__ import annotations

from dlcamp.tour import Tour, tour_section

CNN_RECIPES = ["alexnet-digits32", "vgg11-digits32", "googlenet-digits32", "resnet20-digits32", "densenet-digits32"]
# The tour trains the family's quick recipe, ResNet-20 (10 epochs; 1 in the quick tour).
# The others are profiled live and shown with what their full recipes are benchmarked to:
# squeezed into 2-3 epochs their schedules end before batch norm settles, and the
# accuracies that come out (VGG at 0.19) would teach the wrong lesson.
CNN_TOUR_RECIPE, CNN_TOUR_EPOCHS = "resnet20-digits32", 10
COMPARISONS = [
    ("conv5x5", "conv3x3x2"),
    ("conv7x7", "conv3x3x3"),
    ("plain3x3x2", "bottleneck"),
    ("inception_naive", "inception_1x1"),
]


@tour_section("cnn", title="Modern CNNs", order=20, budget_s=55, quick_budget_s=9)
def cnn_section(tour: Tour) -> str:
    """Modern CNNs on digits32, side by side, and the design questions answered in numbers."""
    from dlcamp.engine.run import resolve
    from dlcamp.metrics.comparisons import compare
    from dlcamp.metrics.complexity import profile_model
    from dlcamp.recipes import get_recipe
    from dlcamp.report.html import run_section, table

    rows, trained = [], None
    for recipe in CNN_RECIPES:
        cfg = resolve(get_recipe(recipe))
        args = {k: v for k, v in cfg["model"].items() if k != "name"}
        prof = profile_model(cfg["model"]["name"], args, (1, 32, 32))
        row = {
            "recipe": recipe,
            "model": cfg["model"]["name"],
            "params": f"{prof['total_params']:,}",
            "MACs / image": f"{prof['total_macs']:,}",
            "receptive field": prof["receptive_field"],
        }
        if recipe == CNN_TOUR_RECIPE:
            epochs = 1 if tour.quick else CNN_TOUR_EPOCHS
            trained = tour.train(recipe, [f"trainer.max_epochs={epochs}"])
            row.update(
                {
                    "trained here": f"{epochs} epochs, {trained['train_seconds']:.0f} s",
                    "test/acc here": round(trained["metrics"]["test/acc"], 4),
                }
            )
        else:
            row.update({"trained here": "—", "test/acc here": "—"})
        exp = cfg["expect"]
        row["full recipe"] = f"{cfg['trainer']['max_epochs']} epochs"
        row["full recipe measured"] = exp["measured"] or "not yet"
        row["expects"] = f"{exp['metric']} {exp['op']} {exp['value']} within {exp['within_seconds']:.0f} s"
        rows.append(row)
    html = (
        "<p>The line from AlexNet to DenseNet, each built for 32×32 images, on the digits resized to "
        "32×32. Parameters, multiply-adds and receptive fields are measured here; the tour trains "
        f"{CNN_TOUR_RECIPE}, and every family's full recipe is benchmarked with "
        "<code>dlcamp bench recipe:NAME</code> (figures in BENCHMARKS.md).</p>"
    )
    html += table(rows)
    comparison_rows, conclusions = [], []
    for pair in COMPARISONS:
        result = compare(list(pair))
        for r in result["rows"]:
            comparison_rows.append(
                {
                    "design": r["name"],
                    "input": "x".join(map(str, r["input"])),
                    "output": "x".join(map(str, r["output"])),
                    "params": f"{r['params']:,}",
                    "MACs": f"{r['macs']:,}",
                    "receptive field": r["receptive_field"],
                    "vs first of pair": f"{r['params_ratio']:.2f}x params",
                }
            )
        conclusions += result["conclusions"]
    html += "<h3>Why 3×3 stacks, bottlenecks and 1×1 reductions</h3>" + table(comparison_rows)
    html += "<ul>" + "".join(f"<li>{c}</li>" for c in conclusions) + "</ul>"
    assert trained is not None  # CNN_TOUR_RECIPE is one of CNN_RECIPES
    html += "<h3>ResNet-20 on digits32</h3>" + run_section(trained, tour.figures(CNN_TOUR_RECIPE))
    return html
