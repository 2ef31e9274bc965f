"""Tasks: LightningModules that wire a model to its loss, metrics and figures.

``TASKS`` maps a recipe's ``task.name`` to a builder ``(model, datamodule, optim, **args)``.
"""

from __future__ import annotations

from dlcamp.registry import Registry

TASKS: Registry = Registry("task")
register_task = TASKS.register


def list_tasks() -> dict[str, str]:
    _load_builtin()
    return TASKS.describe()


def _load_builtin() -> None:
    from dlcamp.tasks import classification, detection, likelihood, sequence  # noqa: F401


__all__ = ["TASKS", "list_tasks", "register_task"]
