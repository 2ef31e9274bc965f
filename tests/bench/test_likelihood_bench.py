"""The closed-form references of `dlcamp bench likelihood` frame the table correctly."""

from __future__ import annotations

import math

import pytest

from dlcamp.bench.likelihood import RECIPES, _references
from dlcamp.engine.run import build, resolve
from dlcamp.recipes import get_recipe


def test_references_are_ordered_and_the_coin_flip_is_d_ln2():
    rows = {
        r["model"].split(":")[1].split("(")[0].strip(): r for r in _references(build(resolve(get_recipe(RECIPES[0]))))
    }
    coin, mle, floor = (
        rows[k]["test NLL (nats)"] for k in ("coin flips", "independent Bernoulli, closed-form MLE", "oracle floor")
    )
    assert coin == pytest.approx(64 * math.log(2))
    assert floor < mle < coin
    assert rows["coin flips"]["bits/dim"] == pytest.approx(1.0)


def test_every_benchmarked_recipe_scores_the_same_test_draw():
    """The table compares models only if all are scored on one draw of the test digits."""
    data = {name: resolve(get_recipe(name))["data"] for name in RECIPES}
    assert all(d == data[RECIPES[0]] for d in data.values()) and data[RECIPES[0]]["binarize"] == "dynamic"
    assert all(resolve(get_recipe(name))["seed"] == 0 for name in RECIPES)
