"""The segmentation benchmark runs end to end on tiny budgets: rows, torchmetrics beside ours, reuse (no timing checked)."""

from __future__ import annotations

import json

import pytest

from dlcamp.bench import list_benchmarks
from dlcamp.bench.segmentation import VARIANTS, segmentation
from dlcamp.errors import UsageError

TINY = [
    "data.image_size=48",
    "data.max_size=20",
    "data.train_size=8",
    "data.val_size=2",
    "data.test_size=4",
    "data.batch_size=4",
    "trainer.max_steps=2",
    "model.head_width=16",
    "model.backbone_options={widths: [8, 8, 16, 16]}",
]


def test_segmentation_benchmark_scores_each_variant_with_torchmetrics_beside_ours(tmp_path):
    result = segmentation(variants=["fcn32s", "fcn8s"], overrides=TINY, fps_images=4, out=str(tmp_path))
    assert [r["variant"] for r in result["rows"]] == ["fcn32s", "fcn8s"]
    for row in result["rows"]:
        assert 0 <= row["test mIoU"] <= 1 and 0 <= row["boundary mIoU (3 px)"] <= 1
        assert row["|ours - torchmetrics|"] < 1e-6
        assert row["FPS (batch 1, CPU)"] > 0 and row["steps"] == 2 and row["MACs / image"] > 0
    assert any("goal: best variant test mIoU >= 0.85" in n for n in result["notes"])
    json.dumps(result)
    # reuse: the runs are taken back, not trained again, when their settings match
    mtime = (tmp_path / "fcn8s" / "model.safetensors").stat().st_mtime_ns
    again = segmentation(variants=["fcn8s"], overrides=TINY, fps_images=4, out=str(tmp_path), reuse=True)
    assert (tmp_path / "fcn8s" / "model.safetensors").stat().st_mtime_ns == mtime
    assert again["rows"][0]["test mIoU"] == result["rows"][1]["test mIoU"]
    with pytest.raises(UsageError, match="reuse"):
        segmentation(variants=["fcn8s"], overrides=TINY + ["optim.lr=0.5"], out=str(tmp_path), reuse=True)


def test_segmentation_benchmark_refuses_unknown_variants_and_is_registered():
    assert "segmentation" in list_benchmarks()
    assert set(VARIANTS) == {"fcn32s", "fcn16s", "fcn8s"}
    with pytest.raises(UsageError, match="fcn4s"):
        segmentation(variants=["fcn4s"])
