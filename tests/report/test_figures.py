"""The figures package: common helpers in one module, each family's plots found in a module of its own."""

from __future__ import annotations

import pytest

from dlcamp.report import figures as F

# Every figure the task modules, the engine, the tour and the command line call as F.NAME.
CALLED_AS_F = [
    "save",
    "read_metrics_csv",
    "plot_curves",
    "plot_compare",
    "ema",
    "plot_image_grid",
    "confusion_matrix",
    "plot_confusion",
    "plot_latent_map",
    "plot_attention",
    "plot_text",
    "draw_boxes",
    "plot_detections",
    "plot_anchors",
    "plot_pr_curves",
]


def test_every_figure_used_today_is_reachable_from_the_package():
    for name in CALLED_AS_F:
        assert callable(getattr(F, name)), name
    assert set(CALLED_AS_F) <= set(dir(F))


def test_family_plots_live_in_their_own_modules_and_are_found_by_name():
    modules = {m.__name__.rsplit(".", 1)[-1]: m for m in F.family_modules()}
    assert {"common", "classification", "generative", "sequence", "detection"} <= set(modules)
    assert F.plot_detections is modules["detection"].plot_detections
    assert F.plot_attention is modules["sequence"].plot_attention
    for module in modules.values():  # what a module lists is what the package hands out
        for name in module.__all__:
            assert getattr(F, name) is getattr(module, name), (module.__name__, name)


def test_an_unknown_figure_names_itself():
    with pytest.raises(AttributeError, match="plot_nothing"):
        F.plot_nothing  # noqa: B018
    from dlcamp.report.figures import plot_pr_curves  # from-imports find family plots too

    assert plot_pr_curves is F.plot_pr_curves
