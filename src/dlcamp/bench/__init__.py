"""Benchmarks: each measures ours against a reference in the same run, on the same inputs.

A benchmark is a keyword-only function registered here; it returns a JSON-able dict with
at least ``rows`` (a list of dicts, one line of the table each) and ``title``.
``dlcamp bench NAME`` prints the table and can write the JSON.
"""

from __future__ import annotations

from typing import Any

from dlcamp.registry import Registry

BENCHMARKS: Registry = Registry("benchmark")
register_benchmark = BENCHMARKS.register


def get_benchmark(name: str):
    _load_builtin()
    return BENCHMARKS.builder(name)


def list_benchmarks() -> dict[str, str]:
    _load_builtin()
    return BENCHMARKS.describe()


def _load_builtin() -> None:
    """Import every module of the package (each registers its own entries) and the installed plug-ins."""
    from dlcamp.registry import import_package

    import_package("dlcamp.bench")


__all__ = ["BENCHMARKS", "get_benchmark", "list_benchmarks", "register_benchmark"]


def run_benchmark(name: str, **kwargs: Any) -> dict[str, Any]:
    from dlcamp.registry import check_kwargs

    fn = get_benchmark(name)
    check_kwargs(fn, kwargs, f"benchmark {name!r}")
    return fn(**kwargs)
