"""Recipes: YAML files shipped with the package, one per trainable configuration.

``get_recipe(name_or_path)`` returns the recipe as a mapping (a registered name, or the
path of a YAML file); ``list_recipes()`` gives name -> one-line description.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from dlcamp.engine.config import load_yaml
from dlcamp.errors import UnknownNameError
from dlcamp.registry import Registry

RECIPES: Registry = Registry("recipe")
_FOLDERS: list[Path] = []


def add_recipe_folder(folder: str | Path) -> None:
    """Register every ``*.yaml`` in ``folder`` as a recipe (how a plug-in family ships its recipes)."""
    if Path(folder) not in _FOLDERS:
        _FOLDERS.append(Path(folder))


def _recipe_files() -> dict[str, Path]:
    from dlcamp.registry import load_plugins

    load_plugins()  # a plug-in adds its folder when imported
    folders = [Path(str(resources.files("dlcamp.recipes")))] + _FOLDERS
    return {p.stem: p for folder in folders for p in sorted(folder.glob("*.yaml"))}


def _register_all() -> None:
    for name, path in sorted(_recipe_files().items()):
        if name not in RECIPES:

            def loader(_path: Path = path) -> dict[str, Any]:
                return load_yaml(_path)

            RECIPES.register(name, description=str(load_yaml(path).get("description", "")))(loader)


def list_recipes() -> dict[str, str]:
    _register_all()
    return RECIPES.describe()


def get_recipe(name_or_path: str) -> dict[str, Any]:
    """A registered recipe by name, or a YAML file by path."""
    _register_all()
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        cfg = load_yaml(path)
        cfg.setdefault("name", path.stem)
        return cfg
    try:
        cfg = RECIPES.builder(name_or_path)()
    except UnknownNameError as e:
        raise UnknownNameError(f"{e} (or give the path of a recipe YAML file)") from None
    cfg.setdefault("name", name_or_path)
    return cfg
