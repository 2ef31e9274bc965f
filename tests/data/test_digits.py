"""scikit-learn's digits as a data module: split, scaling, binarisation, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dlcamp.data import get_dataset, list_datasets
from dlcamp.data.digits import DigitsData, digits, digits32, digits_arrays
from dlcamp.errors import UsageError

SPLIT_SIZES = {"train": 1257, "val": 180, "test": 360}


def split_tensors(dm: DigitsData, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    dm.setup()
    return dm.splits[split].base.tensors


def test_digits_are_registered_with_one_line_descriptions():
    names = list_datasets()
    assert "digits" in names and "digits32" in names
    assert isinstance(get_dataset("digits"), DigitsData)


def test_split_sizes_are_exact_disjoint_and_cover_everything():
    _, _, split = digits_arrays()
    assert {name: len(idx) for name, idx in split.items()} == SPLIT_SIZES
    train, val, test = (set(split[name]) for name in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(1797))
    dm = digits()
    dm.setup()
    assert {name: len(view) for name, view in dm.splits.items()} == SPLIT_SIZES


def test_split_is_stratified():
    _, y, split = digits_arrays()
    overall = np.bincount(y, minlength=10) / len(y)
    for idx in split.values():
        share = np.bincount(y[idx], minlength=10) / len(idx)
        assert np.abs(share - overall).max() < 0.01


def test_split_does_not_depend_on_the_run_seed():
    x0, y0 = split_tensors(digits(seed=0), "test")
    x1, y1 = split_tensors(digits(seed=123), "test")
    assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_inputs_are_scaled_images_and_targets_class_indices():
    dm = digits()
    x, y = split_tensors(dm, "train")
    assert x.shape == (1257, 1, 8, 8) and x.dtype == torch.float32
    assert x.min() == 0 and x.max() == 1  # 16 / 16
    assert y.dtype == torch.long and set(y.tolist()) == set(range(10))
    assert dm.input_shape == (1, 8, 8) and dm.num_classes == 10
    assert dm.class_names == [str(d) for d in range(10)]


def test_train_loader_yields_batches():
    x, y = next(iter(digits(batch_size=32).train_dataloader()))
    assert x.shape == (32, 1, 8, 8) and y.shape == (32,) and y.dtype == torch.long


def test_digits_arrays_match_the_data_module():
    X, y, split = digits_arrays()
    assert X.dtype == np.float32 and X.shape == (1797, 64)
    dm = digits()
    for name in ("train", "val", "test"):
        x_dm, y_dm = split_tensors(dm, name)
        assert np.array_equal(X[split[name]], x_dm.flatten(1).numpy())
        assert np.array_equal(y[split[name]], y_dm.numpy())
    X32, _, split32 = digits_arrays(size=32)
    assert X32.shape == (1797, 1024) and split32 == split


def test_digits32_is_resized_to_32_by_32():
    dm = digits32()
    x, _ = split_tensors(dm, "val")
    assert dm.input_shape == (1, 32, 32) and x.shape == (180, 1, 32, 32)
    assert 0 <= x.min() and x.max() <= 1
    assert get_dataset("digits", size=32).input_shape == (1, 32, 32)


def test_static_binarisation_gives_zeros_and_ones():
    dm = digits(binarize="static", augment=[{"name": "RandomAffine", "degrees": 15}])
    x_test, _ = split_tensors(dm, "test")
    assert set(x_test.unique().tolist()) == {0.0, 1.0}
    x_train, _ = next(iter(dm.train_dataloader()))
    assert set(x_train.unique().tolist()) <= {0.0, 1.0}


def dynamic_sample(dm: DigitsData, epoch: int, index: int) -> torch.Tensor:
    view = dm.splits["train"]
    view.epoch = epoch
    return view[index][0]


def test_dynamic_binarisation_is_fresh_each_epoch_and_reproducible():
    dm = digits(binarize="dynamic", seed=4)
    dm.setup()
    first = dynamic_sample(dm, epoch=0, index=5)
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(first, dynamic_sample(dm, epoch=1, index=5))
    assert torch.equal(first, dynamic_sample(dm, epoch=0, index=5))
    again = digits(binarize="dynamic", seed=4)
    again.setup()
    assert torch.equal(first, dynamic_sample(again, epoch=0, index=5))


def test_dynamic_binarisation_samples_the_intensities():
    dm = digits(binarize="dynamic")
    dm.setup()
    intensity = dm.splits["train"].base.tensors[0][:100]
    frequency = torch.stack([torch.stack([dynamic_sample(dm, e, i) for i in range(100)]) for e in range(10)]).mean(0)
    assert abs(frequency.mean() - intensity.mean()) < 0.01  # 64,000 draws: E[x] = intensity
    assert (frequency[intensity == 0] == 0).all() and (frequency[intensity == 1] == 1).all()
    assert frequency[intensity > 0.75].mean() > 0.75 and frequency[intensity < 0.25].mean() < 0.25


def test_dynamic_binarisation_evaluates_on_one_fixed_sample():
    dm = digits(binarize="dynamic")
    first = torch.cat([x for x, _ in dm.test_dataloader()])
    dm.splits["train"].epoch = 3  # training moves on; evaluation does not
    second = torch.cat([x for x, _ in dm.test_dataloader()])
    assert torch.equal(first, second)
    assert set(first.unique().tolist()) == {0.0, 1.0}


def test_load_input_inverts_dark_ink_on_light_paper(tmp_path):
    image = np.full((40, 30), 255, dtype=np.uint8)  # white paper
    image[5:35, 12:18] = 0  # a black stroke: a "1"
    path = tmp_path / "one.png"
    Image.fromarray(image).save(path)
    x = digits().load_input(path)
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32
    assert x.mean() < 0.5 and x[0, 4, 4] > 0.5  # the stroke is now light on dark
    assert digits32().load_input(path).shape == (1, 32, 32)
    assert set(digits(binarize="static").load_input(path).unique().tolist()) <= {0.0, 1.0}


def test_load_input_of_a_missing_or_broken_file_names_it(tmp_path):
    with pytest.raises(UsageError, match="nothing.png"):
        digits().load_input(tmp_path / "nothing.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(UsageError, match="broken.png"):
        digits().load_input(broken)


@pytest.mark.parametrize("kwargs", [{"binarize": "sometimes"}, {"size": 0}, {"augment": [{"name": "Rotate"}]}])
def test_bad_options_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        digits(**kwargs)
