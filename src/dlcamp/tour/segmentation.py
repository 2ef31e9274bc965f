"""The tour's segmentation section: FCN-8s on the shapes world, mIoU, and how the map grows back."""

from __future__ import annotations

from dlcamp.tour import Tour, tour_section

SEGMENTATION_RECIPE = "fcn8s-shapes"
SEGMENTATION_FULL = ["trainer.max_steps=150", "data.batch_size=8", "data.val_size=20", "data.test_size=100"]
SEGMENTATION_QUICK = [
    "trainer.max_steps=30",
    "data.batch_size=8",
    "data.train_size=120",
    "data.val_size=8",
    "data.test_size=24",
]


@tour_section("segmentation", title="Semantic segmentation: FCN", order=55, budget_s=30, quick_budget_s=7)
def segmentation_section(tour: Tour) -> str:
    """FCN-8s on the shapes world: every pixel classified, mIoU and boundary mIoU, transposed convolutions."""
    from dlcamp.engine.run import resolve
    from dlcamp.metrics.complexity import profile_model
    from dlcamp.recipes import get_recipe
    from dlcamp.report.html import img_tag, table

    def metrics(summary: dict) -> dict[str, object]:
        m = summary["metrics"]
        return {
            "test mIoU": round(m["test/miou"], 4),
            "within 3 px of a boundary": round(m["test/boundary_miou"], 4),
            "pixel accuracy": round(m["test/pixel_acc"], 4),
        }

    overrides = SEGMENTATION_QUICK if tour.quick else SEGMENTATION_FULL
    rows = tour.rows([(SEGMENTATION_RECIPE, SEGMENTATION_FULL, SEGMENTATION_QUICK)], metrics)
    cfg = resolve(get_recipe(SEGMENTATION_RECIPE), list(overrides))
    args = {k: v for k, v in cfg["model"].items() if k != "name"}
    report = profile_model(cfg["model"]["name"], {**args, "num_classes": 9}, (3, 128, 128))
    growth = [
        {"layer": r["layer"], "type": r["type"], "output": "x".join(map(str, r["output"])), "jump": r["jump"]}
        for r in report["layers"]
        if r["layer"].startswith(("score", "up")) or r["layer"] == "trunk.fc.0"
    ]
    html = (
        "<p>Semantic segmentation gives every pixel a class: here the sky, grass, sand and water of the "
        "shapes world and the circles, squares, triangles, stars and crosses on them (9 classes; the data "
        "module draws each scene's label map with it). An FCN is a classifier turned into convolutions "
        "(fc6 and fc7 become a 3x3 and a 1x1 conv), so it outputs a coarse map of class scores at stride 32; "
        'transposed convolutions (stride-f convolutions "backwards", initialised to bilinear interpolation) '
        "bring it back to the input's size, and FCN-8s fuses in scores from the stride-16 and stride-8 maps "
        "on the way, so the boundaries are drawn from finer maps. mIoU is over all test pixels "
        "(torchmetrics' macro Jaccard index gives the same number); the boundary mIoU counts only pixels "
        "within 3 px of a class boundary. BENCHMARKS.md has FCN-32s, 16s and 8s at their full budgets.</p>"
    )
    html += table(rows)
    html += "<h3>How the map shrinks and grows back (FCN-8s on 128×128, <code>dlcamp params</code>)</h3>"
    html += table(growth)
    html += "".join(
        img_tag(p, f"{SEGMENTATION_RECIPE}: {p.stem.replace('_', ' ')}") for p in tour.figures(SEGMENTATION_RECIPE)
    )
    return html
