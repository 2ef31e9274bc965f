"""The run report: one self-contained HTML page (images inline as base64)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Sequence

from dlcamp.io import write_text

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:.3em .7em;text-align:left;font-size:.92em}
th{background:#f4f4f4}img{max-width:100%;margin:.5em 0;border:1px solid #eee}
.muted{color:#777;font-size:.9em}code{background:#f4f4f4;padding:0 .2em}
"""


def img_tag(path: Path, alt: str = "") -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption class="muted">{html.escape(alt)}</figcaption></figure>'


def table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(row.get(k, '')))}</td>" for k in keys) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def page(title: str, sections: Sequence[tuple[str, str]], *, subtitle: str = "") -> str:
    """A whole HTML page from (heading, inner-HTML) sections."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if subtitle:
        parts.append(f"<p class='muted'>{html.escape(subtitle)}</p>")
    for heading, inner in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{inner}")
    parts.append("</body></html>")
    return "".join(parts)


def run_section(summary: dict[str, Any], figures: Sequence[Path]) -> str:
    """A run's summary table and figures, as HTML."""
    metrics = summary.get("metrics", {})
    facts = [{"recipe": summary.get("recipe"), "model": summary.get("model"), "dataset": summary.get("dataset"),
              "params": summary.get("params"), "epochs": summary.get("epochs"), "steps": summary.get("steps"),
              "train seconds": summary.get("train_seconds"), "seed": summary.get("seed")}]
    out = table(facts) + table([{k: v for k, v in metrics.items()}])
    out += "".join(img_tag(p, p.stem.replace("_", " ")) for p in figures)
    return out


def write_run_report(run_dir: Path, summary: dict[str, Any], figures: Sequence[Path]) -> Path:
    path = run_dir / "report.html"
    write_text(path, page(f"dlcamp run: {summary.get('recipe')}", [("Summary", run_section(summary, figures))],
                          subtitle=str(run_dir)))
    return path
