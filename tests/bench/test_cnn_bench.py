"""The ResNet training-step benchmark runs end to end on a tiny configuration (no timing is checked).

The compile modes are not run here: a cold ``torch.compile`` of even ResNet-18's training
step (forward and backward) at 32x32 took 66 s on one CPU core, over this suite's budget
for one test. ``dlcamp bench resnet50`` runs them.
"""

from __future__ import annotations

import json

import pytest

from dlcamp.bench import get_benchmark, list_benchmarks
from dlcamp.bench.cnn import resnet50
from dlcamp.errors import UsageError

TINY = dict(model="resnet18", batch_size=2, image_size=32, steps=1, warmup=1, device="cpu")
ROW_KEYS = {
    "mode",
    "ours_img_s",
    "torchvision_img_s",
    "ratio",
    "meets_goal",
    "ours_ms",
    "torchvision_ms",
    "loss_diff",
    "same_loss",
    "param_diff",
    "same_params",
}


@pytest.fixture(scope="module")
def tiny_result() -> dict:
    return resnet50(modes=["eager", "channels_last"], **TINY)


def test_resnet_benchmark_reports_one_row_per_mode(tiny_result: dict) -> None:
    assert {"title", "rows", "notes", "ok", "machine", "torch", "torchvision", "step_times_ms"} <= set(tiny_result)
    assert [len(tiny_result["step_times_ms"]["eager"][name]) for name in ("ours", "torchvision")] == [2, 2]
    assert [row["mode"] for row in tiny_result["rows"]] == ["eager", "channels_last"]
    for row in tiny_result["rows"]:
        assert set(row) == ROW_KEYS
        assert row["ours_img_s"] > 0 and row["torchvision_img_s"] > 0 and row["ratio"] > 0
        assert row["ours_ms"] > 0 and row["torchvision_ms"] > 0
        assert isinstance(row["meets_goal"], bool)
    assert any("figure of merit" in note for note in tiny_result["notes"])
    json.dumps(tiny_result)  # the CLI can write it as JSON


def test_our_training_step_matches_torchvisions(tiny_result: dict) -> None:
    # Same weights, same batch: the first step's loss and the parameters after it agree.
    for row in tiny_result["rows"]:
        assert row["same_loss"] and row["loss_diff"] <= 1e-5, row
        assert row["same_params"] and row["param_diff"] <= 1e-5, row
    assert tiny_result["ok"] is True


def test_resnet_benchmark_is_registered() -> None:
    assert "resnet50" in list_benchmarks()
    assert get_benchmark("resnet50") is resnet50


@pytest.mark.parametrize(
    "settings",
    [
        dict(modes=["eagre"]),
        dict(model="vgg16"),
        dict(dtype="float16"),
        dict(steps=0),
        dict(batch_size=1),
        dict(modes=[]),
        dict(modes=["compile"], warmup=0),
        dict(device="tpu"),
    ],
)
def test_resnet_benchmark_rejects_bad_settings_before_timing(settings: dict) -> None:
    with pytest.raises(UsageError):
        resnet50(**{**TINY, **settings})
