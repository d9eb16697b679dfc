"""Confusion-matrix based semantic segmentation metrics.

Conventions
-----------
* Layout: ``cm[i, j]`` is the number of pixels whose *true* class is ``i`` and whose *predicted* class is ``j``
  (rows = target, columns = prediction), dtype int64.
* Pixels whose target equals ``ignore_index`` are not counted. Any other target value outside
  ``[0, num_classes)``, and any prediction value outside it, raises ``ValueError``.
* Per class ``i`` with ``TP = cm[i, i]``, ``T_i`` = row sum (target pixels), ``P_i`` = column sum (predicted
  pixels): ``IoU = TP / (T_i + P_i - TP)``, ``Dice = 2 TP / (T_i + P_i)``, ``precision = TP / P_i``,
  ``recall = class accuracy = TP / T_i``.
* A class absent from both target and prediction has IoU and Dice NaN. A class absent from the target has
  class accuracy (recall) NaN; a class never predicted has precision NaN. (scikit-learn reports 0 with a
  warning in these cases instead.) A class that is predicted but absent from the target has IoU = Dice = 0.
* ``mean_*`` values are NaN-means: classes whose value is NaN are excluded; NaN if no class is defined.
* ``fw_iou = sum_i freq_i * IoU_i`` over the classes with a defined IoU, ``freq_i = T_i / sum_k T_k``.
* ``foreground_iou`` / ``foreground_dice`` are the NaN-means over classes ``1..K-1`` (class 0 = background);
  for a binary problem this is class 1's value; NaN when ``K == 1``.
* A matrix with no pixels gives NaN for every metric.
* All values are plain Python floats (NaN allowed) or lists of them, so the dict from
  :func:`segmentation_metrics` serialises with ``json.dumps(..., allow_nan=True)``.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch

#: the scalar summary metrics of :func:`segmentation_metrics` (higher is better): what a run can monitor and logs
SCALAR_METRICS = ("foreground_dice", "mean_iou", "pixel_accuracy", "mean_class_accuracy", "fw_iou")

__all__ = ["confusion_matrix", "ConfusionMatrix", "segmentation_metrics", "format_metrics_table"]


def _check_labels_dtype(x: np.ndarray | torch.Tensor, name: str) -> None:
    if isinstance(x, torch.Tensor):
        ok = not (x.is_floating_point() or x.is_complex())
    else:
        ok = np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_
    if not ok:
        raise TypeError(f"{name} must be an integer label array, got dtype {x.dtype} "
                        "(for logits/probabilities take the argmax over the class dimension first)")


def _first_bad(flat: np.ndarray | torch.Tensor, num_classes: int, ignore_index: int | None) -> int | None:
    """First value of an int64 1-D array outside [0, num_classes) (ignore_index excepted), or None."""
    bad = (flat < 0) | (flat >= num_classes)
    if ignore_index is not None:
        bad &= flat != ignore_index
    if isinstance(flat, torch.Tensor):
        return int(flat[bad][0].item()) if bool(bad.any().item()) else None
    return int(flat[bad][0]) if bad.any() else None


def _flat_int64(x: np.ndarray | torch.Tensor, device: torch.device | None) -> np.ndarray | torch.Tensor:
    """Flattened int64 copy: numpy if device is None, else a tensor on device."""
    if device is None:
        return np.asarray(x).reshape(-1).astype(np.int64)
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(np.asarray(x).astype(np.int64))
    return x.to(device=device, dtype=torch.int64).reshape(-1)


def confusion_matrix(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, num_classes: int,
                     ignore_index: int | None = None) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = true class, columns = predicted class.

    ``pred`` and ``target`` are integer label arrays of the same shape (any shape), numpy arrays or torch
    tensors (on any device; counting then runs with ``torch.bincount`` on the tensor's device). Pixels whose
    target == ``ignore_index`` are skipped. Values outside ``[0, num_classes)`` (other than ``ignore_index`` in
    target) raise ``ValueError`` naming the value and which array.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    num_classes = int(num_classes)
    pred, target = (x if isinstance(x, torch.Tensor) else np.asarray(x) for x in (pred, target))
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    _check_labels_dtype(pred, "pred")
    _check_labels_dtype(target, "target")

    device = next((x.device for x in (target, pred) if isinstance(x, torch.Tensor)), None)
    p, t = _flat_int64(pred, device), _flat_int64(target, device)

    for flat, name, ign in ((p, "pred", None), (t, "target", ignore_index)):
        value = _first_bad(flat, num_classes, ign)
        if value is not None:
            hint = "" if ign is None else f" and != ignore_index {ign}"
            raise ValueError(f"{name} contains value {value} outside [0, {num_classes}){hint}")

    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    index = t * num_classes + p
    if device is not None:
        counts = torch.bincount(index, minlength=num_classes * num_classes).cpu().numpy()
    else:
        counts = np.bincount(index, minlength=num_classes * num_classes)
    return counts.astype(np.int64).reshape(num_classes, num_classes)


class ConfusionMatrix:
    """Accumulating confusion matrix, e.g. over the batches of a validation epoch.

    ``ConfusionMatrix(num_classes, ignore_index=None, class_names=None)``; ``update(pred, target)`` adds the
    counts of one batch (numpy arrays or torch tensors on any device) and returns that batch's matrix;
    ``matrix`` is a copy of the accumulated int64 counts; ``reset()`` zeroes them; ``compute()`` returns
    :func:`segmentation_metrics` of the accumulated matrix.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None,
                 class_names: Sequence[str] | None = None) -> None:
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self._matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> np.ndarray:
        """Add the counts of (pred, target); returns this update's own confusion matrix."""
        cm = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self._matrix += cm
        return cm

    @property
    def matrix(self) -> np.ndarray:
        """Accumulated (num_classes, num_classes) int64 counts (a copy)."""
        return self._matrix.copy()

    def reset(self) -> None:
        """Zero the accumulated counts."""
        self._matrix[...] = 0

    def compute(self) -> dict:
        """Metrics of the accumulated matrix (see :func:`segmentation_metrics`)."""
        return segmentation_metrics(self._matrix, self.class_names)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


def segmentation_metrics(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict:
    """Metrics from one confusion matrix (rows = true class, columns = predicted class).

    Returns a JSON-serialisable dict with pixel_accuracy, mean_class_accuracy, class_accuracy (list, =
    recall), iou (list), mean_iou, fw_iou, dice (list), mean_dice, precision (list), recall (list),
    foreground_iou, foreground_dice and class_names (the given names, or "0".."K-1"). See the module
    docstring for the NaN conventions.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 1:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {cm.shape}")
    k = cm.shape[0]
    if class_names is not None and len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names given for {k} classes")
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    true_count = cm.sum(axis=1)
    pred_count = cm.sum(axis=0)
    total = cm.sum()

    recall = _ratio(tp, true_count)
    precision = _ratio(tp, pred_count)
    iou = _ratio(tp, true_count + pred_count - tp)
    dice = _ratio(2.0 * tp, true_count + pred_count)
    if total > 0:
        freq = true_count / total
        fw_iou = float(np.nansum(freq * iou))
        pixel_accuracy = float(tp.sum() / total)
    else:
        fw_iou = pixel_accuracy = math.nan

    def floats(x: np.ndarray) -> list[float]:
        return [float(v) for v in x]

    return {
        "pixel_accuracy": pixel_accuracy,
        "mean_class_accuracy": _nanmean(recall),
        "class_accuracy": floats(recall),
        "iou": floats(iou),
        "mean_iou": _nanmean(iou),
        "fw_iou": fw_iou,
        "dice": floats(dice),
        "mean_dice": _nanmean(dice),
        "precision": floats(precision),
        "recall": floats(recall),
        "foreground_iou": _nanmean(iou[1:]),
        "foreground_dice": _nanmean(dice[1:]),
        "class_names": [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(k)],
    }


def _fmt(value: object, digits: int) -> str:
    if value is None:
        return "-"
    value = float(value)
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def format_metrics_table(rows: Mapping[str, Mapping], class_names: Sequence[str] | None = None,
                         digits: int = 4) -> str:
    """Plain-text aligned table of metric dicts (as returned by :func:`segmentation_metrics`).

    One line per entry of ``rows`` in insertion order (per-image names followed by whatever aggregate rows
    the caller adds, e.g. "mean" or "total"); columns pixel_acc, mean_acc, mean_iou, fw_iou and
    ``dice_<class>`` per class. NaN or missing values print as "-". ``class_names`` defaults to the
    ``class_names`` of the first row, else to the class indices.
    """
    if class_names is None:
        first = next(iter(rows.values()), {})
        n = max((len(r.get("dice", [])) for r in rows.values()), default=0)
        class_names = first.get("class_names") or [str(i) for i in range(n)]
    keys = [("pixel_acc", "pixel_accuracy"), ("mean_acc", "mean_class_accuracy"),
            ("mean_iou", "mean_iou"), ("fw_iou", "fw_iou")]
    header = ["name"] + [h for h, _ in keys] + [f"dice_{c}" for c in class_names]
    table = [header]
    for name, row in rows.items():
        dice = list(row.get("dice", []))
        cells = [str(name)] + [_fmt(row.get(key), digits) for _, key in keys]
        cells += [_fmt(dice[i] if i < len(dice) else None, digits) for i in range(len(class_names))]
        table.append(cells)
    widths = [max(len(line[c]) for line in table) for c in range(len(header))]

    def render(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0])] + [s.rjust(w) for s, w in zip(cells[1:], widths[1:])])

    lines = [render(header), "  ".join("=" * w for w in widths)] + [render(c) for c in table[1:]]
    return "\n".join(lines)
