"""Figures as PNG files: the common helpers here, each family's plots in a module of its own.

``common`` holds what every family uses (``save``, ``read_metrics_csv``, ``plot_curves``,
``plot_compare``, ``plot_image_grid``). A family's plots live in a module beside it
(``detection.py``, ``sequence.py``, ...) that lists them in ``__all__``; they are found
by name, so a new family adds a module and edits nothing here::

    from dlcamp.report import figures as F
    F.save(F.plot_detections(images, predictions, class_names), out_dir / "detections.png")
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from dlcamp.report.figures.common import (  # noqa: F401  (re-exported)
    ema,
    plot_compare,
    plot_curves,
    plot_image_grid,
    read_metrics_csv,
    save,
)

_index: dict[str, Any] | None = None


def family_modules() -> list[ModuleType]:
    """Every figures module of the package (imported once), ``common`` first."""
    import sys

    from dlcamp.registry import import_package

    import_package(__name__)
    prefix = f"{__name__}."
    return sorted(
        (m for name, m in list(sys.modules.items()) if name.startswith(prefix) and m is not None),
        key=lambda m: (m.__name__ != f"{prefix}common", m.__name__),
    )


def _public_figures() -> dict[str, Any]:
    """Name -> function over every module's ``__all__``; a name claimed by two modules is an error."""
    global _index
    if _index is None:
        index: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for module in family_modules():
            for name in getattr(module, "__all__", ()):
                if name in owner and owner[name] != module.__name__:
                    raise ValueError(
                        f"figure {name!r} is defined by both {owner[name]} and {module.__name__}; rename one of them"
                    )
                index[name], owner[name] = getattr(module, name), module.__name__
        _index = index
    return _index


def __getattr__(name: str) -> Any:  # PEP 562: F.plot_detections finds detection.plot_detections
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return _public_figures()[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no figure {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_public_figures()))
