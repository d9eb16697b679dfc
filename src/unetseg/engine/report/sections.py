"""The sections of the report about the run and the scores: the recipe with its reasons, the learning curves, the
validation and test metrics, and the configuration."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from .curves import run_charts
from .page import table
from .pictures import ERROR_COLOURS
from .run_info import RunInfo

#: the pixel metrics of the summary tables, with their labels
PIXEL_SUMMARY = (("foreground_dice", "Dice (foreground)"), ("foreground_iou", "IoU (foreground)"),
                 ("mean_iou", "mean IoU"), ("mean_dice", "mean Dice"), ("pixel_accuracy", "pixel accuracy"),
                 ("mean_class_accuracy", "mean class accuracy"))
#: the object metrics averaged over images in the summary, with their labels
OBJECT_SUMMARY = (("ap_50", "AP@0.5"), ("ap", "AP 0.5:0.95"), ("f1_50", "F1@0.5"), ("aji", "AJI"),
                  ("hd95", "HD95 (pixels)"))


def recipe(run: RunInfo) -> str:
    """What the default recipe chose for the run, and why (``recipe.yaml``)."""
    if not run.recipe:
        return '<p class="note">This run has no recipe.yaml: every setting was given.</p>'
    rows = [(key, entry.get("value") if isinstance(entry, dict) else entry,
             entry.get("reason", "") if isinstance(entry, dict) else "") for key, entry in run.recipe.items()]
    return table(["setting", "value", "reason"], rows, "recipe")


def curves(run: RunInfo) -> str:
    """The learning curves of ``log.csv`` (inline SVG), the best epoch marked."""
    best = run.best_row()
    charts = run_charts(run.history, run.monitor, best["epoch"] if best else None)
    if not charts:
        return '<p class="note">No epochs logged (log.csv is missing or empty).</p>'
    return f'<div class="charts">{"".join(charts)}</div>'


def validation(run: RunInfo) -> str:
    """The validation metrics of the best epoch and the prediction settings chosen on validation."""
    best = run.best_row()
    parts = []
    if best is not None:
        rows = [(key.removeprefix("val_").replace("_", " "), value) for key, value in best.items()
                if key.startswith("val_") and key not in ("val_seconds", "val_images")]
        parts.append(f"<h3>Validation, best epoch ({best['epoch']} of {len(run.history)}, by "
                     f"{escape(run.monitor)})</h3>" + table(["metric", "value"], rows, "kv", [False, True]))
    if run.prediction:
        shown = {k: v for k, v in run.prediction.items() if k not in ("scores", "instance_rand_errors", "cost")}
        parts.append("<h3>Prediction settings chosen on validation (prediction.yaml)</h3>"
                     + table(["setting", "value"], list(shown.items()), "kv"))
    return "".join(parts)


def test_metrics(metrics: Mapping[str, Any]) -> str:
    """The evaluation's scores: the pixel metrics pooled over the images and averaged per image, each class's,
    and with objects the DSB score, the pooled F1, SEG and the object counts."""
    dataset, mean = metrics.get("dataset", {}), metrics.get("mean_per_image", {})
    rows = [(label, dataset.get(k), mean.get(k)) for k, label in PIXEL_SUMMARY if k in dataset]
    parts = ["<h3>Pixels</h3>" + table(["metric", "all pixels", "mean per image"], rows, "kv", [False, True, True])]
    names = metrics.get("class_names") or dataset.get("class_names") or []
    per_class = [(name, *(_at(dataset.get(k), c) for k in ("iou", "dice", "precision", "recall")))
                 for c, name in enumerate(names)]
    if per_class:
        parts.append("<h3>Classes</h3>" + table(["class", "IoU", "Dice", "precision", "recall"], per_class, "kv",
                                                [False, True, True, True, True]))
    objects = metrics.get("instances")
    if objects:
        totals = objects.get("totals", {})
        rows = [("DSB score (mean over images of AP 0.5:0.95)", objects.get("dsb_score")),
                ("F1@0.5 pooled over the images", objects.get("dataset_f1_50")),
                ("SEG (mean Jaccard of all true objects)", objects.get("seg"))]
        rows += [(f"{label}, mean per image", objects.get("mean_per_image", {}).get(k)) for k, label in OBJECT_SUMMARY]
        rows += [("objects: true / predicted / TP / FP / FN at IoU 0.5", " / ".join(
            str(totals.get(k, "\u2013")) for k in ("n_true", "n_pred", "tp_50", "fp_50", "fn_50")))]
        parts.append(f"<h3>Objects (truth: {escape(str(objects.get('truth_source', '')))})</h3>"
                     + table(["metric", "value"], rows, "kv", [False, True]))
    return "".join(parts)


def _at(values: Any, index: int) -> Any:
    """``values[index]`` of a list, else None."""
    return values[index] if isinstance(values, list) and index < len(values) else None


def configuration(run: RunInfo) -> str:
    """The run's resolved configuration (``config.yaml``), a table per section."""
    if not run.config:
        return '<p class="note">This run has no config.yaml.</p>'
    tables = [f"<div><h3>{escape(str(name))}</h3>" + table(["key", "value"], list(values.items()), "kv") + "</div>"
              for name, values in run.config.items() if isinstance(values, dict)]
    return f'<div class="columns">{"".join(tables)}</div>'


def legend(objects: bool, classes: int) -> str:
    """The colours of the error maps."""
    shown = [k for k in ERROR_COLOURS if (k != "wrong class" or classes > 2)
             and (objects or k not in ("merged object", "split object"))]
    items = "".join(f'<span><span class="swatch" style="background: rgb{ERROR_COLOURS[k]}"></span>{escape(k)}</span>'
                    for k in shown)
    return f'<div class="legend-row"><strong>error map:</strong>{items}</div>'
