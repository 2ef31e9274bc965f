"""A registry maps names to builders: one kind per registry (models, datasets, recipes, ...).

Builders are registered with a decorator and looked up by name; the command line resolves
names only through registries, so every name a user types can be listed and checked.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Generic, TypeVar

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
