"""A family plugs in without touching dlcamp: a toy family in a temporary package.

The package is found as any installed plug-in is, through the ``dlcamp.plugins`` entry
point of a distribution on the path. It brings a model with two parameter groups, a task
that steps two optimizers of its own choosing, a figure, a tour section and a recipe. The
test trains it with ``dlcamp train``, kills it mid-run and resumes it: the weights, both
optimizers' states and both schedules end bit for bit as in an uninterrupted run.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
from safetensors.torch import load_file

TOY_MODULE = '''
"""A toy family: a two-part classifier whose parts are trained by two different optimizers."""

from math import prod
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.models import register_model
from dlcamp.models.contracts import Grouped
from dlcamp.recipes import add_recipe_folder
from dlcamp.registry import forwards
from dlcamp.tasks import register_task
from dlcamp.tasks.base import Task


class ToyPair(nn.Module, Grouped):
    def __init__(self, *, input_shape: list[int], num_classes: int, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(prod(input_shape), width), nn.ReLU(),
                                     nn.Dropout(dropout))
        self.head = nn.Linear(width, num_classes)

    def param_groups(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "head": self.head}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


@register_model("toy_pair")
@forwards(ToyPair)
def toy_pair(**kwargs) -> ToyPair:
    """A toy two-part classifier (plug-in test)."""
    return ToyPair(**kwargs)


class ToyTask(Task):
    def __init__(self, model: nn.Module, *, head_first: bool = True) -> None:
        super().__init__(model)
        self.head_first = head_first

    def training_step(self, batch, batch_idx):
        x, y = batch
        order = ["head", "encoder"] if self.head_first else ["encoder", "head"]
        for group in order:  # two players, each its own optimizer, each its own step
            loss = F.cross_entropy(self.model(x), y)
            self.check_finite(loss)
            self.step_optimizer(group, loss)
            self.log(f"train/loss_{group}", loss, on_step=True)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", F.cross_entropy(self.model(x), y))

    @torch.no_grad()
    def evaluate(self, loader, prefix: str) -> dict[str, float]:
        self.eval()
        hits = total = 0
        for x, y in loader:
            hits += int((self.model(x).argmax(1) == y).sum())
            total += len(y)
        return {f"{prefix}/acc": hits / total}

    def figures(self, datamodule, out_dir: Path) -> list[Path]:
        from dlcamp.report import figures as F_

        w = self.model.head.weight.detach()[:, :16].reshape(-1, 1, 4, 4)
        w = (w - w.min()) / (w.max() - w.min() + 1e-12)
        return [F_.save(F_.plot_image_grid(w, None, suptitle="toy head weights"), out_dir / "toy_head.png")]


@register_task("toy")
@forwards(ToyTask)
def toy(*, model: nn.Module, datamodule, **kwargs) -> ToyTask:
    """Two optimizers on one classifier (plug-in test)."""
    return ToyTask(model, **kwargs)


add_recipe_folder(Path(__file__).parent / "recipes")


from dlcamp.report.html import run_section  # noqa: E402
from dlcamp.tour import Tour, tour_section  # noqa: E402


@tour_section("toy", title="Toy family", order=99, budget_s=30, quick_budget_s=10)
def toy_section(tour: Tour) -> str:
    """The toy family: two optimizers on one classifier."""
    summary = tour.train("toy-digits", ["trainer.max_epochs=1"])
    return "<p>A plug-in's own section.</p>" + run_section(summary, tour.figures("toy-digits"))
'''

TOY_RECIPE = """
description: the toy family on digits, two optimizers
seed: 3
model: {name: toy_pair, width: 16}
data: {name: digits, batch_size: 64}
task: {name: toy}
optim:
  encoder: {name: adam, lr: 1.0e-3, no_decay: true, weight_decay: 0.01, schedule: {name: cosine}}
  head: {name: sgd, lr: 0.1, momentum: 0.9, schedule: {name: linear, warmup_steps: 5}}
trainer: {max_epochs: 3, checkpoint_every_n_steps: 10, log_every_n_steps: 5}
"""


@pytest.fixture
def toy_family(tmp_path):
    """A package ``toyfam`` and a distribution declaring it under ``dlcamp.plugins``, on PYTHONPATH."""
    site = tmp_path / "site"
    pkg = site / "toyfam"
    (pkg / "recipes").mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(TOY_MODULE))
    (pkg / "recipes" / "toy-digits.yaml").write_text(TOY_RECIPE)
    dist = site / "toyfam-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyfam\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[dlcamp.plugins]\ntoy = toyfam\n")
    return {"PYTHONPATH": str(site)}


def _ckpt(run):
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _assert_same_state(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{where}[{i}]")
    elif not callable(a):
        assert a == b, where


def test_a_plugin_family_is_listed(cli, toy_family):
    listing = cli("list", env=toy_family)
    assert listing.returncode == 0, listing.stderr
    assert "toy_pair" in listing.stdout and "toy-digits" in listing.stdout
    assert "Two optimizers on one classifier" in listing.stdout  # the task, with its description
    assert "The toy family: two optimizers on one classifier." in listing.stdout  # its tour section
    # (tests/cli/test_tour.py runs a plug-in's section with `dlcamp tour --only`)


def test_a_plugin_family_trains_two_optimizers_and_resumes_bit_identically(cli, tmp_path, toy_family):
    ref, run = tmp_path / "ref", tmp_path / "run"
    proc = cli("train", "toy-digits", "-o", str(ref), env=toy_family)
    assert proc.returncode == 0, proc.stderr
    assert (ref / "figures" / "toy_head.png").exists()
    header = (ref / "metrics.csv").read_text().splitlines()[0].split(",")
    # the engine logs each optimizer's learning rate (LearningRateMonitor), the task logs none
    assert {"lr/encoder/decay", "lr/encoder/no_decay", "lr/head"} <= set(header), header

    proc = cli("train", "toy-digits", "-o", str(run), env={**toy_family, "DLCAMP_CRASH_AFTER_STEP": "50"})
    assert proc.returncode == -9, proc.stderr
    saved = _ckpt(run)
    assert 0 < saved["global_step"] <= 50 and len(saved["optimizer_states"]) == 2

    proc = cli("train", "toy-digits", "-o", str(run), "--resume", env=toy_family)
    assert proc.returncode == 0, proc.stderr
    a, b = load_file(ref / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ca, cb = _ckpt(ref), _ckpt(run)
    assert ca["global_step"] == cb["global_step"] == 3 * 20 * 2  # 20 batches an epoch, two optimizer steps each
    for i, (oa, ob) in enumerate(zip(ca["optimizer_states"], cb["optimizer_states"])):
        _assert_same_state(oa["state"], ob["state"], f"optimizer {i} state")
        # torch's load_state_dict adds flags (differentiable) absent from a fresh optimizer's groups
        for ga, gb in zip(oa["param_groups"], ob["param_groups"]):
            _assert_same_state(ga, {k: gb[k] for k in ga}, f"optimizer {i} param group")
    _assert_same_state(ca["lr_schedulers"], cb["lr_schedulers"], "lr_schedulers")
    assert ca["optimizer_states"][0]["state"]  # Adam's moments exist, and were compared
    # no_decay: the encoder's optimizer has a decayed and an undecayed group; the head's one plain group
    groups = ca["optimizer_states"][0]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]


def test_an_optim_mapping_must_name_the_groups(cli, tmp_path, toy_family, usage_error):
    proc = cli("train", "toy-digits", "-o", str(tmp_path / "x"), "--set", "optim.critic={name: adam}", env=toy_family)
    usage_error(proc, "critic", "encoder", "head")
    assert not (tmp_path / "x").exists()


def test_a_recipe_declares_phases_and_frozen_groups_do_not_move(cli, tmp_path, toy_family):
    """Phase one trains the head alone: after it, the encoder still has its initial weights."""
    import subprocess
    import sys

    phases = "phases=[{name: head_alone, train: [head], share: 1}, {name: both, train: [encoder, head], share: 1}]"
    run = tmp_path / "run"
    args = ["--set", phases, "--set", "trainer.max_epochs=2", "--set", "trainer.checkpoint_every_n_steps=0"]
    proc = cli("train", "toy-digits", "-o", str(run), *args, env={**toy_family, "DLCAMP_CRASH_AFTER_STEP": "40"})
    assert proc.returncode == -9, proc.stderr  # killed at the end of epoch 1 = the end of phase one
    assert "phases" in (run / "config.yaml").read_text()
    script = (
        "import sys, torch\n"
        "from dlcamp.engine.run import build, resolve\n"
        "from dlcamp.recipes import get_recipe\n"
        "init = build(resolve(get_recipe('toy-digits'), sys.argv[2:])).model.state_dict()\n"
        "saved = torch.load(sys.argv[1], weights_only=True)['state_dict']\n"
        "for k, v in init.items():\n"
        "    print(k, torch.equal(v, saved['model.' + k]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(run / "checkpoints" / "last.ckpt"), phases],
        env={**__import__("os").environ, **toy_family},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    same = dict(line.split() for line in out.stdout.splitlines())
    assert same == {"encoder.1.weight": "True", "encoder.1.bias": "True", "head.weight": "False", "head.bias": "False"}
