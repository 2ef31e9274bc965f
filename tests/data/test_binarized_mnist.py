"""Binarized MNIST read from small .amat and IDX files the tests write: splits, draws, errors."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcamp.data import get_dataset, list_datasets
from dlcamp.data.binarized_mnist import AMAT_FILES, AMAT_URL, BinarizedMNISTData, binarized_mnist
from dlcamp.data.vision import MNIST_URL
from dlcamp.engine.run import resolve
from dlcamp.errors import DataNotFoundError, UsageError

AMAT_SIZES = {"train": 5, "val": 3, "test": 2}
N_TRAIN, N_TEST = 60, 12  # -> 50 train / 10 val (the last 1/6) / 12 test
rng = np.random.default_rng(0)


# -- writing the formats --------------------------------------------------------------------
def amat_line(pixels: np.ndarray) -> str:
    return " ".join(str(int(p)) for p in pixels.ravel())


def write_amat(root: Path) -> dict[str, np.ndarray]:
    """Three .amat files of a few random binary images each: split -> uint8 [N, 784]."""
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, file in AMAT_FILES.items():
        images = (rng.random((AMAT_SIZES[split], 784)) < 0.3).astype(np.uint8)
        (root / file).write_text("".join(amat_line(image) + "\n" for image in images))
        written[split] = images
    return written


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format: magic 0x0000 08 ndim (uint8 data), big-endian int32 sizes, raw bytes."""
    magic = {3: 2051, 1: 2049}[array.ndim]
    return struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx_files(root: Path) -> dict[str, np.ndarray]:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (N_TRAIN, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(N_TRAIN) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (N_TEST, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(N_TEST) % 10,
    }
    for name, array in arrays.items():
        (raw / name).write_bytes(idx_bytes(array))
    return arrays


def split_sizes(dm: BinarizedMNISTData) -> dict[str, int]:
    dm.setup()
    return {name: len(view) for name, view in dm.splits.items()}


def train_draw(dm: BinarizedMNISTData, epoch: int, index: int) -> torch.Tensor:
    view = dm.splits["train"]
    view.epoch = epoch
    return view[index][0]


def assert_one_line_naming(err: pytest.ExceptionInfo, *expected: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, message


# -- static: the published fixed draw -------------------------------------------------------
def test_binarized_mnist_is_registered_with_a_one_line_description():
    assert list_datasets()["binarized_mnist"].startswith("Binarized MNIST")


def test_static_reads_the_three_amat_files_as_the_published_split(tmp_path):
    written = write_amat(tmp_path)
    dm = get_dataset("binarized_mnist", root=str(tmp_path), batch_size=4)
    assert dm.input_shape == (1, 28, 28) and dm.num_classes == 10 and dm.class_names[7] == "7"
    assert split_sizes(dm) == AMAT_SIZES
    for split, images in written.items():
        x, y = dm.splits[split][1]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32
        assert torch.equal(x, torch.from_numpy(images[1]).float().view(1, 28, 28))  # row-major, exactly 0/1
        assert y.dtype == torch.long and int(y) == 0  # the files carry no labels
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 1, 28, 28) and set(x.unique().tolist()) <= {0.0, 1.0} and y.tolist() == [0] * 4


def test_static_data_is_the_same_every_epoch(tmp_path):
    write_amat(tmp_path)
    dm = binarized_mnist(root=str(tmp_path))
    dm.setup()
    assert torch.equal(train_draw(dm, epoch=0, index=2), train_draw(dm, epoch=5, index=2))


def test_static_limit_keeps_the_first_images_of_each_split(tmp_path):
    written = write_amat(tmp_path)
    dm = binarized_mnist(root=str(tmp_path), limit=2)
    assert split_sizes(dm) == {"train": 2, "val": 2, "test": 2}
    assert torch.equal(dm.splits["val"][1][0].flatten(), torch.from_numpy(written["val"][1]).float())


def test_static_skips_blank_lines_and_reads_crlf(tmp_path):
    image = np.zeros(784, dtype=np.uint8)
    image[[0, 400, 783]] = 1
    write_amat(tmp_path)
    (tmp_path / AMAT_FILES["test"]).write_bytes(f"\r\n{amat_line(image)} \r\n\r\n".encode())
    dm = binarized_mnist(root=str(tmp_path))
    assert split_sizes(dm)["test"] == 1
    assert torch.equal(dm.splits["test"][0][0].flatten(), torch.from_numpy(image).float())


@pytest.mark.parametrize(
    "bad_line, problem",
    [
        ("0 " * 783, "783 values, expected 784"),
        ("0 " * 783 + "2", "value '2' is not 0 or 1"),
        ("0 " * 783 + "0.5", "value '0.5' is not 0 or 1"),
        ("10 " + "0 " * 783, "value '10' is not 0 or 1"),  # 785 digits in 784 values
    ],
)
def test_a_malformed_amat_line_is_named_with_its_line_number(tmp_path, bad_line, problem):
    written = write_amat(tmp_path)
    lines = [amat_line(image) for image in written["val"]]
    lines[2] = bad_line
    path = tmp_path / AMAT_FILES["val"]
    path.write_text("\n".join(lines) + "\n")
    dm = binarized_mnist(root=str(tmp_path))
    with pytest.raises(UsageError) as err:
        dm.setup()
    assert_one_line_naming(err, f"{path} line 3: {problem}")


def test_an_empty_amat_file_is_a_usage_error(tmp_path):
    write_amat(tmp_path)
    (tmp_path / AMAT_FILES["test"]).write_text("\n")
    with pytest.raises(UsageError, match="holds no images"):
        binarized_mnist(root=str(tmp_path)).setup()


@pytest.mark.parametrize("split", sorted(AMAT_FILES))
def test_a_missing_amat_file_is_named_in_one_line_before_anything_is_read(tmp_path, split):
    write_amat(tmp_path)
    (tmp_path / AMAT_FILES[split]).unlink()
    with pytest.raises(DataNotFoundError) as err:
        binarized_mnist(root=str(tmp_path))
    assert_one_line_naming(err, str(tmp_path / AMAT_FILES[split]), AMAT_URL)


# -- dynamic: a fresh draw each time a training image is drawn ------------------------------
def test_dynamic_splits_train_into_first_five_sixths_and_last_sixth(tmp_path):
    arrays = write_idx_files(tmp_path)
    dm = binarized_mnist(root=str(tmp_path), binarize="dynamic")
    assert split_sizes(dm) == {"train": 50, "val": 10, "test": N_TEST}
    train_images = torch.from_numpy(arrays["train-images-idx3-ubyte"]).to(torch.uint8).unsqueeze(1)
    assert torch.equal(dm.splits["train"].base.images, train_images[:50])
    assert torch.equal(dm.splits["val"].base.images, train_images[50:])
    assert dm.splits["val"].base.targets.tolist() == (np.arange(50, 60) % 10).tolist()  # real labels
    assert dm.splits["test"].base.targets.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_dynamic_training_draws_are_fresh_each_epoch_binary_and_reproducible(tmp_path):
    write_idx_files(tmp_path)
    dm = binarized_mnist(root=str(tmp_path), binarize="dynamic", seed=4)
    dm.setup()
    first = train_draw(dm, epoch=0, index=5)
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(first, train_draw(dm, epoch=1, index=5))
    assert torch.equal(first, train_draw(dm, epoch=0, index=5))
    again = binarized_mnist(root=str(tmp_path), binarize="dynamic", seed=4)
    again.setup()
    assert torch.equal(first, train_draw(again, epoch=0, index=5))
    intensity = dm.splits["train"].base[5][0]
    assert (first[intensity == 0] == 0).all() and (first[intensity == 1] == 1).all()


def test_dynamic_evaluation_uses_one_fixed_binary_draw(tmp_path):
    write_idx_files(tmp_path)
    dm = binarized_mnist(root=str(tmp_path), binarize="dynamic")
    for split in ("val", "test"):
        first = torch.cat([x for x, _ in dm.split_loader(split)])
        dm.splits["train"].epoch = 3  # training moves on; evaluation does not
        second = torch.cat([x for x, _ in dm.split_loader(split)])
        assert torch.equal(first, second)
        assert set(first.unique().tolist()) == {0.0, 1.0}


def test_dynamic_limit_keeps_the_first_images_of_each_split(tmp_path):
    arrays = write_idx_files(tmp_path)
    dm = binarized_mnist(root=str(tmp_path), binarize="dynamic", limit=4)
    assert split_sizes(dm) == {"train": 4, "val": 4, "test": 4}
    val_images = torch.from_numpy(arrays["train-images-idx3-ubyte"][50:54]).to(torch.uint8).unsqueeze(1)
    assert torch.equal(dm.splits["val"].base.images, val_images)  # the val split's first, not train's


def test_dynamic_missing_idx_files_are_named_in_one_line(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        binarized_mnist(root=str(tmp_path), binarize="dynamic")
    assert_one_line_naming(err, str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"), MNIST_URL)


# -- options, inputs, recipes ---------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"binarize": "threshold"}, "data.binarize"),
        ({"limit": 0}, "data.limit"),
        ({"root": ""}, "data.root"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, kwargs, message):
    write_amat(tmp_path)
    with pytest.raises(UsageError, match=message):
        binarized_mnist(**{"root": str(tmp_path), **kwargs})


def test_load_input_is_a_thresholded_light_on_dark_digit(tmp_path):
    write_amat(tmp_path)
    image = np.full((40, 30), 255, dtype=np.uint8)  # white paper
    image[5:35, 12:18] = 0  # a black stroke: a "1"
    Image.fromarray(image).save(tmp_path / "one.png")
    x = binarized_mnist(root=str(tmp_path)).load_input(tmp_path / "one.png")
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert set(x.unique().tolist()) == {0.0, 1.0} and x.mean() < 0.5 and x[0, 14, 14] == 1


def test_a_recipe_on_binarized_mnist_resolves():
    recipe = {
        "model": {"name": "mlp", "input_shape": [1, 28, 28]},
        "data": {"name": "binarized_mnist", "binarize": "dynamic", "limit": 100},
        "task": {"name": "classification"},
        "optim": {"name": "adamw", "lr": 1e-3},
    }
    assert resolve(recipe)["data"] == {"name": "binarized_mnist", "binarize": "dynamic", "limit": 100}
    with pytest.raises(UsageError, match="data.binarize"):
        resolve(recipe, ["data.binarize=threshold"])
