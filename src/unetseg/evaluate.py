"""``unetseg evaluate``: metrics per image and over a dataset, from label folders or from a checkpoint."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .data.folder import files_by_stem, load_folder
from .data.io import DataError, read_image
from .data.masks import detect_num_classes, mask_to_labels, mask_values
from .fileio import atomic_write_text
from .inference.predictor import Predictor
from .metrics import confusion_matrix, format_metrics_table, segmentation_metrics

log = logging.getLogger("unetseg")

SCALARS = ("pixel_accuracy", "mean_class_accuracy", "mean_iou", "fw_iou", "mean_dice", "foreground_dice",
           "foreground_iou")


def build_report(pairs: Iterable[tuple[str, np.ndarray, np.ndarray]], num_classes: int,
                 class_names: list[str] | None = None) -> dict[str, Any]:
    """Metrics for (name, predicted labels, true labels) triples.

    Returns:
        ``{"num_classes", "class_names", "per_image": {name: metrics}, "dataset": metrics of the summed
        confusion matrix, "mean_per_image": NaN-mean over images of each scalar metric}``.
    """
    names = class_names or (["background", "foreground"] if num_classes == 2 else
                            [f"class{i}" for i in range(num_classes)])
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    per_image = {}
    for name, pred, truth in pairs:
        if pred.shape != truth.shape:
            raise DataError(f"{name}: prediction is {pred.shape[1]}x{pred.shape[0]}, truth {truth.shape[1]}x"
                            f"{truth.shape[0]} (width x height); expected the same size")
        cm = confusion_matrix(pred, truth, num_classes)
        total += cm
        per_image[name] = segmentation_metrics(cm, names)
    if not per_image:
        raise DataError("nothing to evaluate: no image pairs")
    mean: dict[str, Any] = {k: _nanmean([m[k] for m in per_image.values()]) for k in SCALARS}
    mean["dice"] = [_nanmean([m["dice"][c] for m in per_image.values()]) for c in range(num_classes)]
    return {"num_classes": num_classes, "class_names": names, "per_image": per_image,
            "dataset": segmentation_metrics(total, names), "mean_per_image": mean}


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def evaluate_folders(pred: str | os.PathLike, truth: str | os.PathLike, num_classes: int | None = None,
                     class_names: list[str] | None = None) -> dict[str, Any]:
    """Compare the label images in ``pred`` with the masks in ``truth`` (or ``truth/masks``), paired by stem.

    Predictions may be 0/255 (binary) or class indices; ``*_overlay`` files are skipped.

    Raises:
        DataError: a truth mask without a prediction, unreadable files, size mismatches or out-of-range values.
    """
    truth_dir = Path(truth) / "masks" if (Path(truth) / "masks").is_dir() else Path(truth)
    preds = {s: p for s, p in files_by_stem(Path(pred)).items() if not s.endswith("_overlay")}
    truths = files_by_stem(truth_dir)
    if not truths:
        raise DataError(f"{truth_dir}: no mask files")
    missing = sorted(set(truths) - set(preds))
    if missing:
        raise DataError(f"{pred}: no prediction for {len(missing)} mask(s) of {truth_dir}, e.g. {truths[missing[0]]}")
    extra = sorted(set(preds) - set(truths))
    if extra:
        log.info("ignoring %d prediction(s) without a mask in %s, e.g. %s", len(extra), truth_dir, extra[0])
    raw = {s: (read_image(preds[s]), read_image(truths[s])) for s in sorted(truths)}
    if num_classes is None:
        num_classes = detect_num_classes({str(truths[s]): mask_values(t, truths[s]) for s, (_, t) in raw.items()})
    pairs = ((s, mask_to_labels(p, num_classes, preds[s]), mask_to_labels(t, num_classes, truths[s]))
             for s, (p, t) in raw.items())
    return build_report(pairs, num_classes, class_names)


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str | os.PathLike, device: str = "auto"
                        ) -> dict[str, Any]:
    """Predict every image of the folder dataset ``data`` (images/ + masks/) with ``checkpoint`` and score it."""
    predictor = Predictor.from_checkpoint(checkpoint, device=device)
    dataset = load_folder(data, predictor.num_classes)
    pairs = ((s.name, predictor.predict(s.image, s.image_path), s.labels) for s in dataset.samples)
    return build_report(pairs, predictor.num_classes, predictor.class_names)


def format_report(report: dict[str, Any]) -> str:
    """The report as a text table: one row per image, then the dataset and per-image-mean rows."""
    rows = dict(report["per_image"])
    rows["[dataset]"] = report["dataset"]
    rows["[mean per image]"] = report["mean_per_image"]
    return format_metrics_table(rows, report["class_names"])


def write_report(report: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the report as JSON (NaN written as null), atomically."""
    atomic_write_text(path, json.dumps(_nan_to_none(report), indent=2) + "\n")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
