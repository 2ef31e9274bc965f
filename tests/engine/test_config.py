"""Recipe validation: every key and value checked against what it configures."""

from __future__ import annotations

import pytest

from dlcamp.engine.config import apply_overrides
from dlcamp.engine.run import resolve
from dlcamp.errors import UsageError
from dlcamp.recipes import get_recipe, list_recipes


@pytest.mark.parametrize("name", sorted(list_recipes()))
def test_every_shipped_recipe_resolves(name):
    cfg = resolve(get_recipe(name))
    assert cfg["name"] == name
    assert cfg["expect"]["metric"].startswith("test/")


def test_overrides_create_nested_keys_and_parse_yaml_values():
    cfg = apply_overrides(
        get_recipe("mlp-digits"), ["optim.lr=0.5", "trainer.early_stopping.patience=3", "model.hidden=[8, 4]"]
    )
    out = resolve(cfg)
    assert out["optim"]["lr"] == 0.5
    assert out["trainer"]["early_stopping"]["patience"] == 3
    assert out["model"]["hidden"] == [8, 4]


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.betas=[0.9]", "optim.betas"),
        ("optim.momentum=0.9", "unknown key 'optim.momentum'"),  # AdamW has no momentum
        ("trainer.precision=8", "trainer.precision"),
        ("seed=-1", "seed"),
        ("task.model=3", "unknown key 'task.model'"),  # filled by the engine, not the recipe
        ("optim.schedule.name=exponential", "optim.schedule.name"),
        ("trainer.early_stopping.mode=up", "early_stopping.mode"),
    ],
)
def test_bad_overrides_are_usage_errors(override, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resolve(get_recipe("mlp-digits"), [override])


def test_ints_pass_as_floats_but_bools_do_not_pass_as_numbers():
    assert resolve(get_recipe("mlp-digits"), ["optim.lr=1"])["optim"]["lr"] == 1.0
    with pytest.raises(UsageError):
        resolve(get_recipe("mlp-digits"), ["optim.lr=true"])


def test_exponent_floats_without_a_dot_are_floats():
    # YAML 1.1 reads "1e-3" as a string; users type it anyway
    assert resolve(get_recipe("mlp-digits"), ["optim.lr=1e-3"])["optim"]["lr"] == 1e-3


def test_callable_arguments_cannot_be_strings():
    with pytest.raises(UsageError, match="model.norm_layer takes a Python callable"):
        resolve(get_recipe("resnet20-cifar10"), ["model.norm_layer=BatchNorm2d"])
