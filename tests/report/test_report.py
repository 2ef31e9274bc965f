from __future__ import annotations

import pytest
import torch

from dlcamp.report import figures as F
from dlcamp.report.html import Part, anchor_of, page, write_run_report


def test_confusion_matrix_counts_rows_true_columns_predicted():
    cm = F.confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 2]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_report_is_self_contained(tmp_path):
    png = F.save(
        F.plot_image_grid(torch.rand(3, 1, 8, 8), ["a", "b", "c"], highlight=[True, False, False]),
        tmp_path / "figures" / "grid.png",
    )
    path = write_run_report(tmp_path, {"recipe": "r", "metrics": {"test/acc": 0.5}}, [png])
    text = path.read_text()
    assert text.count("data:image/png;base64,") == 1 and 'src="figures' not in text
    assert "test/acc" in text
    assert '<h2 id="a">A</h2>' in page("t", [("A", "x")])


def test_run_report_opens_with_contents_linking_summary_and_each_figure(tmp_path):
    pngs = [
        F.save(F.plot_image_grid(torch.rand(2, 1, 8, 8)), tmp_path / "figures" / f"{name}.png")
        for name in ("curves", "confusion_matrix")
    ]
    text = write_run_report(tmp_path, {"recipe": "r", "metrics": {"test/acc": 0.5}}, pngs).read_text()
    toc = text[text.index("<nav") : text.index("</nav>")]
    links = [toc.index(f'href="#{a}"') for a in ("summary", "curves", "confusion-matrix")]
    assert links == sorted(links)
    for anchor in ("summary", "curves", "confusion-matrix"):
        assert f'<h2 id="{anchor}">' in text
    assert text.index("</nav>") < text.index('<h2 id="summary">')


def test_contents_only_for_several_sections_with_unique_anchors_and_notes():
    assert "<nav" not in page("t", [("Only", "x")])
    text = page(
        "t",
        [
            Part("Modern CNNs", "a", anchor="cnn", note="12 s of a 15 s budget"),
            ("Modern CNNs", "b"),
            ("Modern CNNs", "c"),
        ],
    )
    assert "<a href=\"#cnn\">Modern CNNs</a> <span class='muted'>12 s of a 15 s budget</span>" in text
    assert '<h2 id="cnn">' in text and '<h2 id="modern-cnns">' in text and '<h2 id="modern-cnns-2">' in text
    assert anchor_of("Sequence models: RNN, LSTM & GRU") == "sequence-models-rnn-lstm-gru"


def test_ema_is_debiased_and_smooths():
    assert F.ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards 0 at the start
    smoothed = F.ema([0.0, 1.0] * 10, 0.8)
    assert max(smoothed[5:]) - min(smoothed[5:]) < 0.5
