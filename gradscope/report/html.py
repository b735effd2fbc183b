"""One self-contained HTML page: figures embedded as base64 PNG, every name escaped."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["render_report"]

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:left}figure{margin:2em 0}img{max-width:100%}figcaption{color:#555;font-size:.9em}
.skip{color:#8a5a00}.verdict{font-weight:600;margin:.4em 0}
details{margin:1.5em 0}summary{font-weight:600;cursor:pointer}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_report(
    title: str,
    headline: Mapping[str, Any],
    figures: Sequence[tuple[str, str, bytes] | tuple[str, str, bytes, str]],
    skipped: Mapping[str, str],
    notes: Sequence[str] = (),
    *,
    meta: Sequence[tuple[str, str]] = (),
    table: Sequence[Sequence[Any]] | None = None,
    verdicts: Mapping[str, str] | None = None,
    pair_verdicts: Sequence[str] = (),
    table_title: str = "Per-layer table",
    summary_table: Sequence[Sequence[Any]] | None = None,
    pair_tables: Sequence[Sequence[Sequence[Any]]] = (),
) -> str:
    """The HTML text of a report (opens offline: no external resources).

    Order: the headline numbers (and ``summary_table``, a comparison's side-by-side
    numbers); the conclusions (``verdicts`` not tied to a figure; a comparison's
    ``pair_tables``, runs against runs, and its ``pair_verdicts`` in words, collapsed);
    the figures (each with its verdict above the image and its caption below); then the
    per-layer ``table`` and the skipped analyses, each collapsed in a ``<details>``.
    """
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if meta:
        out.append("<table>")
        out += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta]
        out.append("</table>")
    out.append("<h2>Headline numbers</h2><table>")
    out += [f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in headline.items()]
    out.append("</table>")
    if summary_table:
        out.append("<table>")
        out.append("<tr>" + "".join(f"<th>{_e(c)}</th>" for c in summary_table[0]) + "</tr>")
        for row in summary_table[1:]:
            out.append("<tr>" + "".join(f"<td>{_e(_fmt(c))}</td>" for c in row) + "</tr>")
        out.append("</table>")
    if verdicts or pair_verdicts or pair_tables:
        out.append("<h2>Conclusions</h2>")
        if verdicts:
            out.append("<ul>")
            out += [f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in verdicts.items()]
            out.append("</ul>")
        for pt in pair_tables:
            out.append("<table class='pairs'>")
            out.append("<tr>" + "".join(f"<th>{_e(c)}</th>" for c in pt[0]) + "</tr>")
            for row in pt[1:]:
                out.append(
                    f"<tr><th>{_e(row[0])}</th>"
                    + "".join(f"<td>{_e(c)}</td>" for c in row[1:])
                    + "</tr>"
                )
            out.append("</table>")
        if pair_tables:
            out.append(
                "<p>Cell (row, column): in how many of the layers both runs have the row run "
                "has the lower value, of how many.</p>"
            )
        if pair_verdicts:
            out.append(
                f"<details><summary>Every pair in words ({len(pair_verdicts)})</summary><ul>"
            )
            out += [f"<li>{_e(v)}</li>" for v in pair_verdicts]
            out.append("</ul></details>")
    for n in notes:
        out.append(f"<p class='skip'>Note: {_e(n)}</p>")
    for fig in figures:
        title_, caption, png = fig[0], fig[1], fig[2]
        verdict = fig[3] if len(fig) > 3 else ""  # type: ignore[misc]
        b64 = base64.b64encode(png).decode("ascii")
        v = f"<p class='verdict'>Verdict: {_e(verdict)}</p>" if verdict else ""
        out.append(
            f"<figure><h2>{_e(title_)}</h2>{v}"
            f'<img alt="{_e(title_)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    if table:
        out.append(f"<details><summary>{_e(table_title)}</summary><table>")
        out.append("<tr>" + "".join(f"<th>{_e(c)}</th>" for c in table[0]) + "</tr>")
        for row in table[1:]:
            out.append("<tr>" + "".join(f"<td>{_e(_fmt(c))}</td>" for c in row) + "</tr>")
        out.append("</table></details>")
    if skipped:
        out.append(
            f"<details class='skipped'><summary>Skipped analyses ({len(skipped)})</summary><ul>"
        )
        out += [f"<li class='skip'><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in skipped.items()]
        out.append("</ul></details>")
    out.append("</body></html>")
    return "\n".join(out)
