"""The command line as a user runs it: subprocess, exit status, output, files written."""

from __future__ import annotations

import json

import pytest
import yaml

RUN_FILES = [
    "config.yaml",
    "summary.json",
    "metrics.csv",
    "tb",
    "checkpoints/last.ckpt",
    "model.safetensors",
    "figures",
    "report.html",
]


def assert_usage_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_list_shows_registered_names(cli):
    proc = cli("list")
    assert proc.returncode == 0, proc.stderr
    for name in ("mlp", "digits", "mlp-digits", "adamw", "classification", "optim"):
        assert name in proc.stdout
    proc = cli("list", "recipes")
    assert proc.returncode == 0
    assert all("  " in line for line in proc.stdout.strip().splitlines())  # name  description


def test_train_writes_the_run_directory(cli, tiny, tmp_path):
    run = tmp_path / "run"
    proc = cli("train", "mlp-digits", "-o", str(run), *tiny)
    assert proc.returncode == 0, proc.stderr
    for name in RUN_FILES:
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    for key in (
        "recipe",
        "model",
        "dataset",
        "metrics",
        "epochs",
        "steps",
        "train_seconds",
        "params",
        "seed",
        "versions",
    ):
        assert key in summary
    assert summary["recipe"] == "mlp-digits" and summary["epochs"] == 2
    assert 0.5 < summary["metrics"]["test/acc"] <= 1.0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["width"] == 32 and cfg["trainer"]["max_epochs"] == 2  # overrides applied
    assert cfg["model"]["num_classes"] == 10  # filled in by the engine: rerunning reproduces the run
    assert list((run / "figures").glob("*.png"))
    assert "data:image/png;base64" in (run / "report.html").read_text()
    assert "train/loss_step" in (run / "metrics.csv").read_text()

    # eval re-evaluates the finished run to the same numbers
    proc = cli("eval", str(run))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["test/acc"] == pytest.approx(summary["metrics"]["test/acc"])

    # training into an existing run directory is refused
    proc = cli("train", "mlp-digits", "-o", str(run), *tiny)
    assert_usage_error(proc, "already exists", "--resume")


def test_rerunning_config_yaml_reproduces_the_run(cli, tiny, tmp_path):
    first = tmp_path / "a"
    assert cli("train", "mlp-digits", "-o", str(first), *tiny).returncode == 0
    proc = cli("train", str(first / "config.yaml"), "-o", str(tmp_path / "b"))
    assert proc.returncode == 0, proc.stderr
    a = json.loads((first / "summary.json").read_text())["metrics"]
    b = json.loads((tmp_path / "b" / "summary.json").read_text())["metrics"]
    assert a == b


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "no-such-recipe"], ["unknown recipe", "no-such-recipe"]),
        (["train", "mlp-digits", "--set", "model.widht=3"], ["unknown key", "model.widht", "width"]),
        (["train", "mlp-digits", "--set", "trainer.max_epoch=3"], ["unknown key", "max_epochs"]),
        (["train", "mlp-digits", "--set", "optim.lr=fast"], ["optim.lr", "float", "fast"]),
        (["train", "mlp-digits", "--set", "model.activation=swish"], ["model.activation", "relu"]),
        (["train", "mlp-digits", "--set", "trainer.max_epochs=0"], ["max_epochs", ">= 1"]),
        (["train", "mlp-digits", "--set", "data.batch_size=-3"], ["batch_size"]),
        (["train", "mlp-digits", "--set", "model.name=resnet9000"], ["unknown model", "resnet9000"]),
        (
            ["train", "mlp-digits", "--set", "data.name=mnist", "--set", "data.root=/nonexistent/mnist"],
            ["MNIST", "/nonexistent/mnist"],
        ),
        (["train", "mlp-digits", "--set", "oops"], ["key=value"]),
        (["eval", "/nonexistent/run"], ["not a run directory"]),
        (["params", "no-such-model"], ["unknown model"]),
        (["params", "mlp", "--input", "banana"], ["CxHxW"]),
        (["bench", "no-such-bench"], ["unknown benchmark"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_usage_errors_are_one_line_status_2_and_leave_nothing(cli, tmp_path, args, words):
    out = tmp_path / "run"
    if args[0] == "train":
        args = [*args, "-o", str(out)]
    proc = cli(*args, cwd=tmp_path)
    assert_usage_error(proc, *words)
    assert not out.exists()
    assert not (tmp_path / "runs").exists()


def test_resume_errors(cli, tmp_path):
    proc = cli("train", "mlp-digits", "--resume", "-o", str(tmp_path / "none"))
    assert_usage_error(proc, "cannot resume")


def test_predict_writes_csv(cli, tiny, tmp_path):
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    run = tmp_path / "run"
    assert cli("train", "mlp-digits", "-o", str(run), *tiny).returncode == 0
    digits = load_digits()
    paths = []
    for i in range(3):  # white-on-black digit images, as a user would have them
        img = Image.fromarray((digits.images[i] / 16 * 255).astype(np.uint8)).resize((32, 32))
        paths.append(tmp_path / f"d{i}.png")
        img.save(paths[-1])
    out = tmp_path / "pred.csv"
    proc = cli("predict", str(run), *map(str, paths), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = out.read_text().strip().splitlines()
    assert rows[0] == "file,class,probability,top3" and len(rows) == 4
    proc = cli("predict", str(run), str(tmp_path / "missing.png"))
    assert_usage_error(proc, "missing.png", "does not exist")


def test_params_table_and_json(cli):
    proc = cli("params", "mlp", "--json", "--set", "width=16", "--set", "depth=1")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    # 64*16 + 16 (hidden) + 16*10 + 10 (head)
    assert report["total_params"] == 64 * 16 + 16 + 16 * 10 + 10
    assert report["total_macs"] == 64 * 16 + 16 * 10
    proc = cli("params", "mlp")
    assert proc.returncode == 0 and "total" in proc.stdout
