"""GAN figures draw from what the task logs, negative (critic) losses included."""

from __future__ import annotations

import torch

from dlcamp.report.figures import common
from dlcamp.report.figures.adversarial import plot_adversarial_curves, plot_point_progress, plot_points


def test_curves_take_negative_losses_and_the_fid_trace(tmp_path):
    series = {
        "train/d_loss": [(s, -1.0 + 0.01 * s) for s in range(50)],  # a critic's loss is negative
        "train/g_loss": [(s, 0.5) for s in range(0, 50, 5)],
        "train/d_real": [(s, 0.6) for s in range(50)],
        "train/d_fake": [(s, 0.4) for s in range(50)],
        "val/fid": [(10.0, 30.0), (20.0, 12.0)],
    }
    fig = plot_adversarial_curves(series, loss="wgan_gp")
    assert len(fig.axes) == 3 and "FID" in fig.axes[2].get_title()
    assert common.save(fig, tmp_path / "training.png").stat().st_size > 0
    # the shared curves plot keeps a linear axis when a loss is negative
    fig = common.plot_curves(series)
    assert fig.axes[0].get_yscale() == "linear"


def test_points_are_drawn_over_the_modes_and_their_3_sigma_circles(tmp_path):
    centers = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    fig = plot_points(torch.randn(100, 2) * 0.01 + centers[0], centers, 0.05, title="x")
    assert len(fig.axes[0].patches) == 2 and fig.axes[0].patches[0].get_radius() == 0.05 * 3
    fig = plot_point_progress([(0, torch.randn(10, 2)), (4, torch.randn(10, 2))], centers)
    assert [a.get_title() for a in fig.axes[:2]] == ["epoch 1", "epoch 5"]
    assert common.save(fig, tmp_path / "progress.png").stat().st_size > 0
