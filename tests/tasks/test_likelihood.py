"""The likelihood task end to end, as a user runs it: train, eval, sample; and its errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from dlcamp.engine.run import build, resolve
from dlcamp.recipes import get_recipe


def test_cvae_run_reports_nats_both_elbo_terms_figures_and_samples_on_demand(cli, tmp_path, usage_error):
    run = tmp_path / "cvae"
    proc = cli(
        "train",
        "cvae-digits",
        "-o",
        str(run),
        "--set",
        "trainer.max_epochs=2",
        "--set",
        "model.eval_k=20",
        "--set",
        "model.hidden=[32]",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    m = summary["metrics"]
    for key in ("nll_nats", "bpd", "elbo_nats", "recon_nats", "kl_nats"):
        assert math.isfinite(m[f"test/{key}"]), key
    assert m["test/elbo_nats"] == pytest.approx(m["test/recon_nats"] + m["test/kl_nats"], rel=1e-6)
    assert m["test/nll_nats"] <= m["test/elbo_nats"] + 0.5  # IWAE(k=20) is (nearly always) the tighter bound
    assert m["test/bpd"] == pytest.approx(m["test/nll_nats"] / (64 * math.log(2)))
    assert 10 < m["test/nll_nats"] < 64 * math.log(2) + 1  # better than coin flips, not absurdly good
    header = (run / "metrics.csv").read_text().splitlines()[0]
    for col in ("train/recon", "train/kl", "val/loss", "val/bpd"):
        assert col in header
    figures = {p.name for p in (run / "figures").glob("*.png")}
    assert {
        "samples.png",
        "sample_means.png",
        "reconstructions.png",
        "latent_traversal.png",
        "latent_map.png",
    } <= figures

    proc = cli("eval", str(run))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["test/nll_nats"] == pytest.approx(m["test/nll_nats"], rel=1e-9)  # seeded estimate

    out = tmp_path / "grid.png"
    proc = cli("sample", str(run), "-n", "12", "-o", str(out), "--condition", "3,7")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size[0] > 100
    usage_error(cli("sample", str(run), "--condition", "12", "-o", str(tmp_path / "x.png")), "--condition")
    usage_error(cli("sample", str(run), "-n", "0", "-o", str(tmp_path / "x.png")), "-n")
    usage_error(cli("sample", str(run), "-o", str(tmp_path / "x.jpg")), ".png")
    assert not (tmp_path / "x.png").exists()


def test_nade_run_has_completions_and_samples(cli, tmp_path, usage_error):
    run = tmp_path / "nade"
    proc = cli("train", "nade-digits", "-o", str(run), "--set", "trainer.max_epochs=1", "--set", "model.hidden=16")
    assert proc.returncode == 0, proc.stderr
    assert (run / "figures" / "completions.png").exists()
    assert "elbo_nats" not in json.loads((run / "summary.json").read_text())["metrics"]
    proc = cli("sample", str(run), "-n", "8", "-o", str(tmp_path / "s.png"))
    assert proc.returncode == 0, proc.stderr
    usage_error(cli("sample", str(run), "--condition", "3", "-o", str(tmp_path / "y.png")), "not conditional")

    # predict scores files: -log p(x) in nats
    img = tmp_path / "digit.png"
    Image.fromarray((torch.rand(8, 8) > 0.5).numpy().astype("uint8") * 255).save(img)
    proc = cli("predict", str(run), str(img), "-o", str(tmp_path / "scores.csv"))
    assert proc.returncode == 0, proc.stderr
    header, row = (tmp_path / "scores.csv").read_text().strip().splitlines()
    assert header == "file,nll_nats,bpd" and 0 < float(row.split(",")[1]) < 100


def test_sample_refuses_a_classification_run(cli, tmp_path, tiny, usage_error):
    run = tmp_path / "mlp"
    assert cli("train", "mlp-digits", "-o", str(run), *tiny).returncode == 0
    usage_error(cli("sample", str(run), "-o", str(tmp_path / "s.png")), "generative", "classification")


def test_likelihood_needs_a_density_model_and_binary_data(cli, tmp_path, usage_error):
    usage_error(cli("train", "bernoulli-digits", "-o", str(tmp_path / "a"), "--set", "model.name=mlp"), "density model")
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="binary"):
        built = build(resolve(get_recipe("bernoulli-digits"), ["data.binarize=none", "model.name=vae"]))
        built.datamodule.setup("fit")
        x, y = next(iter(built.datamodule.train_dataloader()))
        built.task.model.nll_loss(x)


def test_training_lowers_the_nll_below_the_baseline_fit():
    """A few hundred NADE steps beat the closed-form independent-Bernoulli fit on held-out digits."""
    from dlcamp.data.digits import _digit_tensors, _split_indices
    from dlcamp.models import get_model

    torch.manual_seed(0)
    images, _ = _digit_tensors(8)
    split = _split_indices()
    train = (images[split["train"]] > 0.5).float()
    test = (images[split["test"]] > 0.5).float()
    p = (train.mean(0) * len(train) + 1) / (len(train) + 2)  # the baseline's MLE, add-one smoothed
    baseline = -(test * p.log() + (1 - test) * (1 - p).log()).flatten(1).sum(1).mean()
    model = get_model("nade", input_shape=(1, 8, 8), hidden=64)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _step in range(300):
        idx = torch.randint(len(train), (64,))
        opt.zero_grad()
        model.nll_loss(train[idx])["loss"].mean().backward()
        opt.step()
    with torch.no_grad():
        nade_nll = -model.log_prob(test).mean()
    assert nade_nll < baseline - 5, (nade_nll, baseline)


class _Digits:
    num_classes = 10
    class_names: list[str] = []


@pytest.mark.parametrize("name, conditional", [("nade", False), ("cvae", True)])
def test_the_task_is_an_image_sampler_conditional_as_its_model(name, conditional):
    from dlcamp.models import get_model
    from dlcamp.tasks.base import ImageSampler
    from dlcamp.tasks.likelihood import likelihood

    torch.manual_seed(0)
    options = {"hidden": 8} if name == "nade" else {"hidden": [8], "latent_dim": 2}
    task = likelihood(model=get_model(name, input_shape=(1, 4, 4), **options), datamodule=_Digits())
    assert isinstance(task, ImageSampler) and task.conditional is conditional
    assert task.class_names == [str(k) for k in range(10)]  # the data module names none: indices
    images, titles = task.sample_images(3)
    assert images.shape == (3, 1, 4, 4)
    assert titles == (["0", "1", "2"] if conditional else None)


def test_the_builder_names_the_missing_density_model_contract():
    from dlcamp.errors import UsageError
    from dlcamp.models import get_model
    from dlcamp.tasks.likelihood import likelihood

    with pytest.raises(UsageError, match="needs a density model .* got MLP"):
        likelihood(model=get_model("mlp", width=8), datamodule=_Digits())
