"""A self-contained HTML report: images inlined as base64, tables of metrics, provenance."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from cryophase.io.outputs import atomic_path


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).name)}">'


def _table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            if isinstance(v, float):
                v = f"{v:.4g}"
            cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_html_report(path: str | Path, *, title: str, sections: list[tuple[str, list]], provenance: dict) -> Path:
    """Write a single-file HTML report.

    Parameters
    ----------
    path : output .html
    title : page title
    sections : list of (heading, items); an item is a str (paragraph), a Path (PNG, inlined) or a
        list of dict rows (a table).
    provenance : recorded at the end (version, command line, settings).
    """
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}table{border-collapse:collapse;margin:0.5em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:0.9em;text-align:right}"
        "th{background:#f3f3f3}pre{background:#f7f7f7;padding:0.5em;overflow:auto;font-size:0.8em}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, items in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for item in items:
            if isinstance(item, Path):
                parts.append(_img(item))
            elif isinstance(item, list):
                parts.append(_table(item))
            else:
                parts.append(f"<p>{html.escape(str(item))}</p>")
    parts.append("<h2>Provenance</h2><pre>" + html.escape(json.dumps(provenance, indent=2, default=str)) + "</pre>")
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path
