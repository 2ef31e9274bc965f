"""Printing benchmark results as a table (rich in a terminal, plain text otherwise)."""

from __future__ import annotations

from typing import Any


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_result(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = result.get("rows", [])
    table = Table(title=result.get("title", "benchmark"))
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    for k in keys:
        table.add_column(k)
    for row in rows:
        table.add_row(*(_fmt(row.get(k, "")) for k in keys))
    console = Console()
    console.print(table)
    for line in result.get("notes", []):
        console.print(line)
