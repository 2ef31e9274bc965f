"""Tasks: LightningModules that wire a model to its loss, metrics and figures.

``TASKS`` maps a recipe's ``task.name`` to a builder ``(*, model, datamodule, **options)``; the engine
sets the optimizers, phases and memory format afterwards (``Task.configure_engine``).
"""

from __future__ import annotations

from dlcamp.registry import Registry

TASKS: Registry = Registry("task")
register_task = TASKS.register


def list_tasks() -> dict[str, str]:
    _load_builtin()
    return TASKS.describe()


def _load_builtin() -> None:
    """Import every module of the package (each registers its own entries) and the installed plug-ins."""
    from dlcamp.registry import import_package

    import_package("dlcamp.tasks")


__all__ = ["TASKS", "list_tasks", "register_task"]
