"""The detection benchmark runs end to end on tiny budgets: rows, anchors, goals (no timing is checked)."""

from __future__ import annotations

import json

import pytest

from dlcamp.bench import list_benchmarks
from dlcamp.bench.detection import VARIANTS, detection
from dlcamp.errors import UsageError

TINY = [
    "data.image_size=64",
    "data.train_size=24",
    "data.val_size=4",
    "data.test_size=6",
    "data.batch_size=8",
    "data.max_size=28",
    "trainer.max_steps=3",
    "model.widths=[8,16,16,16]",
]


def test_detection_benchmark_reports_each_variant_with_anchor_iou_for_the_anchor_rows(tmp_path):
    result = detection(
        variants=["ssd-hnm1", "fasterrcnn-kmeans"], overrides=TINY, fps_images=2, fps_rounds=1, out=str(tmp_path)
    )
    assert [r["variant"] for r in result["rows"]] == ["ssd-hnm1", "fasterrcnn-kmeans"]
    for row in result["rows"]:
        assert 0 <= row["test mAP@0.5"] <= 1 and 0 <= row["test mAP@[.5:.95]"] <= 1
        assert row["FPS (batch 1, CPU)"] > 0 and row["steps"] == 3
        assert row["ours vs pycocotools"] < 1e-9
    assert "mean best-anchor IoU" not in result["rows"][0]
    assert 0 < result["rows"][1]["mean best-anchor IoU"] <= 1
    # the k-means anchors reached the model that was trained
    config = (tmp_path / "fasterrcnn-kmeans" / "config.yaml").read_text()
    assert "anchor_wh" in config and any("k-means anchors" in n for n in result["notes"])
    json.dumps(result)


def test_detection_benchmark_refuses_unknown_variants_and_is_registered():
    assert "detection" in list_benchmarks()
    with pytest.raises(UsageError, match="nope"):
        detection(variants=["nope"])
    assert {"ssd", "ssd-linear", "ssd-hnm1", "ssd-nohnm", "fasterrcnn", "fasterrcnn-4step", "fasterrcnn-kmeans"} == set(
        VARIANTS
    )


def test_detection_benchmark_reuses_earlier_runs_only_when_their_settings_match(tmp_path):
    first = detection(variants=["ssd"], overrides=TINY, fps_images=1, fps_rounds=1, out=str(tmp_path))
    mtime = (tmp_path / "ssd" / "model.safetensors").stat().st_mtime_ns
    again = detection(variants=["ssd"], overrides=TINY, fps_images=1, fps_rounds=1, out=str(tmp_path), reuse=True)
    assert (tmp_path / "ssd" / "model.safetensors").stat().st_mtime_ns == mtime  # not trained again
    assert again["rows"][0]["test mAP@0.5"] == first["rows"][0]["test mAP@0.5"]
    with pytest.raises(UsageError, match="reuse"):
        detection(variants=["ssd"], overrides=TINY + ["optim.lr=0.5"], fps_images=1, out=str(tmp_path), reuse=True)
