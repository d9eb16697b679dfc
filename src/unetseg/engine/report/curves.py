"""Learning curves as inline SVG: line charts of the per-epoch log, drawn without any library, each point with a
tooltip (its ``<title>``) giving the epoch and the value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

#: line colours (Okabe and Ito's colour-blind-safe palette)
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
WIDTH, HEIGHT = 400, 270
LEFT, RIGHT, TOP, BOTTOM = 58, 12, 52, 36  # margins of the plotting area
#: above this many epochs the points are not drawn one by one (the lines stay)
MAX_POINTS = 200


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] in at most about ``count`` steps of 1, 2 or 5 times a power of ten
    (the smallest such step that needs no more than ``count``)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        low, high = low - 0.5 * (abs(low) or 1), high + 0.5 * (abs(high) or 1)
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _label(value: float) -> str:
    return f"{value:.3g}" if value != 0 else "0"


def line_chart(title: str, epochs: Sequence[int], series: Sequence[tuple[str, Sequence[float]]], y_label: str,
               marker: int | None = None) -> str:
    """An SVG line chart of ``series`` (name, one value per epoch; NaN for none) against ``epochs``.

    ``marker``: an epoch to mark with a dashed vertical line (the best one). A series without a finite value is
    left out; with none at all the chart says so.
    """
    drawn = [(name, values) for name, values in series if any(math.isfinite(v) for v in values)]
    finite = [v for _, values in drawn for v in values if math.isfinite(v)]
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<text x="{LEFT}" y="20" class="chart-title">{escape(title)}</text>']
    if not drawn or not epochs:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no values logged</text></svg>')
        return "".join(parts)
    y_ticks = nice_ticks(min(finite), max(finite))
    x_ticks = nice_ticks(min(epochs), max(epochs)) if max(epochs) > min(epochs) else [min(epochs)]
    x_ticks = [t for t in x_ticks if float(t).is_integer()] or [min(epochs)]
    x0, x1 = min(x_ticks[0], min(epochs)), max(x_ticks[-1], max(epochs))
    y0, y1 = y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return LEFT + (x - x0) / ((x1 - x0) or 1) * (WIDTH - LEFT - RIGHT)

    def sy(y: float) -> float:
        return HEIGHT - BOTTOM - (y - y0) / ((y1 - y0) or 1) * (HEIGHT - TOP - BOTTOM)

    parts += _axes(x_ticks, y_ticks, sx, sy, y_label)
    if marker is not None:
        parts.append(f'<line class="marker" x1="{sx(marker):.1f}" x2="{sx(marker):.1f}" y1="{TOP}" '
                     f'y2="{HEIGHT - BOTTOM}"><title>best epoch {marker}</title></line>')
    for n, (name, values) in enumerate(drawn):
        parts += _series(name, epochs, values, COLOURS[n % len(COLOURS)], sx, sy)
        parts.append(_legend_entry(n, name, COLOURS[n % len(COLOURS)]))
    parts.append("</svg>")
    return "".join(parts)


def _axes(x_ticks: Sequence[float], y_ticks: Sequence[float], sx: Any, sy: Any, y_label: str) -> list[str]:
    """Grid lines, tick labels and axis titles."""
    parts = []
    for y in y_ticks:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
                     f'<text x="{LEFT - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{_label(y)}</text>')
    for x in x_ticks:
        parts.append(f'<text x="{sx(x):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{int(x)}</text>')
    parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 4}" text-anchor="middle">epoch</text>'
                 f'<text transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    return parts


def _series(name: str, epochs: Sequence[int], values: Sequence[float], colour: str, sx: Any, sy: Any) -> list[str]:
    """One series: a polyline per run of finite values, and a point with a tooltip per value."""
    parts, run = [], []
    for x, y in [*zip(epochs, values), (None, math.nan)]:
        if y is not None and math.isfinite(y):
            run.append(f"{sx(x):.1f},{sy(y):.1f}")
            continue
        if run:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(run)}"/>')
        run = []
    if len(epochs) <= MAX_POINTS:
        for x, y in zip(epochs, values):
            if math.isfinite(y):
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"><title>'
                             f'{escape(name)}, epoch {x}: {y:.6g}</title></circle>')
    return parts


def _legend_entry(n: int, name: str, colour: str) -> str:
    x = LEFT + 115 * (n % 3)
    y = 36 + 14 * (n // 3)
    return (f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{y + 1}" class="legend">{escape(name)}</text>')


def run_charts(history: Sequence[dict[str, Any]], monitor: str, best_epoch: int | None = None) -> list[str]:
    """The learning curves of a run's log: the training and validation loss, the validation metrics (the monitored
    one first) and the learning rate; a chart whose columns the log lacks is left out."""
    epochs = [int(row["epoch"]) for row in history]

    def column(key: str) -> list[float]:
        return [float(row[key]) if isinstance(row.get(key), (int, float)) else math.nan for row in history]

    keys = [k for k in dict.fromkeys([f"val_{monitor}", "val_foreground_dice", "val_mean_iou", "val_pixel_accuracy"])
            if any(k in row for row in history)]
    charts = [("loss", [("training", column("train_loss")), ("validation", column("val_loss"))], "loss"),
              ("validation metrics", [(k.removeprefix("val_").replace("_", " "), column(k)) for k in keys],
               "metric"),
              ("learning rate", [("learning rate", column("lr"))], "learning rate")]
    return [line_chart(title, epochs, series, y_label, best_epoch) for title, series, y_label in charts
            if any(any(math.isfinite(v) for v in values) for _, values in series)]
