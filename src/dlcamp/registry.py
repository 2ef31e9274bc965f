"""A registry maps names to builders: one kind per registry (models, datasets, recipes, ...).

Builders are registered with a decorator and looked up by name; the command line resolves
names only through registries, so every name a user types can be listed and checked.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import typing
from typing import Any, Callable, Generic, Iterable, TypeVar

from dlcamp.errors import UnknownNameError

T = TypeVar("T", bound=Callable[..., Any])


def first_line(doc: str | None) -> str:
    """The first non-empty line of a docstring (the one-line description)."""
    for line in (doc or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class Registry(Generic[T]):
    """Names to builders for one kind of thing (``kind`` is used in messages: "model")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str | None = None, *, description: str | None = None) -> Callable[[T], T]:
        """Decorator: register ``fn`` under ``name`` (default: its ``__name__``)."""

        def decorator(fn: T) -> T:
            key = name or fn.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = fn
            self._descriptions[key] = description or first_line(fn.__doc__)
            return fn

        return decorator

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self, *, registration_order: bool = False) -> list[str]:
        """Registered names, sorted (or in the order they were registered)."""
        return list(self._entries) if registration_order else sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """Name -> one-line description, sorted by name."""
        return {k: self._descriptions[k] for k in self.names()}

    def builder(self, name: str) -> T:
        """The registered builder, or an ``UnknownNameError`` suggesting close names."""
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names(), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"`dlcamp list {self.kind}s` shows them all"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; {hint}") from None

    def build(self, name: str, **kwargs: Any) -> Any:
        """Build ``name`` with keyword arguments (checked against its signature first)."""
        fn = self.builder(name)
        check_kwargs(fn, kwargs, f"{self.kind} {name!r}")
        return fn(**kwargs)


def signature_params(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword parameters ``fn`` accepts (empty dict if it takes ``**kwargs``: anything goes)."""
    params = inspect.signature(fn).parameters
    return {
        k: p
        for k, p in params.items()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


def accepts_any(fn: Callable[..., Any]) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], what: str) -> None:
    """Raise a ``UsageError`` naming any keyword that ``fn`` does not take."""
    from dlcamp.errors import UsageError

    if accepts_any(fn):
        return
    known = signature_params(fn)
    for key in kwargs:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"it takes: {', '.join(known) or 'nothing'}"
            raise UsageError(f"{what} has no option {key!r}; {hint}")


def forwards(target: Callable[..., Any], *, drop: Iterable[str] = ()) -> Callable[[T], T]:
    """Decorator for a builder that sets some keywords itself and passes ``**kwargs`` on to ``target``.

    The builder's visible signature (and type hints) becomes its own keyword parameters
    plus every keyword parameter of ``target`` (a class's ``__init__`` or a function) that
    the builder does not declare or ``drop``. Recipes are then checked against the class
    itself, and every constructor argument is reachable from a recipe without the builder
    repeating it::

        @register_model("fasterrcnn")
        @forwards(FasterRCNN, drop=("backbone",))
        def fasterrcnn(*, backbone: str = "tiny", num_classes: int = 5, **kwargs) -> FasterRCNN:
            return FasterRCNN(make_backbone(backbone), num_classes=num_classes, **kwargs)
    """
    dropped = set(drop)

    def decorator(fn: T) -> T:
        own = inspect.signature(fn)
        own_params = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        names = {p.name for p in own_params} | dropped | {"self"}
        callee = target.__init__ if inspect.isclass(target) else target
        extra = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for k, p in signature_params(callee).items()
            if k not in names
        ]
        # positional-or-keyword parameters of the builder stay first; keyword-only after
        ordered = sorted(own_params + extra, key=lambda p: p.kind)
        fn.__signature__ = own.replace(parameters=ordered)  # type: ignore[attr-defined]
        hints: dict[str, Any] = {}
        for source in (callee, fn):  # the builder's own hints win
            try:
                hints.update(typing.get_type_hints(source))
            except Exception:  # unresolvable annotations: names are still checked
                pass
        fn.__annotations__ = {k: v for k, v in hints.items() if k in {p.name for p in ordered} or k == "return"}
        fn.__wrapped_target__ = target  # type: ignore[attr-defined]
        return fn

    return decorator


# -- discovery ----------------------------------------------------------------------------

PLUGIN_GROUP = "dlcamp.plugins"
_loaded: set[str] = set()


def import_package(package: str) -> None:
    """Import every module under ``package`` (once): importing a module registers what it defines.

    A new family is a new module or sub-package; no list of modules to edit.
    """
    if package in _loaded:
        return
    _loaded.add(package)
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        importlib.import_module(info.name)
    load_plugins()


def load_plugins() -> None:
    """Import the modules that installed packages declare under the ``dlcamp.plugins`` entry-point group.

    A family kept outside dlcamp declares in its own ``pyproject.toml``::

        [project.entry-points."dlcamp.plugins"]
        toy = "my_family.toy"

    and importing that module registers its models, tasks, data, recipes and tour sections.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        key = f"plugin:{ep.value}"
        if key not in _loaded:
            _loaded.add(key)
            importlib.import_module(ep.module)
