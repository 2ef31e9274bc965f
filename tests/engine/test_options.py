"""Recipe options of the engine: mixed precision, channels_last, torch.compile, early stopping."""

from __future__ import annotations

import json

import pytest

TINY = ["--set", "model.width=32", "--set", "trainer.max_epochs=1", "--set", "data.augment=null"]


@pytest.mark.parametrize(
    "option", ["trainer.precision=bf16-mixed", "trainer.channels_last=true", "trainer.compile=true"]
)
def test_engine_options_train_to_a_sensible_model(cli, tmp_path, option):
    run = tmp_path / "run"
    proc = cli("train", "mlp-digits", "-o", str(run), *TINY, "--set", "trainer.max_epochs=3", "--set", option)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["test/acc"] > 0.8
    assert not any(k.startswith("_orig_mod") for k in summary)  # compiled weights keep their names
    from safetensors.torch import load_file

    assert all(not k.startswith("_orig_mod") for k in load_file(run / "model.safetensors"))


def test_early_stopping_stops_before_max_epochs(cli, tmp_path):
    run = tmp_path / "run"
    proc = cli(
        "train",
        "mlp-digits",
        "-o",
        str(run),
        *TINY,
        "--set",
        "trainer.max_epochs=100",
        "--set",
        "trainer.early_stopping={monitor: val/loss, mode: min, patience: 2}",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] < 100
