"""Reports as self-contained HTML pages (images inline as base64), a table of contents on top."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from dlcamp.io import write_text

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:.3em .7em;text-align:left;font-size:.92em}
th{background:#f4f4f4}img{max-width:100%;margin:.5em 0;border:1px solid #eee}
.muted{color:#777;font-size:.9em}code{background:#f4f4f4;padding:0 .2em}
nav.toc{background:#fafafa;border:1px solid #eee;padding:.4em 1.2em;margin:1em 0}nav.toc li{margin:.15em 0}
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
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(row.get(k, '')))}</td>" for k in keys) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


class Part(NamedTuple):
    """One section of a page: its heading, its inner HTML, and optionally its anchor and a note.

    The anchor (``id``) defaults to the heading made URL-safe; the note is shown beside the
    heading's entry in the table of contents (a tour section's time against its budget).
    """

    heading: str
    html: str
    anchor: str = ""
    note: str = ""


def anchor_of(text: str) -> str:
    """A URL fragment for ``text``: lower case, runs of other characters as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def page(title: str, sections: Sequence[tuple[str, ...]], *, subtitle: str = "") -> str:
    """A whole HTML page from sections: ``Part``s or plain (heading, inner-HTML) pairs.

    A page of two or more sections opens with a table of contents linking each one.
    """
    parts = [Part(*s) for s in sections]
    anchors: list[str] = []
    for part in parts:  # unique anchors, even for repeated headings
        base = part.anchor or anchor_of(part.heading)
        anchor, k = base, 2
        while anchor in anchors:
            anchor, k = f"{base}-{k}", k + 1
        anchors.append(anchor)
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        out.append(f"<p class='muted'>{html.escape(subtitle)}</p>")
    if len(parts) > 1:
        out.append(toc(parts, anchors))
    for part, anchor in zip(parts, anchors):
        out.append(f'<h2 id="{anchor}">{html.escape(part.heading)}</h2>{part.html}')
    out.append("</body></html>")
    return "".join(out)


def toc(parts: Sequence[Part], anchors: Sequence[str]) -> str:
    """The table of contents: a numbered list of links to the sections, each with its note."""
    items = "".join(
        f'<li><a href="#{a}">{html.escape(p.heading)}</a>'
        + (f" <span class='muted'>{html.escape(p.note)}</span>" if p.note else "")
        + "</li>"
        for p, a in zip(parts, anchors)
    )
    return f"<nav class='toc'><strong>Contents</strong><ol>{items}</ol></nav>"


def run_section(summary: dict[str, Any], figures: Sequence[Path]) -> str:
    """A run's summary table and figures, as HTML (one block: a tour section embeds it)."""
    return summary_tables(summary) + "".join(img_tag(p, p.stem.replace("_", " ")) for p in figures)


def summary_tables(summary: dict[str, Any]) -> str:
    """A run's facts (recipe, model, data, size, budget, seed) and its final metrics, as two tables."""
    facts = [
        {
            "recipe": summary.get("recipe"),
            "model": summary.get("model"),
            "dataset": summary.get("dataset"),
            "params": summary.get("params"),
            "epochs": summary.get("epochs"),
            "steps": summary.get("steps"),
            "train seconds": summary.get("train_seconds"),
            "seed": summary.get("seed"),
        }
    ]
    return table(facts) + table([dict(summary.get("metrics", {}))])


def write_run_report(run_dir: Path, summary: dict[str, Any], figures: Sequence[Path]) -> Path:
    """``run_dir/report.html``: the summary, then one section per figure, a table of contents on top."""
    path = run_dir / "report.html"
    parts = [Part("Summary", summary_tables(summary))]
    parts += [
        Part(p.stem.replace("_", " "), img_tag(p, p.stem.replace("_", " ")), anchor=anchor_of(p.stem)) for p in figures
    ]
    write_text(path, page(f"dlcamp run: {summary.get('recipe')}", parts, subtitle=str(run_dir)))
    return path
