"""Architectures, registered by name: ``get_model(name, **kwargs)`` and ``list_models()``.

Builders are lowercase, keyword-only functions named as their registry key.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from dlcamp.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


def get_model(name: str, **kwargs: Any) -> nn.Module:
    _load_builtin()
    return MODELS.build(name, **kwargs)


def list_models() -> dict[str, str]:
    _load_builtin()
    return MODELS.describe()


def _load_builtin() -> None:
    """Import every module of the package (each registers its own entries) and the installed plug-ins."""
    from dlcamp.registry import import_package

    import_package("dlcamp.models")


__all__ = ["MODELS", "get_model", "list_models", "register_model"]
