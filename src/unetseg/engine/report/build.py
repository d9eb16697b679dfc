"""The HTML report of a run and an evaluation: gathering the pieces and writing the one self-contained file."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ...fileio import atomic_write_text
from . import sections
from .columns import cell, sort_column, table_columns
from .page import facts_table, per_image_table, render_page
from .pictures import PICTURE_KINDS, PictureSet, ReportImage, picture_set
from .run_info import RunInfo, read_run

log = logging.getLogger("unetseg")

#: the default longest side of the pictures, in pixels
THUMBNAIL = 256


def _pictures(images: Iterable[ReportImage], num_classes: int | None, ignore_index: int | None, size: int
              ) -> tuple[dict[str, PictureSet], bool]:
    """The pictures of every image by name, and whether they have objects."""
    pictures, objects = {}, False
    for item in images:
        pictures[item.name] = picture_set(item, num_classes, ignore_index, size)
        objects = objects or item.pred_objects is not None
    return pictures, objects


def _table_data(metrics: Mapping[str, Any] | None, pictures: Mapping[str, PictureSet], objects: bool
                ) -> tuple[dict[str, Any], list[Any]]:
    """The JSON the page's script reads (see :mod:`.assets`) and the pictures of each row."""
    names = list(dict.fromkeys([*(metrics or {}).get("per_image", {}), *pictures]))
    columns = table_columns(metrics, objects)
    rows = [[cell(metrics, name, c["key"], pictures[name].counts if name in pictures else {}) for c in columns]
            for name in names]
    sort = sort_column(columns)

    def worst_first(i: int) -> tuple[bool, Any, int]:
        value = rows[i][sort]
        return value is None, value if value is not None else 0, i

    gallery = sorted((i for i, name in enumerate(names) if name in pictures), key=worst_first)
    sizes = [[pictures[n].width, pictures[n].height] if n in pictures else None for n in names]
    summary = [sort] + [c for c in range(1, len(columns)) if c != sort][:3]  # the metrics on each image's card
    data = {"columns": columns, "rows": rows, "sort": sort, "gallery": gallery, "sizes": sizes,
            "kinds": list(PICTURE_KINDS), "summary": summary if sort else summary[1:]}
    return data, [pictures[n].uris if n in pictures else None for n in names]


def _summary(run: RunInfo | None, metrics: Mapping[str, Any] | None, count: int) -> list[tuple[str, Any]]:
    """The facts at the top of the page."""
    facts: list[tuple[str, Any]] = []
    if run is not None:
        model = run.config.get("model", {})
        facts += [("run", str(run.run_dir)), ("network", f"{model.get('name', '?')} (depth {model.get('depth')}, "
                                                         f"{model.get('base_channels')} base channels)"),
                  ("epochs", len(run.history))]
        best = run.best_row()
        if best is not None:
            facts.append((f"best validation {run.monitor}", f"{best[f'val_{run.monitor}']:.4f} (epoch "
                                                            f"{best['epoch']})"))
    if metrics:
        dataset = metrics.get("dataset", {})
        key = "foreground_dice" if metrics.get("num_classes") == 2 else "mean_iou"
        facts.append((f"test {key.replace('_', ' ')} (all pixels)", dataset.get(key)))
        if "instances" in metrics:
            facts.append(("test DSB score (AP 0.5:0.95)", metrics["instances"].get("dsb_score")))
        facts.append(("evaluated images", count))
    return facts


def build_html_report(run: RunInfo | None = None, metrics: Mapping[str, Any] | None = None,
                      images: Iterable[ReportImage] = (), ignore_index: int | None = None,
                      thumbnail: int = THUMBNAIL, title: str | None = None) -> str:
    """The report page as HTML text (see :func:`write_html_report`)."""
    classes = (metrics or {}).get("num_classes")
    pictures, objects = _pictures(images, classes, ignore_index, thumbnail)
    data, uris = _table_data(metrics, pictures, objects)
    parts = [("summary", "Summary", facts_table(_summary(run, metrics, len(data["rows"]))))]
    if run is not None:
        parts += [("recipe", "Recipe", sections.recipe(run)), ("curves", "Learning curves", sections.curves(run)),
                  ("validation", "Validation", sections.validation(run))]
    if metrics:
        parts.append(("test", "Test metrics", sections.test_metrics(metrics)))
    if data["rows"]:
        gallery = (sections.legend(objects, classes or 2) + '<div id="gallery"></div>' if pictures else
                   '<p class="note">No pictures: give the images, the predictions and the truth to see them.</p>')
        parts.append(("images", "Per image", per_image_table(data["columns"]) + "<h3>Worst first</h3>" + gallery))
    if run is not None:
        parts.append(("configuration", "Configuration", sections.configuration(run)))
    name = title or (f"unetseg report: {run.name}" if run is not None else "unetseg evaluation report")
    subtitle = f"written {time.strftime('%Y-%m-%d %H:%M')}; {len(data['rows'])} image(s) evaluated"
    return render_page(name, subtitle, parts, data, uris)


def write_html_report(path: str | os.PathLike, run_dir: str | os.PathLike | None = None,
                      metrics: Mapping[str, Any] | None = None, images: Iterable[ReportImage] = (),
                      ignore_index: int | None = None, thumbnail: int = THUMBNAIL, title: str | None = None) -> Path:
    """Write the HTML report, one self-contained file that opens from disk and loads nothing.

    It shows the run (its recipe with the reasons, the learning curves, the validation metrics of the best epoch,
    the prediction settings and the configuration), the test metrics of ``metrics`` (the JSON report of
    ``unetseg evaluate``), a per-image table sortable and filterable by any column, and for each image, worst
    first, the image, the truth, the prediction and an error map (:mod:`.pictures`), as inlined pictures of at
    most ``thumbnail`` pixels that the page sets only when they scroll into view.

    Args:
        path: the HTML file to write (atomically).
        run_dir: the run directory (None: no run sections).
        metrics: the evaluation's report (None: no test metrics; the table then has the pictures' counts only).
        images: the evaluated images (:mod:`.sources`), read one at a time.
        ignore_index: the truth's value for unannotated pixels (any value that is not a class is one too).
        thumbnail: the longest side of each picture, in pixels.
        title: the page's title (default: from the run's name).

    Returns:
        ``path``.

    Raises:
        DataError: the run directory or an image cannot be read.
    """
    run = read_run(run_dir) if run_dir is not None else None
    html = build_html_report(run, metrics, images, ignore_index, thumbnail, title)
    atomic_write_text(path, html)
    log.debug("report written to %s (%.1f MB)", path, len(html.encode("utf-8")) / 1e6)
    return Path(path)
