"""The per-image table of the report: which metrics are its columns, and one row of values per image, from the
JSON report of ``unetseg evaluate`` (and the merged/split counts of the pictures)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: (key, label, help) of the pixel metrics shown per image (those the report has)
PIXEL_COLUMNS = (
    ("foreground_dice", "Dice (fg)", "Dice of the foreground (all classes but the background)"),
    ("foreground_iou", "IoU (fg)", "IoU (Jaccard) of the foreground"),
    ("mean_iou", "mean IoU", "IoU averaged over the classes"),
    ("mean_dice", "mean Dice", "Dice averaged over the classes"),
    ("pixel_accuracy", "pixel acc.", "share of pixels of the right class"),
)
#: (key, label, help) of the object metrics shown per image, when the evaluation scored objects
OBJECT_COLUMNS = (
    ("ap", "AP 0.5:0.95", "average precision over IoU thresholds 0.5 to 0.95 (the DSB 2018 score of the image)"),
    ("ap_50", "AP@0.5", "TP / (TP + FP + FN) at IoU 0.5"),
    ("f1_50", "F1@0.5", "object F1 at IoU 0.5"),
    ("aji", "AJI", "aggregated Jaccard index"),
    ("seg", "SEG", "the Cell Tracking Challenge SEG: mean Jaccard of the true objects"),
    ("hd95", "HD95", "95th percentile Hausdorff distance of the foregrounds, pixels (lower is better)"),
    ("n_true", "true", "true objects"),
    ("n_pred", "pred.", "predicted objects"),
    ("fp_50", "FP", "predicted objects without a match at IoU 0.5"),
    ("fn_50", "FN", "true objects without a match at IoU 0.5"),
    ("merged", "merged", "predicted objects covering more than half of two or more true objects"),
    ("split", "split", "true objects with two or more predicted objects mostly inside"),
)
#: classes up to which each class's IoU gets a column
MAX_CLASS_COLUMNS = 12


def _column(key: str, label: str, title: str, kind: str = "number") -> dict[str, Any]:
    return {"key": key, "label": label, "title": title, "kind": kind}


def table_columns(metrics: Mapping[str, Any] | None, objects: bool) -> list[dict[str, Any]]:
    """The columns of the per-image table: the name, the pixel metrics the report has (foreground Dice and IoU
    for two classes, the means otherwise, with each foreground class's IoU up to :data:`MAX_CLASS_COLUMNS`
    classes), the object metrics when the report scored objects, and the merged and split counts when the
    pictures have objects (``objects``)."""
    columns = [_column("name", "image", "the image's name", "text")]
    if metrics:
        binary = metrics.get("num_classes") == 2
        wanted = ("foreground_dice", "foreground_iou", "pixel_accuracy") if binary else (
            "mean_iou", "mean_dice", "pixel_accuracy")
        columns += [_column(k, label, title) for k, label, title in PIXEL_COLUMNS if k in wanted]
        names = metrics.get("class_names") or []
        if not binary and len(names) <= MAX_CLASS_COLUMNS:
            columns += [_column(f"iou/{c}", f"IoU {name}", f"IoU of the class {name}")
                        for c, name in enumerate(names) if c > 0]
    scored = bool(metrics and "instances" in metrics)
    counts = {"n_true", "n_pred", "fp_50", "fn_50", "merged", "split"}
    for key, label, title in OBJECT_COLUMNS:
        if (objects if key in ("merged", "split") else scored):
            columns.append(_column(key, label, title, "int" if key in counts else "number"))
    return columns


def _number(value: Any) -> float | int | None:
    """A JSON-safe number: None for a missing, NaN or infinite value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def cell(metrics: Mapping[str, Any] | None, name: str, key: str, counts: Mapping[str, int]) -> Any:
    """The value of column ``key`` for image ``name`` (None when the report does not have it)."""
    if key == "name":
        return name
    if key in counts:
        return counts[key]
    if not metrics:
        return None
    if key.startswith("iou/"):
        values = metrics.get("per_image", {}).get(name, {}).get("iou") or []
        c = int(key.split("/", 1)[1])
        return _number(values[c]) if c < len(values) else None
    if any(key == k for k, _, _ in OBJECT_COLUMNS):
        return _number(metrics.get("instances", {}).get("per_image", {}).get(name, {}).get(key))
    return _number(metrics.get("per_image", {}).get(name, {}).get(key))


def sort_column(columns: Sequence[Mapping[str, Any]]) -> int:
    """The column the gallery and, at first, the table are sorted by (worst first: ascending): AP 0.5:0.95 when
    objects were scored, else the foreground Dice, else the mean IoU, else the name."""
    keys = [c["key"] for c in columns]
    return next((keys.index(k) for k in ("ap", "foreground_dice", "mean_iou") if k in keys), 0)
