"""The 2-D toy mixtures of mode collapse: ring8 and grid25."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dlcamp.cli.main import main
from dlcamp.data import DATASETS, get_dataset, list_datasets
from dlcamp.data.contracts import PointData
from dlcamp.data.toys import GaussianMixtureData, grid25, ring8
from dlcamp.errors import UsageError

BUILDERS = {"ring8": ring8, "grid25": grid25}
DEFAULT_SIZES = {"train": 20_000, "val": 2_500, "test": 2_500}


def split_tensors(dm: GaussianMixtureData, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    dm.setup()
    return dm.splits[split].base.tensors


@pytest.fixture(scope="module", params=list(BUILDERS))
def data(request) -> GaussianMixtureData:
    dm = BUILDERS[request.param]()
    dm.setup()
    return dm


def test_splits_have_the_default_sizes_shapes_and_dtypes(data):
    for split, n in DEFAULT_SIZES.items():
        points, modes = split_tensors(data, split)
        assert points.shape == (n, 2) and points.dtype == torch.float32
        assert modes.shape == (n,) and modes.dtype == torch.long
    assert data.input_shape == (2,) and data.num_classes == len(data.centers)
    assert data.class_names == [f"mode {k}" for k in range(data.num_classes)]
    assert isinstance(data, PointData) and data.centers.shape == (data.num_classes, 2)


def test_sizes_choose_the_split_counts():
    dm = grid25(sizes=[300, 20, 10])
    dm.setup()
    assert {split: len(view) for split, view in dm.splits.items()} == {"train": 300, "val": 20, "test": 10}


def test_every_mode_is_in_the_train_split_in_roughly_equal_shares(data):
    _, modes = split_tensors(data, "train")
    counts = torch.bincount(modes, minlength=data.num_classes)
    assert len(counts) == data.num_classes and (counts > 0).all()
    expected = len(modes) / data.num_classes
    assert ((counts - expected).abs() < 0.2 * expected).all(), counts.tolist()


def test_points_lie_within_4_sigma_of_their_own_centre(data):
    points, modes = split_tensors(data, "train")
    distance = (points - data.centers[modes]).norm(dim=1) / data.sigma  # (N,) in units of σ
    # |x - c| / σ follows a Rayleigh law: P(> 4) = exp(-8) ≈ 3e-4, P(> 7) = exp(-24.5) ≈ 2e-11
    assert (distance < 4).float().mean() > 0.999
    assert distance.max() < 7
    # and the spread is σ itself: E[|x - c|²] = 2σ²
    assert distance.pow(2).mean() / 2 == pytest.approx(1.0, abs=0.03)
    # the modes are far apart, so a point's own centre is its nearest
    nearest = torch.cdist(points, data.centers).argmin(dim=1)
    assert torch.equal(nearest, modes)


def test_ring_centres_lie_on_the_unit_circle_at_equal_angles():
    dm = ring8()
    assert dm.num_classes == 8 and dm.sigma == 0.01
    assert torch.allclose(dm.centers.norm(dim=1), torch.ones(8))
    angles = torch.atan2(dm.centers[:, 1], dm.centers[:, 0]).remainder(2 * math.pi)
    assert torch.allclose(angles, torch.arange(8) * (2 * math.pi / 8), atol=1e-6)
    assert dm.centers[0].tolist() == [1.0, 0.0]


def test_grid_centres_are_the_lattice_of_minus_4_to_4_in_steps_of_2():
    dm = grid25()
    assert dm.num_classes == 25 and dm.sigma == 0.05
    lattice = [[float(x), float(y)] for x, y in itertools.product(range(-4, 5, 2), repeat=2)]
    assert dm.centers.tolist() == lattice


@pytest.mark.parametrize("name", list(BUILDERS))
def test_data_is_identical_whatever_the_run_seed(name):
    first = BUILDERS[name](seed=0, sizes=[500, 50, 50])
    again = BUILDERS[name](seed=0, sizes=[500, 50, 50])
    other = BUILDERS[name](seed=123, sizes=[500, 50, 50])
    for split in ("train", "val", "test"):
        points, modes = split_tensors(first, split)
        for dm in (again, other):
            assert torch.equal(points, split_tensors(dm, split)[0]) and torch.equal(modes, split_tensors(dm, split)[1])


def test_a_split_does_not_depend_on_the_sizes_of_the_others_and_splits_are_distinct_draws():
    small, large = ring8(sizes=[100, 50, 50]), ring8(sizes=[1000, 50, 50])
    for split in ("val", "test"):
        assert torch.equal(split_tensors(small, split)[0], split_tensors(large, split)[0])
    assert not torch.equal(split_tensors(small, "val")[0], split_tensors(small, "train")[0][:50])


def test_train_loader_yields_point_batches():
    points, modes = next(iter(ring8(sizes=[100, 10, 10], batch_size=32).train_dataloader()))
    assert points.shape == (32, 2) and points.dtype == torch.float32
    assert modes.shape == (32,) and modes.dtype == torch.long


def test_builders_are_registered_and_listed(capsys):
    assert {"ring8", "grid25"} <= set(list_datasets())
    assert isinstance(get_dataset("grid25", sizes=[10, 10, 10]), GaussianMixtureData)
    assert "sizes" in DATASETS.builder("ring8").__signature__.parameters
    assert main(["list", "datasets"]) == 0
    listed = capsys.readouterr().out
    assert "ring8" in listed and "grid25" in listed


@pytest.mark.parametrize("sizes", [[0, 10, 10], [10, 10], [10, 10, -1], [10.5, 10, 10], [True, 10, 10], "many"])
def test_a_bad_size_is_a_usage_error(sizes):
    with pytest.raises(UsageError, match="data.sizes must be three positive integers"):
        ring8(sizes=sizes)
    with pytest.raises(UsageError, match="data.sizes"):
        get_dataset("grid25", sizes=sizes)


def test_the_mixture_cannot_be_set_from_a_recipe():
    with pytest.raises(UsageError, match="no option 'sigma'"):
        get_dataset("ring8", sigma=0.1)


def test_predict_takes_no_files_for_point_data(tmp_path):
    with pytest.raises(UsageError, match="takes no files for point data"):
        ring8().load_input(tmp_path / "points.png")
