"""The data-module base: shuffling, resuming mid-epoch and per-sample seeding."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import TensorDataset

from dlcamp.data.module import DataModule, EpochShuffleSampler, sample_seed
from dlcamp.errors import UsageError

N = 40


class AddNoise:
    """A random per-sample transform: x + U(0, 1) noise (uses the global torch RNG)."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x + torch.rand(x.shape), y


class ToyData(DataModule):
    """x = index (so a sample can be recognised after the noise), y = index."""

    def __init__(self, *, noisy_train: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.train_transform = AddNoise() if noisy_train else None

    def build_splits(self):
        x = torch.arange(N, dtype=torch.float32).view(N, 1)
        y = torch.arange(N)
        return {name: TensorDataset(x, y) for name in ("train", "val", "test")}


def epoch_batches(loader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.sampler.set_epoch(epoch)
    return list(loader)


def test_sampler_yields_a_permutation():
    sampler = EpochShuffleSampler(N, seed=3, batch_size=8)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(N))
        assert order != list(range(N))


def test_sampler_order_is_a_function_of_seed_and_epoch():
    def order(seed: int, epoch: int) -> list[int]:
        sampler = EpochShuffleSampler(N, seed=seed, batch_size=8)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0, 0) == order(0, 0)
    assert order(0, 1) == order(0, 1)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)


def test_sampler_without_shuffle_is_in_order():
    assert list(EpochShuffleSampler(N, seed=0, batch_size=8, shuffle=False)) == list(range(N))


def test_sampler_skips_the_batches_already_done():
    full = EpochShuffleSampler(N, seed=5, batch_size=8)
    resumed = EpochShuffleSampler(N, seed=5, batch_size=8, skip_batches=lambda: 2)
    for sampler in (full, resumed):
        sampler.set_epoch(4)
    assert list(resumed) == list(full)[16:]


def test_sampler_shards_split_one_permutation_among_ranks():
    def shard_order(rank: int, world: int) -> list[int]:
        sampler = EpochShuffleSampler(N + 1, seed=0, batch_size=4, shard=lambda: (rank, world))
        sampler.set_epoch(1)
        assert len(sampler) == len(list(sampler))
        return list(sampler)

    shards = [shard_order(rank, 3) for rank in range(3)]
    assert len({len(s) for s in shards}) == 1  # equal counts, so DDP ranks stay in step
    assert set().union(*shards) == set(range(N + 1))
    full = EpochShuffleSampler(N + 1, seed=0, batch_size=4)
    full.set_epoch(1)
    assert shards[0][:2] == [list(full)[0], list(full)[3]]


def test_train_loader_resumed_mid_epoch_yields_the_remaining_batches():
    full = ToyData(batch_size=8, seed=1)
    resumed = ToyData(batch_size=8, seed=1)
    progress = SimpleNamespace(current=SimpleNamespace(completed=3))
    resumed.trainer = SimpleNamespace(
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)), global_rank=0, world_size=1
    )

    expected = epoch_batches(full.train_dataloader(), epoch=2)[3:]
    got = epoch_batches(resumed.train_dataloader(), epoch=2)
    assert len(got) == len(expected) == 2
    for (x_got, y_got), (x_exp, y_exp) in zip(got, expected):
        assert torch.equal(y_got, y_exp)
        assert torch.equal(x_got, x_exp)  # the same noise too: it is seeded per (seed, epoch, index)


def test_random_transform_is_reproducible_for_the_same_seed_epoch_and_index():
    a = epoch_batches(ToyData(batch_size=8, seed=7).train_dataloader(), epoch=1)
    b = epoch_batches(ToyData(batch_size=8, seed=7).train_dataloader(), epoch=1)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)


def test_random_transform_changes_with_the_epoch_and_the_seed():
    def noise_by_index(seed: int, epoch: int) -> torch.Tensor:
        batches = epoch_batches(ToyData(batch_size=8, seed=seed).train_dataloader(), epoch)
        x = torch.cat([b[0] for b in batches]).squeeze(1)
        y = torch.cat([b[1] for b in batches])
        noise = torch.empty(N)
        noise[y] = x - y.float()
        return noise

    base = noise_by_index(0, 0)
    assert ((base >= 0) & (base < 1)).all()
    assert not torch.allclose(base, noise_by_index(0, 1))
    assert not torch.allclose(base, noise_by_index(1, 0))


def test_random_transform_is_independent_of_num_workers():
    single = epoch_batches(ToyData(batch_size=8, seed=2, num_workers=0).train_dataloader(), epoch=3)
    workers = epoch_batches(ToyData(batch_size=8, seed=2, num_workers=2).train_dataloader(), epoch=3)
    assert len(single) == len(workers)
    for (xs, ys), (xw, yw) in zip(single, workers):
        assert torch.equal(ys, yw) and torch.equal(xs, xw)


def test_transform_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    list(ToyData(batch_size=8).train_dataloader())
    assert torch.equal(torch.rand(3), expected)


def test_sample_seed_is_distinct_across_epochs_and_indices():
    seeds = {sample_seed(0, epoch, index) for epoch in range(10) for index in range(-1, 1000)}
    assert len(seeds) == 10 * 1001


def test_eval_loader_of_the_train_split_uses_the_eval_transform():
    dm = ToyData(batch_size=8)
    x, y = next(iter(dm.split_loader("train")))
    assert torch.equal(x.squeeze(1), y.float())  # no noise


def test_eval_loaders_keep_order_and_cover_the_split():
    dm = ToyData(batch_size=8, eval_batch_size=16)
    y = torch.cat([b[1] for b in dm.val_dataloader()])
    assert torch.equal(y, torch.arange(N))


def test_batch_size_all_is_one_full_batch():
    dm = ToyData(batch_size="all")
    batches = list(dm.train_dataloader())
    assert len(batches) == 1 and len(batches[0][1]) == N


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": "full"}, {"num_workers": -1}])
def test_bad_loader_options_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        ToyData(**kwargs)


def test_unknown_split_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown split"):
        ToyData().split_loader("holdout")


def test_epoch_set_after_the_iterator_is_made_still_reaches_the_transform():
    # Lightning makes a resumed run's first iterator before it calls set_epoch: the
    # per-sample randomness must follow the epoch the sampler has when batches are drawn.
    from dlcamp.data import get_dataset

    spec = [{"name": "RandomAffine", "degrees": 20, "translate": [0.2, 0.2]}]

    def first_batch(epoch, late):
        dm = get_dataset("digits", augment=spec, batch_size=16)
        loader = dm.train_dataloader()
        if late:
            it = iter(loader)
            loader.sampler.set_epoch(epoch)
        else:
            loader.sampler.set_epoch(epoch)
            it = iter(loader)
        return next(it)[0]

    assert torch.equal(first_batch(2, late=True), first_batch(2, late=False))
    assert not torch.equal(first_batch(2, late=False), first_batch(1, late=False))
