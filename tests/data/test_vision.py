"""MNIST, Fashion-MNIST, CIFAR-10 and ImageFolder read from small files the tests write."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcamp.data import get_dataset
from dlcamp.data.vision import CIFAR10_CLASSES, cifar10, fashion_mnist, imagefolder, mnist
from dlcamp.errors import DataNotFoundError, UsageError

N_TRAIN, N_TEST = 100, 20  # 10 of each class in train: enough to stratify a 10% val split
rng = np.random.default_rng(0)


# -- writing the formats --------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format: magic 0x0000 08 ndim (uint8 data), big-endian int32 sizes, raw bytes."""
    magic = {3: 2051, 1: 2049}[array.ndim]
    return struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()


def labels(n: int) -> np.ndarray:
    return np.arange(n) % 10


def write_idx_files(raw: Path, *, gz: bool = False) -> dict[str, np.ndarray]:
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (N_TRAIN, 28, 28)),
        "train-labels-idx1-ubyte": labels(N_TRAIN),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (N_TEST, 28, 28)),
        "t10k-labels-idx1-ubyte": labels(N_TEST),
    }
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    return arrays


def write_cifar10(root: Path, per_batch: int = 20) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    written = {}
    for name in names:
        data = rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8)  # R plane, G plane, B plane
        written[name] = data
        # torchvision unpickles with encoding="latin1": str keys, as a Python 3 pickle has them.
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels(per_batch).tolist(), "batch_label": name}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR10_CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072}, f)
    return written


def write_png(path: Path, size: tuple[int, int] = (12, 10), value: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, (size[1], size[0], 3)) if value is None else np.full((size[1], size[0], 3), value)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def write_folder(split_dir: Path, classes: tuple[str, ...] = ("cat", "dog", "emu"), per_class: int = 10) -> None:
    for name in classes:
        for i in range(per_class):
            write_png(split_dir / name / f"{i}.png")


def assert_one_line_naming(err: pytest.ExceptionInfo, expected: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert expected in message, message


# -- MNIST and Fashion-MNIST ----------------------------------------------------------------
def test_mnist_loads_idx_files(tmp_path):
    arrays = write_idx_files(tmp_path / "MNIST" / "raw")
    dm = get_dataset("mnist", root=str(tmp_path), batch_size=16)
    assert dm.input_shape == (1, 28, 28) and dm.num_classes == 10 and dm.class_names[3] == "3"
    dm.setup()
    assert {name: len(view) for name, view in dm.splits.items()} == {"train": 90, "val": 10, "test": N_TEST}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.long
    assert 0 <= x.min() and x.max() <= 1
    x_test, y_test = next(iter(dm.test_dataloader()))
    assert torch.equal(x_test, torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float().div(255).unsqueeze(1))
    assert y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_mnist_val_is_a_stratified_split_of_train_fixed_by_seed_zero(tmp_path):
    write_idx_files(tmp_path / "MNIST" / "raw")

    def val_labels(seed: int) -> list[int]:
        dm = mnist(root=str(tmp_path), seed=seed)
        dm.setup()
        return dm.splits["val"].base.targets.tolist()

    assert sorted(val_labels(0)) == list(range(10))  # one of each class
    assert val_labels(0) == val_labels(5)


def test_fashion_mnist_reads_gzipped_idx_files(tmp_path):
    write_idx_files(tmp_path / "FashionMNIST" / "raw", gz=True)
    dm = fashion_mnist(root=str(tmp_path), batch_size=8)
    assert dm.class_names[0] == "T-shirt/top" and dm.num_classes == 10
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 28, 28)
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_mnist_reads_the_legacy_processed_layout(tmp_path):
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir(parents=True)
    for name, n in (("training.pt", N_TRAIN), ("test.pt", N_TEST)):
        images = torch.from_numpy(rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        torch.save((images, torch.from_numpy(labels(n))), processed / name)
    dm = mnist(root=str(tmp_path))
    dm.setup()
    assert len(dm.splits["test"]) == N_TEST


def test_mnist_normalize_and_denormalize_round_trip(tmp_path):
    write_idx_files(tmp_path / "MNIST" / "raw")
    plain, normed = mnist(root=str(tmp_path)), mnist(root=str(tmp_path), normalize=True)
    x_plain, _ = next(iter(plain.test_dataloader()))
    x_normed, _ = next(iter(normed.test_dataloader()))
    assert torch.allclose(x_normed, (x_plain - 0.1307) / 0.3081, atol=1e-6)
    assert torch.allclose(normed.denormalize(x_normed), x_plain, atol=1e-6)
    assert torch.equal(plain.denormalize(x_plain), x_plain)


def test_mnist_load_input_reads_a_drawing(tmp_path):
    write_idx_files(tmp_path / "MNIST" / "raw")
    write_png(tmp_path / "drawing.png", size=(50, 50), value=250)  # light paper, no ink
    x = mnist(root=str(tmp_path)).load_input(tmp_path / "drawing.png")
    assert x.shape == (1, 28, 28) and x.max() < 0.1  # inverted to a dark background


@pytest.mark.parametrize("builder,folder", [(mnist, "MNIST"), (fashion_mnist, "FashionMNIST")])
def test_missing_idx_files_are_named_in_one_line(tmp_path, builder, folder):
    with pytest.raises(DataNotFoundError) as err:
        builder(root=str(tmp_path))
    assert_one_line_naming(err, str(tmp_path / folder / "raw" / "train-images-idx3-ubyte"))
    assert "https://" in str(err.value)


def test_one_missing_idx_file_is_named(tmp_path):
    write_idx_files(tmp_path / "MNIST" / "raw")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataNotFoundError) as err:
        mnist(root=str(tmp_path))
    assert_one_line_naming(err, "t10k-labels-idx1-ubyte")


def test_a_corrupt_idx_file_is_a_usage_error(tmp_path):
    write_idx_files(tmp_path / "MNIST" / "raw")
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03junk")
    dm = mnist(root=str(tmp_path))
    with pytest.raises(UsageError, match="could not be read"):
        dm.setup()


# -- CIFAR-10 -------------------------------------------------------------------------------
def test_cifar10_loads_pickled_batches(tmp_path):
    written = write_cifar10(tmp_path)
    dm = cifar10(root=str(tmp_path), batch_size=10)
    assert dm.input_shape == (3, 32, 32) and dm.num_classes == 10 and dm.class_names[0] == "airplane"
    dm.setup()
    assert {name: len(view) for name, view in dm.splits.items()} == {"train": 90, "val": 10, "test": 20}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long
    x_test, y_test = dm.splits["test"][3]
    expected = torch.from_numpy(written["test_batch"][3]).view(3, 32, 32).float() / 255  # planes are channels
    assert torch.equal(x_test, expected) and int(y_test) == 3


def test_cifar10_normalize_and_augment(tmp_path):
    write_cifar10(tmp_path)
    dm = cifar10(root=str(tmp_path), normalize=True, augment=[{"name": "RandomHorizontalFlip", "p": 1.0}])
    dm.setup()
    x_train, _ = dm.splits["train"][0]
    raw, _ = dm.splits["train"].base[0]
    assert torch.allclose(dm.denormalize(x_train), raw.flip(-1), atol=1e-6)  # flipped, then standardised
    x_eval, _ = next(iter(dm.split_loader("train")))
    assert torch.allclose(dm.denormalize(x_eval[0]), raw, atol=1e-6)  # evaluation is not augmented
    assert dm.load_input(_png(tmp_path)).shape == (3, 32, 32)


def _png(tmp_path: Path) -> Path:
    write_png(tmp_path / "photo.png", size=(64, 48))
    return tmp_path / "photo.png"


@pytest.mark.parametrize("missing", ["data_batch_3", "test_batch", "batches.meta"])
def test_missing_cifar10_file_is_named_in_one_line(tmp_path, missing):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / missing).unlink()
    with pytest.raises(DataNotFoundError) as err:
        cifar10(root=str(tmp_path))
    assert_one_line_naming(err, str(tmp_path / "cifar-10-batches-py" / missing))
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in str(err.value)


def test_cifar10_root_pointing_inside_the_folder_gets_a_hint(tmp_path):
    with pytest.raises(DataNotFoundError, match="data.root should be"):
        cifar10(root=str(tmp_path / "cifar-10-batches-py"))


# -- ImageFolder ----------------------------------------------------------------------------
def test_imagefolder_with_all_splits(tmp_path):
    write_folder(tmp_path / "train")
    write_folder(tmp_path / "val", per_class=2)
    write_folder(tmp_path / "test", classes=("dog", "emu"), per_class=3)  # a class may be absent
    dm = imagefolder(root=str(tmp_path), image_size=16, batch_size=4)
    assert dm.input_shape == (3, 16, 16) and dm.num_classes == 3 and dm.class_names == ["cat", "dog", "emu"]
    dm.setup()
    assert {name: len(view) for name, view in dm.splits.items()} == {"train": 30, "val": 6, "test": 6}
    assert sorted({int(y) for _, y in dm.splits["test"]}) == [1, 2]  # train/'s indices, not test/'s
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.long


def test_imagefolder_carves_missing_splits_from_train(tmp_path):
    write_folder(tmp_path / "train")
    dm = imagefolder(root=str(tmp_path), image_size=8)
    dm.setup()
    indices = {name: set(view.base.indices) for name, view in dm.splits.items()}
    assert sum(len(idx) for idx in indices.values()) == 30
    assert not (indices["train"] & indices["val"]) and not (indices["train"] & indices["test"])
    assert not (indices["val"] & indices["test"]) and len(indices["val"]) >= 3 and len(indices["test"]) >= 3
    again = imagefolder(root=str(tmp_path), image_size=8, seed=9)
    again.setup()
    assert set(again.splits["val"].base.indices) == indices["val"]  # fixed seed, not the run's


def test_imagefolder_carves_only_the_missing_split(tmp_path):
    write_folder(tmp_path / "train")
    write_folder(tmp_path / "test", per_class=1)
    dm = imagefolder(root=str(tmp_path), image_size=8)
    dm.setup()
    assert {name: len(view) for name, view in dm.splits.items()} == {"train": 27, "val": 3, "test": 3}


def test_undecodable_image_is_named(tmp_path):
    write_folder(tmp_path / "train")
    broken = tmp_path / "train" / "dog" / "5.png"
    broken.write_bytes(b"\x89PNG not really")
    dm = imagefolder(root=str(tmp_path), image_size=8)
    dm.setup()
    with pytest.raises(UsageError, match=str(broken)):
        list(dm.split_loader("train"))


def test_missing_image_folder_is_named_in_one_line(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        imagefolder(root=str(tmp_path))
    assert_one_line_naming(err, str(tmp_path / "train"))
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="no images"):
        imagefolder(root=str(tmp_path))


def test_val_class_unknown_to_train_is_a_usage_error(tmp_path):
    write_folder(tmp_path / "train", classes=("cat", "dog"))
    write_folder(tmp_path / "val", classes=("cat", "yak"), per_class=1)
    with pytest.raises(UsageError, match="yak"):
        imagefolder(root=str(tmp_path))


def test_missing_root_option_is_a_usage_error():
    with pytest.raises(UsageError, match="data.root"):
        mnist(root="")
