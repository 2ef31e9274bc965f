"""The detection task end to end through the command line: train, metrics, figures, predict, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY_DATA = [
    "--set",
    "data.image_size=64",
    "--set",
    "data.train_size=16",
    "--set",
    "data.val_size=4",
    "--set",
    "data.test_size=6",
    "--set",
    "data.batch_size=4",
    "--set",
    "data.eval_batch_size=8",
    "--set",
    "data.max_objects=3",
    "--set",
    "data.min_size=10",
    "--set",
    "data.max_size=28",
    "--set",
    "trainer.max_steps=6",
    "--set",
    "trainer.log_every_n_steps=2",
]
TINY_MODEL = {
    "ssd-shapes": ["--set", "model.widths=[8,16,16,16]", "--set", "model.num_levels=3"],
    "fasterrcnn-shapes": [
        "--set",
        "model.widths=[8,16,16]",
        "--set",
        "model.representation=32",
        "--set",
        "model.anchor_sizes=[[12,24,40]]",
    ],
}


@pytest.fixture(scope="module")
def ssd_run(tmp_path_factory):
    from tests.conftest import run_cli_in_process

    run = tmp_path_factory.mktemp("det") / "ssd"
    proc = run_cli_in_process(
        "train", "ssd-shapes", "-o", str(run), "--progress", "none", *TINY_DATA, *TINY_MODEL["ssd-shapes"]
    )
    assert proc.returncode == 0, proc.stderr
    return run


def test_a_detection_run_reports_pycocotools_map_and_agrees_with_ours(ssd_run):
    summary = json.loads((ssd_run / "summary.json").read_text())
    m = summary["metrics"]
    for key in ("test/map", "test/map_50", "test/map_75", "test/ar_100", "test/map_ours", "val/map"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["test/ours_vs_pycocotools"] < 1e-9
    assert {f"test/ap/{c}" for c in ("circle", "square", "triangle", "star", "cross")} <= set(m)
    for fig in ("detections.png", "anchors.png", "pr_curves.png", "curves.png"):
        assert (ssd_run / "figures" / fig).stat().st_size > 1000, fig


def test_predict_writes_coco_results_in_each_files_pixels_and_drawn_pngs(ssd_run, tmp_path, cli):
    from PIL import Image

    paths = []
    for name, size in (("000000000042.png", (64, 64)), ("holiday.png", (96, 48))):
        Image.new("RGB", size, (40, 120, 40)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    out = tmp_path / "results.json"
    proc = cli("predict", str(ssd_run), *paths, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    assert rows and {r["image_id"] for r in rows} <= {
        0,
        1,
    }  # one name is not a number: ids are positions  # score threshold 0.01: an untrained SSD finds plenty
    for r in rows:
        assert set(r) == {"image_id", "category_id", "bbox", "score"} and 1 <= r["category_id"] <= 5
        x, y, w, h = r["bbox"]
        width, height = (64, 64) if r["image_id"] == 0 else (96, 48)
        assert x >= -1e-3 and y >= -1e-3 and x + w <= width + 1e-3 and y + h <= height + 1e-3
    assert sorted(p.name for p in (tmp_path / "results_images").iterdir()) == ["000000000042.png", "holiday.png"]


def test_predict_refuses_an_output_that_is_not_json(ssd_run, tmp_path, cli, usage_error):
    from PIL import Image

    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    usage_error(cli("predict", str(ssd_run), str(tmp_path / "a.png"), "-o", str(tmp_path / "out.csv")), ".json")


def test_fasterrcnn_trains_four_step_and_refuses_it_for_ssd(tmp_path, cli, usage_error):
    run = tmp_path / "frcnn"
    proc = cli(
        "train",
        "fasterrcnn-shapes",
        "-o",
        str(run),
        "--progress",
        "none",
        *TINY_DATA,
        *TINY_MODEL["fasterrcnn-shapes"],
        "--set",
        "task.training_mode=four_step",
        "--set",
        "trainer.max_steps=8",
    )
    assert proc.returncode == 0, proc.stderr
    metrics = (run / "metrics.csv").read_text().splitlines()
    stage_col = metrics[0].split(",").index("stage")
    stages = sorted({float(r.split(",")[stage_col]) for r in metrics[1:] if r.split(",")[stage_col]})
    assert stages == [1.0, 2.0, 3.0, 4.0]
    usage_error(
        cli("train", "ssd-shapes", "-o", str(tmp_path / "x"), "--set", "task.training_mode=four_step", *TINY_DATA),
        "four_step",
        "fasterrcnn",
    )
    assert not (tmp_path / "x").exists()


def _coco_folder(root: Path, annotations: list[dict], images=((1, "a.png"),)) -> Path:
    from PIL import Image

    for split in ("train", "val", "test"):
        (root / split / "images").mkdir(parents=True)
        for _, name in images:
            Image.new("RGB", (48, 40), (200, 30, 30)).save(root / split / "images" / name)
        (root / split / "annotations.json").write_text(
            json.dumps(
                {
                    "images": [{"id": i, "file_name": n, "width": 48, "height": 40} for i, n in images],
                    "annotations": annotations,
                    "categories": [{"id": 7, "name": "thing"}],
                }
            )
        )
    return root


def _coco_recipe(tmp_path: Path, root: Path) -> Path:
    recipe = tmp_path / "coco-ssd.yaml"
    recipe.write_text(
        json.dumps(
            {  # JSON is YAML
                "model": {"name": "ssd", "widths": [8, 16, 16, 16], "num_levels": 3},
                "data": {"name": "coco", "root": str(root), "image_size": 64, "batch_size": 2},
                "task": {"name": "detection"},
                "optim": {"name": "adam", "lr": 0.001},
                "trainer": {"max_steps": 2},
            }
        )
    )
    return recipe


def test_a_detector_trains_on_a_coco_folder_exported_from_the_shapes_world(tmp_path, cli):
    export = tmp_path / "export"
    proc = cli("data", "export", "shapes", "-o", str(export), "-n", "6", "--set", "image_size=64")
    assert proc.returncode == 0, proc.stderr
    proc = cli("train", str(_coco_recipe(tmp_path, export)), "-o", str(tmp_path / "run"), "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["metrics"]["test/ours_vs_pycocotools"] < 1e-9
    assert summary["dataset"] == "coco"

    # predict on a file of another size: the run resizes it to 64x64 and scales the boxes back
    import torch
    from PIL import Image

    from dlcamp.engine.run import load_run

    scene = export / "test" / "images" / "000000.png"
    Image.open(scene).resize((96, 48)).save(tmp_path / "7.png")
    out = tmp_path / "results.json"
    assert cli("predict", str(tmp_path / "run"), str(tmp_path / "7.png"), "-o", str(out)).returncode == 0
    rows = json.loads(out.read_text())
    built = load_run(tmp_path / "run")
    image = built.datamodule.load_input(tmp_path / "7.png")
    x, _ = built.datamodule.eval_transform(
        image,
        {
            "boxes": torch.zeros(0, 4),
            "labels": torch.zeros(0, dtype=torch.long),
            "iscrowd": torch.zeros(0, dtype=torch.bool),
            "image_id": 7,
        },
    )
    assert tuple(x.shape[-2:]) == (64, 64)
    det = built.task.model.eval().detect([x])[0]
    expected = det["boxes"] * torch.tensor([96 / 64, 48 / 64, 96 / 64, 48 / 64])
    got = torch.tensor(
        [[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]] for r in rows]
    )
    assert rows and all(r["image_id"] == 7 for r in rows)
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize(
    "annotation, words",
    [
        ({"id": 5, "image_id": 1, "category_id": 7}, ["5", "bbox"]),  # a missing field
        ({"id": 6, "image_id": 1, "category_id": 7, "bbox": [30, 5, -10, 10]}, ["6"]),  # x2 < x1
        ({"id": 8, "image_id": 1, "category_id": 7, "bbox": [30, 5, 40, 10]}, ["8"]),  # outside the image
    ],
)
def test_training_on_a_bad_coco_folder_is_refused_in_one_line(tmp_path, cli, usage_error, annotation, words):
    root = _coco_folder(tmp_path / "coco", [annotation])
    proc = cli("train", str(_coco_recipe(tmp_path, root)), "-o", str(tmp_path / "run"))
    usage_error(proc, *words)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_missing_image_file_is_named(tmp_path, cli, usage_error):
    root = _coco_folder(tmp_path / "coco", [], images=((1, "a.png"),))
    (root / "train" / "images" / "a.png").unlink()
    proc = cli("train", str(_coco_recipe(tmp_path, root)), "-o", str(tmp_path / "run"))
    usage_error(proc, "a.png")


FRCNN_TINY = dict(
    widths=(16, 32, 32), anchor_sizes=[[12, 24, 40]], representation=64, rpn_batch_size=64, box_batch_size=32
)


def _four_step_task(**optim):
    import torch

    from dlcamp.models import get_model
    from dlcamp.tasks.detection import DetectionTask

    torch.manual_seed(0)
    model = get_model("fasterrcnn", num_classes=5, **FRCNN_TINY)
    task = DetectionTask(model, class_names=list("abcde"), category_ids=[], training_mode="four_step")
    task.configure_engine(optim=optim or {"name": "adam", "lr": 1e-3})
    return model, task


def _tiny_batch(n: int = 2):
    from dlcamp.data import get_dataset
    from dlcamp.data.detection import detection_collate

    dm = get_dataset(
        "shapes",
        image_size=64,
        min_objects=1,
        max_objects=2,
        min_size=14,
        max_size=30,
        clutter=0.0,
        train_size=n,
        val_size=2,
        test_size=2,
        scene_seed=3,
    )
    dm.setup()
    return detection_collate([dm.splits["train"][i] for i in range(n)])


def test_four_step_is_four_declared_phases_each_training_only_its_groups():
    model, task = _four_step_task()
    assert [(p.name, p.train, p.fresh_state, p.restart_schedule) for p in task.phases] == [
        ("rpn_alone", ["rpn_body", "rpn"], True, True),
        ("detector", ["body", "head"], True, True),
        ("rpn_shared", ["rpn"], True, True),
        ("head_shared", ["head"], True, True),
    ]
    images, targets = _tiny_batch()
    groups = task.param_groups()
    assert set(groups) == {"body", "rpn", "head", "rpn_body"} and groups["rpn_body"] is task.first_body
    for stage, phase in enumerate(task.phases, start=1):
        task.zero_grad(set_to_none=True)
        task.freeze_for(phase)
        model.loss(images, targets, stage=stage, first_body=task.first_body)["loss"].backward()
        got = {
            name
            for name, m in groups.items()
            if any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
        }
        assert got == set(phase.train), (phase.name, got)
    assert not groups["body"].training  # frozen from step 3 on: batch-norm statistics too


def test_four_step_learning_rate_restarts_its_schedule_in_each_phase():
    from types import SimpleNamespace

    from dlcamp.optim.groups import phase_bounds, phase_index

    _, task = _four_step_task(name="sgd", lr=1.0, schedule={"name": "linear"})
    task._trainer = SimpleNamespace(estimated_stepping_batches=40)  # four phases of 10
    scheduler = task.configure_optimizers()["lr_scheduler"]["scheduler"]
    factor = scheduler.lr_lambdas[0]
    bounds = phase_bounds(task.phases, 40)
    assert [phase_index(bounds, s) + 1 for s in (0, 9, 10, 19, 20, 30, 39)] == [1, 1, 2, 2, 3, 4, 4]
    for start in (0, 10, 20, 30):
        assert factor(start) == 1.0 and factor(start + 9) == pytest.approx(0.1)  # each phase decays from 1
    params = {id(p) for g in scheduler.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in params for p in task.first_body.parameters())  # step 1's own backbone is trained


def test_a_phased_schedule_refuses_several_processes_before_writing(tmp_path, cli, usage_error):
    run = tmp_path / "x"
    usage_error(
        cli(
            "train",
            "fasterrcnn-shapes",
            "-o",
            str(run),
            "--set",
            "task.training_mode=four_step",
            "--devices",
            "2",
            *TINY_DATA,
            *TINY_MODEL["fasterrcnn-shapes"],
        ),
        "phased",
        "--devices 1",
    )
    assert not run.exists()


def test_a_recipe_sets_the_iou_thresholds_the_course_teaches(tmp_path, cli):
    """`model.rpn_fg_iou` and `model.box_fg_iou` from the command line reach config.yaml and the matchers."""
    import yaml

    from dlcamp.engine.run import load_run

    run = tmp_path / "frcnn"
    proc = cli(
        "train",
        "fasterrcnn-shapes",
        "-o",
        str(run),
        "--progress",
        "none",
        *TINY_DATA,
        *TINY_MODEL["fasterrcnn-shapes"],
        "--set",
        "trainer.max_steps=2",
        "--set",
        "model.rpn_fg_iou=0.6",
        "--set",
        "model.box_fg_iou=0.55",
        "--set",
        "model.box_bg_iou=0.45",
    )
    assert proc.returncode == 0, proc.stderr
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert (saved["rpn_fg_iou"], saved["box_fg_iou"], saved["box_bg_iou"]) == (0.6, 0.55, 0.45)
    model = load_run(run).model  # rebuilt from config.yaml, as `dlcamp eval` and `predict` do
    assert (model.rpn.matcher.high_threshold, model.roi_heads.matcher.high_threshold) == (0.6, 0.55)
    assert model.roi_heads.matcher.low_threshold == 0.45
    # (tests/models/test_detection.py shows the thresholds decide which anchors and proposals are positive)
