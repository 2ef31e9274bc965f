"""The adversarial task end to end: two optimizers, n_critic, sample scores, figures, resume."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from dlcamp.engine.run import build, resolve
from dlcamp.errors import UsageError
from dlcamp.recipes import get_recipe

SMALL_CGAN = [
    "--set", "trainer.max_epochs=2",
    "--set", "model.hidden=[32]",
    "--set", "model.d_hidden=[32]",
    "--set", "task.n_critic=2",
    "--set", "data.batch_size=64",
]  # fmt: skip


def test_cgan_run_scores_its_samples_in_digit_features_and_samples_a_class_on_demand(cli, tmp_path, usage_error):
    run = tmp_path / "cgan"
    proc = cli("train", "cgan-digits", "-o", str(run), *SMALL_CGAN)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    m = summary["metrics"]
    for key in ("fid", "kid", "precision", "recall", "sharpness", "class_accuracy", "d_real", "d_fake"):
        assert math.isfinite(m[f"test/{key}"]), key
    assert m["test/fid"] > 0 and 0 <= m["test/precision"] <= 1 and 0 <= m["test/class_accuracy"] <= 1
    # n_critic = 2: every batch one discriminator step, every second batch one generator step;
    # Lightning counts both optimizers' steps
    batches = 2 * math.ceil(1257 / 64)
    assert summary["steps"] == batches + batches // 2
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("train/d_loss") for r in rows) and any(r.get("train/g_loss") for r in rows)
    assert [r["val/fid"] for r in rows if r.get("val/fid")]  # the FID trace, every epoch
    assert {"lr/generator", "lr/discriminator"} <= set(rows[0])
    figures = {p.name for p in (run / "figures").glob("*.png")}
    assert {"training.png", "samples.png", "interpolation.png", "progress.png"} <= figures
    # the averaged generator is saved with the weights
    assert any(k.startswith("generator_ema.") for k in load_file(run / "model.safetensors"))

    out = tmp_path / "threes.png"
    proc = cli("sample", str(run), "-n", "16", "-o", str(out), "--condition", "3")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size[0] > 100
    usage_error(cli("sample", str(run), "--condition", "11", "-o", str(tmp_path / "x.png")), "--condition")
    assert not (tmp_path / "x.png").exists()


def test_a_killed_gan_run_resumes_to_the_same_weights_and_optimizer_states(cli, tmp_path, usage_error):
    common = ["--set", "trainer.max_epochs=3", "--set", "data.sizes=[1024,256,256]", "--set", "task.ema=0.9"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert cli("train", "gan-ring8", "-o", str(ref), *common).returncode == 0
    proc = cli("train", "gan-ring8", "-o", str(run), *common, "--set", "trainer.checkpoint_every_n_steps=5",
               env={"DLCAMP_CRASH_AFTER_STEP": "13"})  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    assert cli("train", "gan-ring8", "-o", str(run), "--resume").returncode == 0
    a, b = load_file(ref / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("generator_ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ca, cb = (torch.load(d / "checkpoints" / "last.ckpt", weights_only=False) for d in (ref, run))
    assert len(ca["optimizer_states"]) == 2
    for sa, sb in zip(ca["optimizer_states"], cb["optimizer_states"]):
        for k, state in sa["state"].items():
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(sb["state"][k][name])), (k, name)
    ma, mb = (json.loads((d / "summary.json").read_text())["metrics"] for d in (ref, run))
    assert ma == mb and "test/modes" in ma and "test/high_quality" in ma
    assert (run / "figures" / "progress.png").exists()
    # points are not images: `dlcamp sample` says where the samples are
    usage_error(cli("sample", str(run), "-o", str(tmp_path / "s.png")), "2-D points")


@pytest.mark.parametrize(
    "recipe, overrides, words",
    [
        ("gan-digits", ["task.loss=wasserstein"], ["task.loss", "wgan_gp"]),
        ("gan-digits", ["task.n_critic=0"], ["n_critic"]),
        ("gan-digits", ["model={name: mlp, hidden: [8]}"], ["needs a GAN"]),
        ("gan-digits", ["optim={generator: {name: adam}}"], ["discriminator"]),
        ("dcgan-digits32", ["data.size=30"], ["s0"]),
    ],
)
def test_adversarial_usage_errors(recipe, overrides, words):
    with pytest.raises(UsageError) as err:
        build(resolve(get_recipe(recipe), overrides))
    for w in words:
        assert w in str(err.value)


def test_one_optimizer_spec_is_the_same_optimizer_for_each_player():
    built = build(resolve(get_recipe("gan-digits"), ["optim={name: adam, lr: 0.001}", "model.hidden=[8]"]))
    assert set(built.task.optim_cfg) == {"generator", "discriminator"}
    assert not built.task.automatic_optimization


@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "lsgan", "hinge", "wgan_gp"])
def test_every_loss_trains_validates_and_scores_a_ring(tmp_path, loss):
    from dlcamp.engine.run import train

    overrides = [f"task.loss={loss}", "trainer.max_epochs=1", "data.sizes=[512,256,256]", "model.hidden=[16]"]
    summary = train(resolve(get_recipe("gan-ring8"), overrides), tmp_path / loss, progress="none")
    m = summary["metrics"]
    assert 0 <= m["test/modes"] <= 8 and 0 <= m["test/high_quality"] <= 1
    assert math.isfinite(m["test/d_real"])
    assert (tmp_path / loss / "figures" / "samples.png").exists()


@pytest.mark.parametrize(
    "recipe, folder, small",
    [
        ("dcgan-mnist", "MNIST", "model.width=8"),
        ("cgan-mnist", "MNIST", "model.hidden=[16]"),
        ("dcgan-fashion-mnist", "FashionMNIST", "model.width=8"),
    ],
)
def test_the_mnist_recipes_train_on_idx_files_from_data_root(tmp_path, recipe, folder, small):
    """MNIST is not on this machine: random IDX files in its layout show the recipe runs end to end."""
    from tests.data.test_vision import write_idx_files

    from dlcamp.engine.run import train

    write_idx_files(tmp_path / "data" / folder / "raw")
    overrides = [f"data.root={tmp_path / 'data'}", "trainer.max_steps=4", small, "data.batch_size=16"]
    summary = train(resolve(get_recipe(recipe), overrides), tmp_path / "run", progress="none")
    assert math.isfinite(summary["metrics"]["test/d_real"]) and "test/fid" not in summary["metrics"]
