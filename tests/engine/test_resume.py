"""A crash mid-training loses only the steps since the last checkpoint, and a resumed run
ends with exactly the weights of an uninterrupted one (CPU, deterministic)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

# dropout and mixup make the test depend on the RNG stream being restored too
COMMON = [
    "--set",
    "trainer.max_epochs=3",
    "--set",
    "model.width=32",
    "--set",
    "model.dropout=0.2",
    "--set",
    "task.mixup_alpha=0.4",
]


def _steps(path):
    import csv

    with open(path, newline="") as f:
        return sorted(int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss_step"))


@pytest.mark.parametrize("crash_after, every", [(30, 7), (40, 0)], ids=["mid-epoch", "epoch-boundary"])
def test_killed_and_resumed_run_equals_uninterrupted(cli, tmp_path, crash_after, every):
    ref, run = tmp_path / "ref", tmp_path / "run"
    args = [*COMMON, "--set", f"trainer.checkpoint_every_n_steps={every}"]
    assert cli("train", "mlp-digits", "-o", str(ref), *args).returncode == 0

    proc = cli("train", "mlp-digits", "-o", str(run), *args, env={"DLCAMP_CRASH_AFTER_STEP": str(crash_after)})
    assert proc.returncode == -9, proc.stderr  # SIGKILL, as a dying machine
    assert (run / "checkpoints" / "last.ckpt").exists()
    assert not (run / "summary.json").exists()
    assert not list((run / "checkpoints").glob(".*.tmp"))  # no half-written checkpoint left behind
    saved_step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert 0 < saved_step <= crash_after

    proc = cli("train", "mlp-digits", "-o", str(run), "--resume")
    assert proc.returncode == 0, proc.stderr
    a, b = load_file(ref / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (ref, run))
    # the per-step history survives the crash: every logged step is there once, as in ref
    logged = [_steps(d / "metrics.csv") for d in (ref, run)]
    assert logged[0] == logged[1]
    assert sa["steps"] == sb["steps"] == 60
    assert sa["metrics"] == sb["metrics"]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(cli, tmp_path):
    run = tmp_path / "run"
    proc = cli("train", "mlp-digits-sgd", "-o", str(run), "--set", "trainer.max_epochs=3", "--set", "optim.lr=1e30")
    assert proc.returncode == 1, proc.stderr
    assert "loss became" in proc.stderr and "at step" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (run / "summary.json").exists()
    if (run / "checkpoints" / "last.ckpt").exists():  # any checkpoint kept holds finite weights
        ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
        assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
