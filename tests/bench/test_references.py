"""The scikit-learn references train on exactly dlcamp's digits split."""

from __future__ import annotations

from dlcamp.bench.references import get_reference
from dlcamp.data import get_dataset
from dlcamp.data.digits import digits_arrays


def test_reference_split_is_the_data_modules_split():
    X, y, split = digits_arrays()
    dm = get_dataset("digits")
    dm.setup()
    assert [len(split[s]) for s in ("train", "val", "test")] == [len(dm.splits[s]) for s in ("train", "val", "test")]
    assert int(y[split["test"]][0]) == int(dm.splits["test"][0][1])


def test_svc_reference_is_a_strong_baseline():
    result = get_reference("svc-digits")(seed=0)
    assert result["test/acc"] > 0.97
    assert result["train_seconds"] >= 0
