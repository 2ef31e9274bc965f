"""The data module contract every dataset of dlcamp follows.

A dataset builder (registered in ``dlcamp.data``) returns a ``DataModule``: a
LightningDataModule with ``train``/``val``/``test`` splits and the facts a model builder
needs (``num_classes``, ``input_shape``, ``class_names``).

Determinism, and why it is arranged this way: shuffling uses its own generator seeded by
(seed, epoch), and per-sample randomness (augmentation, dynamic binarisation) is seeded by
(seed, epoch, index) inside ``__getitem__``. Nothing in the data path touches the global
RNG, so a run resumed from a mid-epoch checkpoint sees exactly the batches (and the
augmentations) that the uninterrupted run saw, whatever the number of workers.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from dlcamp.errors import UsageError


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A distinct 63-bit seed for one (seed, epoch, index) triple."""
    return (seed * 1_000_003 + epoch * 998_244_353 + index * 7_919 + 12_345) % (2**63 - 1)


class EpochShuffleSampler(Sampler[int]):
    """A random permutation per epoch, seeded by (seed, epoch), sharded and able to start part-way.

    ``shard()`` gives (rank, world_size): under DDP each process takes every world_size-th
    index of the same permutation (padded by wrapping so all ranks get equal counts).
    ``skip_batches()`` gives how many of this process's batches of this epoch were
    already trained on when iteration starts (non-zero only when resuming mid-epoch).
    ``keyed`` yields (epoch, index) pairs for a ``SeededView``: the epoch is read when
    iteration starts, which matters because Lightning creates a resumed run's first
    iterator before it calls ``set_epoch``.
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        batch_size: int,
        shuffle: bool = True,
        skip_batches: Callable[[], int] | None = None,
        shard: Callable[[], tuple[int, int]] | None = None,
        keyed: bool = False,
    ) -> None:
        self.n, self.seed, self.batch_size, self.shuffle = n, seed, batch_size, shuffle
        self.epoch = 0
        self.skip_batches = skip_batches
        self.shard = shard
        self.keyed = keyed

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rank_world(self) -> tuple[int, int]:
        return self.shard() if self.shard else (0, 1)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, -1))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        rank, world = self._rank_world()
        if world > 1:
            per_rank = -(-self.n // world)
            order = (order * 2)[: per_rank * world][rank::world]
        start = (self.skip_batches() if self.skip_batches else 0) * self.batch_size
        if self.keyed:  # the epoch travels with each index, into worker processes too
            return iter([(self.epoch, i) for i in order[start:]])
        return iter(order[start:])

    def __len__(self) -> int:
        _, world = self._rank_world()
        return -(-self.n // world)


class SeededView(Dataset):
    """A split of a base dataset with a per-sample transform seeded by (seed, epoch, index).

    ``transform(x, y) -> (x, y)`` may use torch's RNG freely: it runs under a forked RNG.
    """

    def __init__(self, base: Dataset, transform: Callable[[Any, Any], tuple[Any, Any]] | None, seed: int) -> None:
        self.base, self.transform, self.seed = base, transform, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any]:
        # a key from a keyed EpochShuffleSampler carries the epoch; a plain index uses .epoch
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        x, y = self.base[index]
        if self.transform is None:
            return x, y
        # Fork the CPU generator by hand: torch.manual_seed also visits every other device
        # type and costs as much again as the transform of a small image.
        generator = torch.default_generator
        saved = generator.get_state()
        generator.manual_seed(sample_seed(self.seed, epoch, index))
        try:
            return self.transform(x, y)
        finally:
            generator.set_state(saved)


class DataModule(L.LightningDataModule):
    """Base class: subclasses implement ``build_splits`` and set the class facts.

    Attributes a subclass sets in ``__init__``: ``num_classes``, ``input_shape`` (C, H, W)
    and ``class_names``. ``build_splits()`` returns {"train", "val", "test"} datasets of
    (input, target) pairs; ``train_transform`` / ``eval_transform`` are per-sample
    ``(x, y) -> (x, y)`` functions (None for none).

    The loader options (``batch_size``, ``eval_batch_size``, ``num_workers``, ``seed``) are
    declared here only: a subclass's ``__init__`` and its builder take ``**loader_args`` and
    pass them on, decorated with ``dlcamp.registry.forwards`` so that recipes still see (and
    are checked against) every option. A data module whose batch sizes differ from these
    defaults re-declares just those two.
    """

    num_classes: int = 0
    input_shape: tuple[int, ...] = ()
    class_names: list[str] = []
    # Batches of samples that do not stack (detection targets) need their own collate.
    collate_fn: Callable[[list[Any]], Any] | None = None

    def __init__(
        self, *, batch_size: int | str = 64, eval_batch_size: int = 256, num_workers: int = 0, seed: int = 0
    ) -> None:
        super().__init__()
        if not (batch_size == "all" or (isinstance(batch_size, int) and batch_size >= 1)):
            raise UsageError(f"data.batch_size must be a positive integer or 'all' (full batch), got {batch_size!r}")
        if num_workers < 0:
            raise UsageError(f"data.num_workers must be >= 0, got {num_workers}")
        self.batch_size, self.eval_batch_size, self.num_workers, self.seed = (
            batch_size,
            eval_batch_size,
            num_workers,
            seed,
        )
        self.splits: dict[str, SeededView] = {}
        self.train_transform: Callable[[Any, Any], tuple[Any, Any]] | None = None
        self.eval_transform: Callable[[Any, Any], tuple[Any, Any]] | None = None

    # -- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def build_splits(self) -> dict[str, Dataset]:
        """The {"train", "val", "test"} datasets of (input, target) pairs."""

    def load_input(self, path: Path) -> torch.Tensor:
        """Read one user file (an image) into a model input Tensor[C, H, W]; used by ``predict``."""
        raise UsageError(f"{type(self).__name__} cannot read input files")

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model input -> image in [0, 1] for figures (identity unless the data is normalised)."""
        return x

    # -- shared machinery ---------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = self.build_splits()
        self.splits = {
            name: SeededView(ds, self.train_transform if name == "train" else self.eval_transform, self.seed)
            for name, ds in raw.items()
        }

    def train_batch_size(self) -> int:
        self.setup()
        return len(self.splits["train"]) if self.batch_size == "all" else int(self.batch_size)

    def _batches_done_this_epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)

    def _rank_world(self) -> tuple[int, int]:
        # We shard the training set ourselves (Trainer(use_distributed_sampler=False)) so
        # that the per-epoch shuffle and the mid-epoch skip stay ours under DDP too.
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        train = self.splits["train"]
        bs = self.train_batch_size()
        sampler = EpochShuffleSampler(
            len(train),
            seed=self.seed,
            batch_size=bs,
            keyed=True,
            skip_batches=self._batches_done_this_epoch,
            shard=self._rank_world,
        )
        return DataLoader(
            train,
            sampler=sampler,
            batch_size=bs,
            num_workers=self.num_workers,
            persistent_workers=False,
            drop_last=False,
            generator=self._loader_generator(),
            collate_fn=self.collate_fn,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        self.setup()
        dataset = self.splits[split]
        if split == "train":
            # Evaluate the training images as the others are: with the eval transform (no
            # augmentation), not with the train view's transform of its last epoch.
            dataset = SeededView(dataset.base, self.eval_transform, self.seed)
        return DataLoader(
            dataset,
            batch_size=self.eval_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            generator=self._loader_generator(),
            collate_fn=self.collate_fn,
        )

    def _loader_generator(self) -> torch.Generator:
        # Each DataLoader iterator draws a base seed for its workers; without a generator of
        # its own it draws it from the global RNG, and a resumed run's dropout and init
        # would then differ from the uninterrupted run's.
        return torch.Generator().manual_seed(self.seed)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def split_loader(self, split: str) -> DataLoader:
        """The evaluation loader of any split ("train", "val", "test")."""
        if split not in ("train", "val", "test"):
            raise UsageError(f"unknown split {split!r}; choose train, val or test")
        return self._eval_loader(split)

    def model_facts(self) -> dict[str, Any]:
        """Extra builder arguments the engine fills in when a model builder takes them.

        The engine always offers ``num_classes``, ``input_shape`` and ``in_channels``; a data
        module adds its own here (text data: ``vocab_size``, ``max_len``).
        """
        return {}

    def info(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "class_names": list(self.class_names),
        }


def stratified_split(labels: Sequence[int], fractions: tuple[float, float, float], seed: int) -> dict[str, list[int]]:
    """Indices of a stratified train/val/test split with fixed ``seed`` (scikit-learn's splitter)."""
    from sklearn.model_selection import train_test_split

    idx = list(range(len(labels)))
    train_f, val_f, test_f = fractions
    rest, test = train_test_split(idx, test_size=test_f, stratify=labels, random_state=seed)
    rest_labels = [labels[i] for i in rest]
    train, val = train_test_split(rest, test_size=val_f / (train_f + val_f), stratify=rest_labels, random_state=seed)
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}
