"""Loader options (batch_size, eval_batch_size, num_workers, seed): declared once, reachable from every dataset."""

from __future__ import annotations

import inspect
import typing

import pytest

from dlcamp.data import DATASETS, _load_builtin
from dlcamp.data.module import DataModule
from dlcamp.engine.config import check_section
from dlcamp.errors import UsageError

LOADER_OPTIONS = ("batch_size", "eval_batch_size", "num_workers", "seed")

# Each dataset's own batch sizes: recipes that leave them out must train exactly as before.
BATCH_DEFAULTS = {
    "addition": (64, 256),
    "binarized_mnist": (100, 500),
    "cifar10": (128, 512),
    "coco": (8, 8),
    "dates": (64, 256),
    "digits": (64, 256),
    "digits32": (64, 256),
    "fashion_mnist": (128, 512),
    "imagefolder": (32, 128),
    "mnist": (128, 512),
    "reber": (64, 256),
    "reverse": (64, 256),
    "shapes": (32, 64),
    "text": (64, 256),
    "voc": (8, 8),
}


def builder(name: str):
    _load_builtin()
    return DATASETS.builder(name)


@pytest.mark.parametrize("name", sorted(BATCH_DEFAULTS))
def test_every_dataset_takes_the_loader_options_with_its_own_batch_sizes(name):
    params = inspect.signature(builder(name)).parameters
    assert set(LOADER_OPTIONS) <= set(params), name
    assert (params["batch_size"].default, params["eval_batch_size"].default) == BATCH_DEFAULTS[name]
    assert (params["num_workers"].default, params["seed"].default) == (0, 0)
    hints = typing.get_type_hints(builder(name))
    assert hints["num_workers"] is int and hints["seed"] is int


def test_num_workers_and_seed_are_declared_only_by_the_data_module_base():
    base = inspect.signature(DataModule.__init__).parameters
    assert set(LOADER_OPTIONS) <= set(base)
    for name in BATCH_DEFAULTS:
        code = builder(name).__code__  # the builder as written, not its visible (forwarded) signature
        written = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        assert "num_workers" not in written and "seed" not in written, (name, written)


def test_every_dataset_is_registered_with_its_batch_sizes_listed_here():
    _load_builtin()
    assert set(DATASETS.names()) >= set(BATCH_DEFAULTS)


def test_a_misspelt_loader_option_is_refused_with_a_suggestion():
    with pytest.raises(UsageError, match="did you mean batch_size"):
        check_section(builder("shapes"), {"batch_sise": 3}, "data")


def test_loader_options_keep_their_types():
    assert check_section(builder("text"), {"batch_size": "all"}, "data") == {"batch_size": "all"}
    with pytest.raises(UsageError, match="batch_size"):  # detection folders never serve the whole set at once
        check_section(builder("coco"), {"root": "x", "batch_size": "all"}, "data")
    assert check_section(builder("digits"), {"num_workers": 1, "seed": 4}, "data") == {"num_workers": 1, "seed": 4}
