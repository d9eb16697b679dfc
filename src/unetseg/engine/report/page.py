"""The HTML of the report: small builders for tables and sections, and the page itself (one file: the style, the
script, the data and the pictures inlined; a Content-Security-Policy that allows nothing to be fetched)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

from .assets import SCRIPT, STYLE

#: rows of pictures per JSON block of the page
PICTURE_CHUNK = 25
#: the page may load nothing: no network, no other file; only its own inline style, script and data: pictures
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                           "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


def format_value(value: Any) -> str:
    """A value for a table cell: floats with 4 decimals (scientific below 0.001), NaN and None as a dash,
    lists and mappings as compact YAML-like text."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "\u2013"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) or "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "",
          numeric: Sequence[bool] | None = None) -> str:
    """An HTML table; cells are escaped text (:func:`format_value`), ``numeric`` columns right-aligned."""
    numeric = numeric or [False] * len(headers)
    align = [' class="num"' if n else "" for n in numeric]
    head = "".join(f"<th{a}>{escape(h)}</th>" for h, a in zip(headers, align))
    body = "".join("<tr>" + "".join(f"<td{a}>{escape(format_value(v))}</td>" for v, a in zip(row, align)) + "</tr>"
                   for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def facts_table(facts: Sequence[tuple[str, Any]]) -> str:
    """A two-column table of (what, value) without a header."""
    body = "".join(f"<tr><td>{escape(what)}</td><td>{escape(format_value(value))}</td></tr>" for what, value in facts)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def section(anchor: str, heading: str, body: str) -> str:
    """A titled section of the page that the navigation links to."""
    return f'<section id="{anchor}"><h2>{escape(heading)}</h2>{body}</section>'


def json_block(element_id: str, value: Any) -> str:
    """``value`` as JSON inside a ``<script type="application/json">`` (``</`` escaped so it cannot close it)."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def per_image_table(columns: Sequence[dict[str, Any]]) -> str:
    """The head of the per-image table (names with sort buttons, then a filter field per column); the script
    fills its body."""
    align = ['' if c["kind"] == "text" else ' class="num"' for c in columns]
    names = "".join(f'<th scope="col"{a} title="{escape(c["title"])}"><button type="button" data-col="{n}">'
                    f'{escape(c["label"])}</button></th>' for n, (c, a) in enumerate(zip(columns, align)))
    hints = {"text": "part of the name", "int": "e.g. >2", "number": "e.g. <0.8"}
    fields = "".join(f'<th><input data-col="{n}" aria-label="filter {escape(c["label"])}" placeholder="'
                     f'{escape(hints[c["kind"]])}"></th>' for n, c in enumerate(columns))
    return (f'<p class="count" id="row-count"></p><div class="table-wrap"><table id="per-image-table"><thead>'
            f'<tr class="names">{names}</tr><tr class="filters">{fields}</tr></thead><tbody></tbody></table></div>')


def render_page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]], data: dict[str, Any],
                pictures: Sequence[Any]) -> str:
    """The whole page.

    Args:
        title: the page's title and heading.
        subtitle: a line under the heading (what was evaluated, when).
        sections: (anchor, heading, HTML body) of each section, in order.
        data: the JSON the script reads (see :mod:`.assets`).
        pictures: per row of the table, its four ``data:`` URIs or None.
    """
    nav = "".join(f'<a href="#{a}">{escape(h)}</a>' for a, h, _ in sections)
    body = "".join(section(a, h, b) for a, h, b in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p><nav>{nav}</nav></header>"
            f"<main>{body}</main>{json_block('report-data', {**data, 'chunk': PICTURE_CHUNK})}"
            f"<script>{SCRIPT}</script>{picture_blocks(pictures)}</body></html>\n")


def picture_blocks(pictures: Sequence[Any]) -> str:
    """The pictures as JSON blocks of :data:`PICTURE_CHUNK` rows each (``report-pictures-0``, ``-1``, ...): many
    small blocks let the browser show the page while it reads them, and the script parses only those it needs."""
    return "".join(json_block(f"report-pictures-{n}", list(pictures[start:start + PICTURE_CHUNK]))
                   for n, start in enumerate(range(0, len(pictures), PICTURE_CHUNK)))
