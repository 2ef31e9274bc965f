"""The optimizer benchmark runs end to end on a tiny parameter list (no timing is checked)."""

from __future__ import annotations

import json

import pytest

from dlcamp.bench.optim import SETTINGS, optim, resnet50_shapes
from dlcamp.errors import UnknownNameError

TINY_SHAPES = [(8, 3, 3, 3), (8,), (10, 8), (10,)]


def test_optim_benchmark_reports_one_row_per_optimizer() -> None:
    result = optim(repeats=2, warmup=1, shapes=TINY_SHAPES, device="cpu")

    assert {"title", "rows", "machine", "torch"} <= set(result)
    assert [row["optimizer"] for row in result["rows"]] == list(SETTINGS)
    for row in result["rows"]:
        assert set(row) == {"optimizer", "settings", "ours_ms", "torch_ms", "ratio", "meets_goal"}
        assert row["ours_ms"] > 0 and row["torch_ms"] > 0 and row["ratio"] > 0
        assert isinstance(row["meets_goal"], bool)
    json.dumps(result)  # the CLI can write it as JSON


def test_optim_benchmark_runs_only_the_named_optimizers() -> None:
    result = optim(repeats=1, warmup=0, names=["adamw", "sgd"], shapes=TINY_SHAPES, device="cpu")
    assert [row["optimizer"] for row in result["rows"]] == ["adamw", "sgd"]


def test_optim_benchmark_rejects_an_unknown_optimizer() -> None:
    with pytest.raises(UnknownNameError):
        optim(names=["adamm"], shapes=TINY_SHAPES)


def test_default_shapes_are_resnet50s() -> None:
    shapes = resnet50_shapes()
    assert len(shapes) == 161
    assert sum(shape.numel() for shape in shapes) == 25_557_032


def test_machine_description_names_cores_and_threads():
    import torch

    from dlcamp.bench.machine import describe_machine

    text = describe_machine(torch.device("cpu"))
    assert "cores" in text and f"{torch.get_num_threads()} torch threads" in text
