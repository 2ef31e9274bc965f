"""Printing benchmark results as a table (rich in a terminal, plain text otherwise)."""

from __future__ import annotations

from typing import Any


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_result(result: dict[str, Any]) -> None:
    """The main table (``rows``), then any further ones (``tables``: title and rows each), then the notes."""
    from rich.console import Console

    console = Console()
    for title, rows in [(result.get("title", "benchmark"), result.get("rows", []))] + [
        (t["title"], t["rows"]) for t in result.get("tables", [])
    ]:
        console.print(_table(title, rows))
    for line in result.get("notes", []):
        console.print(line)


def _table(title: str, rows: list[dict[str, Any]]):
    from rich.table import Table

    table = Table(title=title)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    for k in keys:
        table.add_column(k)
    for row in rows:
        table.add_row(*(_fmt(row.get(k, "")) for k in keys))
    return table
