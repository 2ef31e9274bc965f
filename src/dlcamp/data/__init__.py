"""Datasets and data modules: embedded defaults and standard-format loaders.

``get_dataset(name, **kwargs)`` builds a registered data module; ``list_datasets()``
gives name -> one-line description.
"""

from __future__ import annotations

from typing import Any

from dlcamp.data.module import DataModule
from dlcamp.registry import Registry

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register


def get_dataset(name: str, **kwargs: Any) -> DataModule:
    _load_builtin()
    return DATASETS.build(name, **kwargs)


def list_datasets() -> dict[str, str]:
    _load_builtin()
    return DATASETS.describe()


def _load_builtin() -> None:
    """Import every module of the package (each registers its own entries) and the installed plug-ins."""
    from dlcamp.registry import import_package

    import_package("dlcamp.data")


__all__ = ["DATASETS", "DataModule", "get_dataset", "list_datasets", "register_dataset"]
