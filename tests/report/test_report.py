from __future__ import annotations

import pytest
import torch

from dlcamp.report import figures as F
from dlcamp.report.html import page, write_run_report


def test_confusion_matrix_counts_rows_true_columns_predicted():
    cm = F.confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 2]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_report_is_self_contained(tmp_path):
    png = F.save(F.plot_image_grid(torch.rand(3, 1, 8, 8), ["a", "b", "c"], highlight=[True, False, False]),
                 tmp_path / "figures" / "grid.png")
    path = write_run_report(tmp_path, {"recipe": "r", "metrics": {"test/acc": 0.5}}, [png])
    text = path.read_text()
    assert text.count("data:image/png;base64,") == 1 and "src=\"figures" not in text
    assert "test/acc" in text
    assert "<h2>A</h2>" in page("t", [("A", "x")])


def test_ema_is_debiased_and_smooths():
    assert F.ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards 0 at the start
    smoothed = F.ema([0.0, 1.0] * 10, 0.8)
    assert max(smoothed[5:]) - min(smoothed[5:]) < 0.5
