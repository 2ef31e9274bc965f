"""Two CPU processes (gloo) train the MLP recipe and write one run directory."""

from __future__ import annotations

import json


def test_ddp_two_processes_write_one_run_directory(cli, tmp_path):
    run = tmp_path / "run"
    proc = cli(
        "train",
        "mlp-digits",
        "-o",
        str(run),
        "--devices",
        "2",
        "--set",
        "trainer.max_epochs=2",
        "--set",
        "model.width=32",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    # 1,257 training images, batch 64: 20 steps an epoch alone, 10 per process when the
    # two processes split the data
    assert summary["steps"] == 2 * 10
    assert summary["metrics"]["test/acc"] > 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no second directory
    assert (run / "checkpoints" / "last.ckpt").exists()
