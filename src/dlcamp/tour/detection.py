"""The tour's detection section: SSD and Faster R-CNN on the shapes world, COCO mAP, anchors."""

from __future__ import annotations

from dlcamp.tour import Tour, tour_section

# The detection week: (recipe, overrides in the tour, overrides in the quick tour). The test
# split is cut to 100 scenes (50 in the quick tour) to keep evaluation short.
DETECTION_SMALL = ["data.val_size=50", "data.test_size=100"]
DETECTION_QUICK = ["trainer.max_steps=20", "data.train_size=320", "data.val_size=20", "data.test_size=50"]
DETECTION_TOUR = [
    ("ssd-shapes", ["trainer.max_steps=300", *DETECTION_SMALL], DETECTION_QUICK),
    ("fasterrcnn-shapes", ["trainer.max_steps=200", *DETECTION_SMALL], DETECTION_QUICK),
]


@tour_section("detection", title="Object detection: SSD and Faster R-CNN", order=50, budget_s=85, quick_budget_s=10)
def detection_section(tour: Tour) -> str:
    """Detection on the shapes world: SSD (one stage) and Faster R-CNN (two stages), COCO mAP, anchors."""
    from dlcamp.report.html import img_tag, table

    def metrics(summary: dict) -> dict[str, object]:
        m = summary["metrics"]
        return {
            "test mAP@0.5": round(m["test/map_50"], 4),
            "test mAP@[.5:.95]": round(m["test/map"], 4),
            "ours vs pycocotools": f"{m['test/ours_vs_pycocotools']:.1e}",
        }

    rows = tour.rows(DETECTION_TOUR, metrics)
    figures = [
        tour.out / recipe / "figures" / f"{name}.png"
        for recipe, _, _ in DETECTION_TOUR
        for name in ("detections", "anchors", "pr_curves")
    ]
    html = (
        "<p>Object detection on the shapes world, scenes of circles, squares, triangles, stars and crosses "
        "on textured ground, generated here (<code>dlcamp data export shapes</code> writes them as COCO JSON). "
        "SSD predicts classes and box offsets for ~1,400 default boxes over four feature scales in one pass, "
        "balancing the flood of background boxes by hard negative mining; Faster R-CNN first proposes regions "
        "with an RPN over anchors, then classifies a 7x7 RoI Align window of each. mAP is pycocotools' "
        "(ours, computed beside it, agrees to the last digit). The tour's budgets are short; "
        "BENCHMARKS.md has both detectors at their full budgets, with inference speed and the ablations.</p>"
    )
    html += table(rows) + "".join(img_tag(p, f"{p.parent.parent.name}: {p.stem}") for p in figures if p.exists())
    return html
