"""The segmentation task end to end through the command line: train, metrics, figures, predict, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

TINY = [
    "--set",
    "data.image_size=48",
    "--set",
    "data.max_size=20",
    "--set",
    "data.train_size=12",
    "--set",
    "data.val_size=3",
    "--set",
    "data.test_size=5",
    "--set",
    "data.batch_size=4",
    "--set",
    "trainer.max_steps=4",
    "--set",
    "trainer.log_every_n_steps=2",
    "--set",
    "model.head_width=16",
    "--set",
    "model.backbone_options={widths: [8, 8, 16, 16]}",
]


@pytest.fixture(scope="module")
def fcn_run(tmp_path_factory):
    from tests.conftest import run_cli_in_process

    run = tmp_path_factory.mktemp("seg") / "fcn8s"
    proc = run_cli_in_process("train", "fcn8s-shapes", "-o", str(run), "--progress", "none", *TINY)
    assert proc.returncode == 0, proc.stderr
    return run


def test_a_segmentation_run_reports_dataset_miou_boundary_miou_and_per_class_iou(fcn_run):
    from dlcamp.data.shapes import SEMANTIC_CLASSES

    m = json.loads((fcn_run / "summary.json").read_text())["metrics"]
    for key in ("test/miou", "test/pixel_acc", "test/mean_acc", "test/boundary_miou", "test/loss", "val/miou"):
        assert key in m and (m[key] == m[key]), key
    present = [m[f"test/iou/{name}"] for name in SEMANTIC_CLASSES if m[f"test/iou/{name}"] == m[f"test/iou/{name}"]]
    assert m["test/miou"] == pytest.approx(sum(present) / len(present))
    for figure in ("segmentations", "class_iou", "confusion_matrix", "curves"):
        assert (fcn_run / "figures" / f"{figure}.png").exists(), figure


def test_eval_of_the_run_gives_its_test_metrics_again(cli, fcn_run):
    proc = cli("eval", str(fcn_run))
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    saved = json.loads((fcn_run / "summary.json").read_text())["metrics"]
    assert again["test/miou"] == pytest.approx(saved["test/miou"], abs=1e-9)


def test_predict_writes_a_palette_png_of_class_ids_and_an_overlay_per_image(cli, usage_error, fcn_run, tmp_path):
    from dlcamp.data.shapes import render_scene

    inputs = []
    for i, size in enumerate((48, 70)):  # any size: the FCN answers at the image's own size
        path = tmp_path / f"scene{i}.png"
        Image.fromarray(render_scene(7, i).image).resize((size, size)).save(path)
        inputs.append(path)
    out = tmp_path / "labels"
    proc = cli("predict", str(fcn_run), *map(str, inputs), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    for path, size in zip(inputs, (48, 70)):
        labels = Image.open(out / f"{path.stem}_labels.png")
        assert labels.mode == "P" and labels.size == (size, size)
        assert np.array(labels).max() < 9
        assert Image.open(out / f"{path.stem}_overlay.png").size == (size, size)
        assert str(path) in proc.stdout
    usage_error(cli("predict", str(fcn_run), str(inputs[0]), "-o", str(tmp_path / "x.json")), "-o DIR")
    # the same name twice, or an output that would replace an input: refused, nothing written
    other = tmp_path / "other"
    other.mkdir()
    (other / "scene0.png").write_bytes(inputs[0].read_bytes())
    usage_error(cli("predict", str(fcn_run), str(inputs[0]), str(other / "scene0.png"), "-o", str(out)), "scene0")
    victim = tmp_path / "scene0_labels.png"
    victim.write_bytes(inputs[0].read_bytes())
    before = victim.read_bytes()
    usage_error(cli("predict", str(fcn_run), str(inputs[0]), str(victim), "-o", str(tmp_path)), "is one of the inputs")
    assert victim.read_bytes() == before


def test_the_task_refuses_data_without_label_maps(cli, usage_error, tmp_path):
    recipe = tmp_path / "digits-fcn.yaml"
    recipe.write_text(
        "model: {name: fcn8s, backbone: tiny}\ndata: {name: digits}\ntask: {name: segmentation}\n"
        "optim: {name: adamw, lr: 0.001}\ntrainer: {max_steps: 1}\n"
    )
    proc = cli("train", str(recipe), "-o", str(tmp_path / "r"))
    usage_error(proc, "segmentation data", "DigitsData")
    assert not (tmp_path / "r").exists()


def test_the_loss_skips_ignored_pixels_and_adds_the_auxiliary_head():
    from dlcamp.tasks.segmentation import SegmentationTask

    class Fixed(torch.nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return self.out

    torch.manual_seed(0)
    logits, aux = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    y = torch.randint(0, 3, (2, 5, 5))
    y[0, :2] = 255
    task = SegmentationTask(Fixed({"out": logits, "aux": aux}), num_classes=3, class_names=[], palette=[(0, 0, 0)] * 3)
    keep = y != 255
    main = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[keep], y[keep])
    side = torch.nn.functional.cross_entropy(aux.permute(0, 2, 3, 1)[keep], y[keep])
    task.log = lambda *a, **k: None
    loss = task.training_step((torch.zeros(2, 3, 5, 5), y), 0)
    torch.testing.assert_close(loss, main + 0.5 * side)
