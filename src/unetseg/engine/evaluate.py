"""``unetseg evaluate``: metrics per image and over a dataset, from label folders or from a checkpoint.

With ``instances=True`` the report also gets ``report["instances"]``: per image the object metrics of
:func:`unetseg.metrics.instance_metrics` (AP@0.5, DSB AP over 0.5:0.95, F1@0.5, AJI, the Cell Tracking Challenge
SEG measure, counts), the adapted Rand error and the variation of information of the two instance labelings (true
background ignored, as in :mod:`unetseg.metrics.regions`), and the Hausdorff distance / HD95 between the predicted
and true foreground (all classes != 0). Predicted instances: ``<stem>_instances.*`` beside the label image when
there is one (as ``unetseg predict --instances`` writes it); else, with ``num_classes == 2``, a prediction stored
with more than 8 bits (uint16 PNG, TIFF) and holding two or more distinct non-zero values is an instance label
image; any other prediction is a class mask whose foreground is split into 4-connected components. True
instances: the label images of ``truth_instances`` (paired by stem, used as they are), else those of the truth's
layout (e.g. the ctc layout's gold objects), else the 4-connected components of the true masks' foreground.

Not annotated pixels (truth equal to the ignore value): left out of the pixel metrics and of both foregrounds of
the Hausdorff distance; a predicted object lying mostly (more than half of its pixels) on them is left out of the
object metrics, so a prediction is not penalised for the cells a partial annotation leaves out. SEG counts only
the true objects, so unannotated cells never enter it; ``report["instances"]["seg"]`` is the challenge's score
of a dataset, the mean over all true objects of all images.

The truth may be a dataset of another layout than a folder of masks: a Cell Tracking Challenge dataset, sequence
(``DATA/02``: its gold truth) or truth folder (``DATA/02_GT`` gold, ``DATA/02_ST`` silver); its samples pair with
the predictions by the image's file stem (``t023``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import SegmentationData
from ..data.io import DataError, files_by_stem, read_image
from ..data.layouts import LAYOUTS, detect_layout, load_dataset, load_folder
from ..data.masks import default_class_names, detect_num_classes, mask_to_labels, mask_values, single_channel
from ..fileio import atomic_write_text
from ..inference.predictor import Predictor
from ..metrics.instances import drop_ignored_objects
from ..metrics import (
    as_instances,
    confusion_matrix,
    format_metrics_table,
    hausdorff_distance,
    instance_metrics,
    rand_error,
    rand_index_error,
    segmentation_metrics,
    variation_of_information,
)

log = logging.getLogger("unetseg")

SCALARS = ("pixel_accuracy", "mean_class_accuracy", "mean_iou", "fw_iou", "mean_dice", "foreground_dice",
           "foreground_iou")
INSTANCE_SCALARS = ("ap_50", "ap", "f1_50", "precision_50", "recall_50", "aji", "seg", "mean_matched_iou_50",
                    "rand_error",
                    "rand_index_error",
                    "vi", "vi_split", "vi_merge", "hausdorff", "hd95")
INSTANCE_COUNTS = ("n_true", "n_pred", "tp_50", "fp_50", "fn_50")
#: the other outputs of ``unetseg predict`` beside ``<stem>.png``: not label images
PREDICTION_SUFFIXES = ("_overlay", "_instances", "_prob")


def build_report(pairs: Iterable[tuple[str, np.ndarray, np.ndarray]], num_classes: int,
                 class_names: list[str] | None = None, ignore_index: int | None = None) -> dict[str, Any]:
    """Metrics for (name, predicted labels, true labels) triples; true pixels equal to ``ignore_index`` are not
    counted.

    Returns:
        ``{"num_classes", "class_names", "per_image": {name: metrics}, "dataset": metrics of the summed
        confusion matrix, "mean_per_image": NaN-mean over images of each scalar metric}``.
    """
    names = class_names or default_class_names(num_classes)
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    per_image = {}
    for name, pred, truth in pairs:
        if pred.shape != truth.shape:
            raise DataError(f"{name}: prediction is {pred.shape[1]}x{pred.shape[0]}, truth {truth.shape[1]}x"
                            f"{truth.shape[0]} (width x height); expected the same size")
        cm = confusion_matrix(pred, truth, num_classes, ignore_index=ignore_index)
        total += cm
        per_image[name] = segmentation_metrics(cm, names)
    if not per_image:
        raise DataError("nothing to evaluate: no image pairs")
    mean: dict[str, Any] = {k: _nanmean([m[k] for m in per_image.values()]) for k in SCALARS}
    mean["dice"] = [_nanmean([m["dice"][c] for m in per_image.values()]) for c in range(num_classes)]
    return {"num_classes": num_classes, "class_names": names, "per_image": per_image,
            "dataset": segmentation_metrics(total, names), "mean_per_image": mean}


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def instance_row(pred_inst: np.ndarray, true_inst: np.ndarray, pred_cls: np.ndarray, true_cls: np.ndarray
                 ) -> dict[str, Any]:
    """Instance, region and foreground-boundary metrics of one image (keys: see the module docstring)."""
    row = instance_metrics(pred_inst, true_inst)
    rand = rand_error(pred_inst, true_inst)
    row.update(rand_error=rand["rand_error"], rand_index_error=rand_index_error(pred_inst, true_inst),
               rand_split_score=rand["rand_split_score"],
               rand_merge_score=rand["rand_merge_score"], **variation_of_information(pred_inst, true_inst))
    row.update(hausdorff=hausdorff_distance(pred_cls != 0, true_cls != 0),
               hd95=hausdorff_distance(pred_cls != 0, true_cls != 0, percentile=95))
    return row


def build_instance_report(items: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                          truth_source: str) -> dict[str, Any]:
    """``{"truth_source", "per_image", "mean_per_image", "totals", "dataset_f1_50", "dsb_score",
    "dsb_ap_per_threshold", "seg", "hausdorff_infinite_images"}`` for (name, pred instances, true instances, pred
    classes, true classes) items.

    ``mean_per_image`` averages each scalar over the images where it is finite (an empty mask on one side
    gives an infinite Hausdorff distance, counted in ``hausdorff_infinite_images``); ``dsb_score`` is the mean
    over all images of the per-image AP over 0.5:0.95, as the 2018 Data Science Bowl ranked submissions; ``seg``
    the Cell Tracking Challenge SEG of the dataset: the mean Jaccard index over all true objects of all images.
    """
    per_image: dict[str, dict[str, Any]] = {}
    for name, pred_inst, true_inst, pred_cls, true_cls in items:
        if pred_inst.shape != true_inst.shape:
            raise DataError(f"{name}: predicted instances are {pred_inst.shape[1]}x{pred_inst.shape[0]}, true "
                            f"instances {true_inst.shape[1]}x{true_inst.shape[0]} (width x height)")
        per_image[name] = instance_row(pred_inst, true_inst, pred_cls, true_cls)
    rows = list(per_image.values())
    totals = {k: int(sum(r[k] for r in rows)) for k in INSTANCE_COUNTS}
    found = 2 * totals["tp_50"] + totals["fp_50"] + totals["fn_50"]
    seg = sum(r["seg_jaccard_sum"] for r in rows) / totals["n_true"] if totals["n_true"] else math.nan
    return {"truth_source": truth_source, "per_image": per_image, "seg": seg,
            "mean_per_image": {k: _nanmean([r[k] for r in rows]) for k in INSTANCE_SCALARS},
            "totals": totals, "dataset_f1_50": 2 * totals["tp_50"] / found if found else math.nan,
            "dsb_score": float(np.mean([r["ap"] for r in rows])) if rows else math.nan,
            "dsb_ap_per_threshold": np.mean([r["ap_per_threshold"] for r in rows], axis=0).tolist() if rows else [],
            "hausdorff_infinite_images": sum(not math.isfinite(r["hausdorff"]) for r in rows)}


def read_prediction(raw: np.ndarray, num_classes: int, path: Path, instances: bool,
                    objects: Path | None = None) -> tuple[np.ndarray, Any]:
    """(class labels, instance labels or None) of a prediction file and its ``<stem>_instances`` file ``objects``
    (rules in the module docstring); ``raw``: the prediction file ``path`` as read."""
    if instances and objects is not None:
        labels = single_channel(read_image(objects), objects)
        if labels.dtype.kind not in "iub" or (labels.size and labels.min() < 0):
            raise DataError(f"{objects}: expected non-negative integer instance labels, got dtype {labels.dtype}")
        return mask_to_labels(raw, num_classes, path), labels
    if instances and num_classes == 2 and raw.dtype.kind in "iu" and raw.dtype.itemsize > 1:
        labels = single_channel(raw, path)
        if np.unique(labels[labels != 0]).size > 1:
            if labels.min() < 0:
                raise DataError(f"{path}: negative instance label {int(labels.min())}")
            return (labels != 0).astype(np.uint8), labels
    return mask_to_labels(raw, num_classes, path), None


def _true_objects(name: str, true_cls: np.ndarray, files: dict[str, Path] | None, folder: Any,
                  known: dict[str, np.ndarray] | None, ignored: np.ndarray) -> np.ndarray:
    """The true instance labels of one image: from ``files`` (a folder by stem), ``known`` (the truth layout's),
    or the connected components of the true foreground (ignored pixels left out)."""
    if files is None:
        return known[name] if known is not None else (true_cls != 0) & ~ignored  # bool: connected components
    if name not in files:
        raise DataError(f"{folder}: no instance label image for {name!r}")
    true_inst = single_channel(read_image(files[name]), files[name])
    if true_inst.dtype.kind not in "iub" or (true_inst.size and true_inst.min() < 0):
        raise DataError(f"{files[name]}: expected non-negative integer instance labels, got dtype {true_inst.dtype}")
    return true_inst


def image_objects(name: str, pred_cls: np.ndarray, true_cls: np.ndarray, pred_inst: np.ndarray | None,
                  files: dict[str, Path] | None = None, truth_instances: str | os.PathLike | None = None,
                  ignore_index: int | None = None, known: dict[str, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) int64 instance labels of one image, as the instance metrics score them.

    Args:
        name: the image's name (its stem in ``files``, its key in ``known``).
        pred_cls, true_cls: predicted and true class indices.
        pred_inst: the predicted instance labels, or None for the connected components of the predicted foreground;
            objects lying mostly on pixels the truth leaves unannotated are dropped.
        files: true instance label images by stem (the folder ``truth_instances``), else ``known``, else the
            connected components of the true foreground.
        ignore_index: the truth's value for unannotated pixels.

    Raises:
        DataError: ``files`` has no image for ``name``, or it is not a non-negative integer label image.
    """
    ignored = true_cls == ignore_index if ignore_index is not None else np.zeros(true_cls.shape, bool)
    true_inst = _true_objects(name, true_cls, files, truth_instances, known, ignored)
    pred_inst = drop_ignored_objects(as_instances(pred_cls != 0 if pred_inst is None else pred_inst), ignored)
    return pred_inst, as_instances(true_inst)


def _instance_section(named: Iterable[tuple[str, np.ndarray, np.ndarray, Any]],
                      truth_instances: str | os.PathLike | None, ignore_index: int | None = None,
                      known: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Instance report of (name, pred classes, true classes, pred instances or None) tuples; ``known``: the true
    instances of the truth's layout by name (used without ``truth_instances``)."""
    files = None if truth_instances is None else files_by_stem(Path(truth_instances))
    items = []
    for name, pred_cls, true_cls, pred_inst in named:
        ignored = true_cls == ignore_index if ignore_index is not None else np.zeros(true_cls.shape, bool)
        pred_inst, true_inst = image_objects(name, pred_cls, true_cls, pred_inst, files, truth_instances,
                                             ignore_index, known)
        items.append((name, pred_inst, true_inst, (pred_cls != 0) & ~ignored, (true_cls != 0) & ~ignored))
    source = (str(truth_instances) if files is not None else "the truth's objects" if known is not None
              else "connected components of the masks")
    return build_instance_report(items, source)


def prediction_files(pred: str | os.PathLike) -> tuple[dict[str, Path], dict[str, Path]]:
    """(the label images of a prediction folder by stem, its ``<stem>_instances.*`` images by ``<stem>``); the
    other outputs of ``unetseg predict`` (overlays, probabilities) are left out."""
    files = files_by_stem(Path(pred))
    labels = {s: p for s, p in files.items() if not s.endswith(PREDICTION_SUFFIXES)}
    return labels, {s[: -len("_instances")]: p for s, p in files.items() if s.endswith("_instances")}


def truth_dataset(truth: str | os.PathLike, num_classes: int | None = None,
                  ignore_index: int | None = None) -> SegmentationData | None:
    """The truth as a dataset when ``truth`` is a dataset of a layout other than a folder of masks (e.g. a Cell
    Tracking Challenge sequence, read with its gold truth); None for a folder of masks or a DATA folder with
    ``masks/``."""
    truth = Path(truth)
    if not truth.is_dir() or (truth / "masks").is_dir():
        return None
    try:
        layout = detect_layout(truth)
    except DataError:
        return None
    if layout == "folder":
        return None
    has_instances = bool(LAYOUTS.get(layout).info.get("instances", False))
    return load_dataset(truth, layout, num_classes, instances=has_instances, ignore_index=ignore_index,
                        training=False)


def _evaluate_dataset(pred: str | os.PathLike, dataset: SegmentationData, class_names: list[str] | None,
                      instances: bool, truth_instances: str | os.PathLike | None,
                      ignore_index: int | None) -> dict[str, Any]:
    """:func:`evaluate_folders` against a truth dataset (:func:`truth_dataset`): predictions paired with its samples
    by the image's file stem."""
    labels, objects = prediction_files(pred)
    samples = {}
    for s in dataset.samples:
        stem = s.image_path.stem
        if stem in samples:
            raise DataError(f"{dataset.root}: {samples[stem].name} and {s.name} share the file stem {stem!r}, so "
                            "predictions cannot be paired with them: give one sequence as the truth (e.g. "
                            f"{dataset.root / s.name.split('/')[0]})")
        samples[stem] = s
    missing = sorted(set(samples) - set(labels))
    if missing:
        raise DataError(f"{pred}: no prediction for {len(missing)} image(s) of {dataset.root}, e.g. "
                        f"{samples[missing[0]].image_path} (expected {missing[0]}.png)")
    ignore = ignore_index if ignore_index is not None else dataset.ignore_index
    named = [(samples[stem].name, *read_prediction(read_image(labels[stem]), dataset.num_classes, labels[stem],
                                                  instances, objects.get(stem)), samples[stem].labels)
             for stem in sorted(samples)]
    report = build_report(((n, p, t) for n, p, _, t in named), dataset.num_classes, class_names, ignore)
    if instances:
        known = ({s.name: s.instances for s in dataset.samples}
                 if all(s.instances is not None for s in dataset.samples) else None)
        report["instances"] = _instance_section(((n, p, t, pi) for n, p, pi, t in named), truth_instances,
                                                ignore, known)
    return report


def evaluate_folders(pred: str | os.PathLike, truth: str | os.PathLike, num_classes: int | None = None,
                     class_names: list[str] | None = None, instances: bool = False,
                     truth_instances: str | os.PathLike | None = None, ignore_index: int | None = None
                     ) -> dict[str, Any]:
    """Compare the label images in ``pred`` with the masks in ``truth`` (or ``truth/masks``), paired by stem.

    Predictions may be 0/255 (binary) or class indices; ``*_overlay`` and ``*_prob`` files are skipped, and
    ``<stem>_instances.*`` files are the predicted objects. ``instances=True`` (implied by ``truth_instances``, a
    folder of instance label images) adds ``report["instances"]``; then a binary prediction may also be an instance
    label image (see the module docstring). Truth pixels equal to ``ignore_index`` (e.g. 255 = not annotated) are
    left out of the pixel metrics. ``truth`` may also be a dataset of another layout (a Cell Tracking Challenge
    sequence: see the module docstring).

    Raises:
        DataError: a truth mask without a prediction, unreadable files, size mismatches or out-of-range values.
    """
    instances = instances or truth_instances is not None
    dataset = truth_dataset(truth, num_classes, ignore_index)
    if dataset is not None:
        return _evaluate_dataset(pred, dataset, class_names, instances, truth_instances, ignore_index)
    truth_dir = Path(truth) / "masks" if (Path(truth) / "masks").is_dir() else Path(truth)
    preds, objects = prediction_files(pred)
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
        num_classes = detect_num_classes({str(truths[s]): mask_values(t, truths[s]) for s, (_, t) in raw.items()},
                                         ignore_index)
    named = [(s, *read_prediction(p, num_classes, preds[s], instances, objects.get(s)),
              mask_to_labels(t, num_classes, truths[s], ignore_index)) for s, (p, t) in raw.items()]
    report = build_report(((s, p, t) for s, p, _, t in named), num_classes, class_names, ignore_index)
    if instances:
        report["instances"] = _instance_section(((s, p, t, pi) for s, p, pi, t in named), truth_instances,
                                                ignore_index)
    return report


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str | os.PathLike, device: str = "auto",
                        instances: bool = False, truth_instances: str | os.PathLike | None = None,
                        ignore_index: int | None = None, kept: list[tuple[Any, ...]] | None = None
                        ) -> dict[str, Any]:
    """Predict every image of the dataset ``data`` with ``checkpoint`` and score it.

    ``data``: a folder dataset (images/ + masks/), or a dataset of another layout (detected; e.g. a Cell Tracking
    Challenge dataset, sequence or truth folder, scored on its gold truth, or silver for ``NN_ST``; its ignore value
    applies). ``instances=True`` (implied by ``truth_instances``) adds ``report["instances"]``, the predicted objects
    being those ``unetseg predict --instances`` writes (the instance method the run chose on its validation images,
    e.g. a watershed; connected components for a checkpoint without one) and the true ones those of
    ``truth_instances``, else the layout's, else the connected components of the masks. ``kept``: a list that gets
    ``(name, image, predicted classes, true classes, true instances of the layout or None)`` of every image (for the
    HTML report).
    """
    predictor = Predictor.from_checkpoint(checkpoint, device=device)
    dataset = truth_dataset(data, predictor.num_classes, ignore_index)
    if dataset is None:
        dataset = load_folder(data, predictor.num_classes, ignore_index=ignore_index)
    ignore = ignore_index if ignore_index is not None else dataset.ignore_index
    scored = instances or truth_instances is not None
    named, objects = [], []
    for s in dataset.samples:
        probs = predictor.predict_proba(s.image, s.image_path)
        pred = predictor.labels(probs)
        named.append((s.name, pred, s.labels))
        objects.append(predictor.objects(probs, pred) if scored else None)
    if kept is not None:
        kept += [(s.name, s.image, pred, s.labels, s.instances) for s, (_, pred, _) in zip(dataset.samples, named)]
    report = build_report(named, predictor.num_classes, predictor.class_names, ignore)
    if scored:
        known = ({s.name: s.instances for s in dataset.samples}
                 if all(s.instances is not None for s in dataset.samples) else None)
        report["instances"] = _instance_section(((n, p, t, o) for (n, p, t), o in zip(named, objects)),
                                                truth_instances, ignore, known)
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as text: the semantic table (one row per image, then the dataset and per-image-mean rows),
    and with instance metrics a second table (AP@0.5, AP 0.5:0.95, F1@0.5, AJI, SEG, HD95, counts), the DSB score
    and the Cell Tracking Challenge SEG pooled over all true objects."""
    rows = dict(report["per_image"])
    rows["[dataset]"] = report["dataset"]
    rows["[mean per image]"] = report["mean_per_image"]
    text = format_metrics_table(rows, report["class_names"])
    inst = report.get("instances")
    if inst:
        rows = dict(inst["per_image"])
        rows["[mean per image]"] = inst["mean_per_image"]
        rows["[total]"] = inst["totals"]
        text += "\n\ninstances (truth: " + inst["truth_source"] + ")\n" + _instance_table(rows)
        text += (f"\nDSB score (mean over images of AP 0.5:0.95): {inst['dsb_score']:.4f}; pooled F1@0.5: "
                 f"{inst['dataset_f1_50']:.4f}; SEG (Cell Tracking Challenge, mean Jaccard over the "
                 f"{inst['totals']['n_true']} true objects): {inst['seg']:.4f}")
    return text


def _instance_table(rows: dict[str, dict[str, Any]]) -> str:
    columns = [("ap_50", "ap_50"), ("ap", "ap_50:95"), ("f1_50", "f1_50"), ("aji", "aji"), ("seg", "seg"),
               ("hd95", "hd95"), ("n_true", "n_true"), ("n_pred", "n_pred")]
    table = [["name"] + [h for _, h in columns]]
    for name, row in rows.items():
        cells = []
        for key, _ in columns:
            value = row.get(key, math.nan)
            cells.append(str(value) if isinstance(value, int) else "-" if math.isnan(value) else f"{value:.4f}")
        table.append([str(name)] + cells)
    widths = [max(len(line[c]) for line in table) for c in range(len(table[0]))]
    lines = ["  ".join([r[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]) for r in table]
    return "\n".join(lines[:1] + ["  ".join("=" * w for w in widths)] + lines[1:])


def write_report(report: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the report as JSON (NaN and infinities written as null), atomically."""
    atomic_write_text(path, json.dumps(_nan_to_none(report), indent=2) + "\n")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
