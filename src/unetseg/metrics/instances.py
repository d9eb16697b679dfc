"""Instance (object) metrics for nuclei and cells: IoU matching, DSB 2018 average precision, F1, AJI and the Cell
Tracking Challenge SEG measure.

Inputs are label images of the same shape (0 = background, 1.. = one id per object; ids need not be
consecutive) or boolean masks, which are split into connected components first (:func:`as_instances`).
Every metric is invariant to renumbering the objects.

Conventions
-----------
* IoU of true object ``i`` and predicted object ``j`` = ``|i & j| / |i | j|``, all pairs at once from the
  joint histogram of the two labelings (one ``bincount`` over the pixels).
* A match needs IoU strictly *above* the threshold (the DSB wording "IoU above the threshold"). For a
  threshold >= 0.5 matches are unique without any assignment: IoU(i, j) > 0.5 means ``|i & j| > |i | j| / 2
  >= |j| / 2``, i.e. ``i`` covers more than half of ``j``; the true objects are disjoint, so no second true
  object can, and symmetrically for ``i``. Below 0.5 one object can pass the threshold with several others, so
  the matching is an optimal assignment (:func:`scipy.optimize.linear_sum_assignment`) that maximises the number
  of matches first and the summed IoU of the matches second.
* DSB 2018 score of one image at threshold t: ``TP / (TP + FP + FN)``; the image's score is the mean over
  t = 0.5, 0.55, ..., 0.95, and the competition score is the mean of the image scores. The competition text
  does not define an image with no true and no predicted object (0 / 0); here it scores ``empty`` (default
  1.0: nothing to find and nothing claimed). The same holds for F1 and AJI. An image with objects on one side
  only scores 0.
* ``precision = TP / n_pred`` (NaN without predictions), ``recall = TP / n_true`` (NaN without true objects),
  ``f1 = 2 TP / (n_true + n_pred)``; ``mean_matched_iou`` is NaN without matches.
* AJI (Kumar et al. 2017): each true object takes the predicted object of largest IoU (lowest id on ties); AJI
  = sum of their intersections / (sum of their unions + areas of the predicted objects taken by none). A true
  object that no prediction overlaps adds its own area to the denominator and takes nothing.
* SEG (Cell Tracking Challenge; Ulman et al. 2017, Maska et al. 2023): a reference object R and a predicted object
  S match when ``|R & S| > |R| / 2`` (S covers more than half of R; at most one S can, as predictions are
  disjoint); R scores the Jaccard index ``|R & S| / |R | S|`` of its match, 0 without one, and SEG is the mean over
  the reference objects. Only reference objects count: predicted objects where the reference has none (an
  unannotated cell of a partial annotation) change nothing. The challenge's score of a dataset is the mean over
  *all* reference objects of all frames (:func:`seg_score` returns the sum and the count for pooling); an image
  without reference objects has no SEG (NaN).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from .regions import label_regions

__all__ = ["DSB_THRESHOLDS", "aggregated_jaccard_index", "as_instances", "average_precision", "f1_at",
           "instance_iou_matrix", "instance_metrics", "match_instances", "seg_score"]

DSB_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5, 0.55, ..., 0.95


def as_instances(x: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """int64 instance labels: a bool mask is split into connected components, an integer array is kept as is."""
    x = np.asarray(x)
    if x.dtype == np.bool_:
        return label_regions(x.astype(np.uint8), foreground=1, connectivity=connectivity).astype(np.int64)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"instance labels must be integer (or a bool mask), got dtype {x.dtype}")
    if x.size and x.min() < 0:
        raise ValueError(f"instance labels must be >= 0, got {int(x.min())}")
    return x.astype(np.int64, copy=False)


def _compact(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids 0, a, b, ... with 0 always first, index of each pixel's id in that list)."""
    top = int(flat.max()) if flat.size else 0
    if top < max(1 << 16, 4 * flat.size):  # O(pixels) look-up table
        ids = np.flatnonzero(np.bincount(flat, minlength=1))
        ids = np.concatenate([[0], ids[ids > 0]])
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[ids] = np.arange(ids.size)
        return ids, lut[flat]
    ids, inverse = np.unique(np.concatenate([[0], flat]), return_inverse=True)
    return ids, inverse[1:]


class _Overlap(NamedTuple):
    inter: np.ndarray  # (n_true, n_pred) pixel counts
    true_area: np.ndarray
    pred_area: np.ndarray
    true_ids: np.ndarray
    pred_ids: np.ndarray
    iou: np.ndarray  # (n_true, n_pred) float64


def _overlap(pred: np.ndarray, true: np.ndarray) -> _Overlap:
    pred, true = as_instances(pred), as_instances(true)
    if pred.shape != true.shape:
        raise ValueError(f"pred and true shapes differ: {pred.shape} vs {true.shape}")
    p_ids, p = _compact(pred.reshape(-1))
    t_ids, t = _compact(true.reshape(-1))
    hist = np.bincount(t * p_ids.size + p, minlength=t_ids.size * p_ids.size).reshape(t_ids.size, p_ids.size)
    inter, true_area, pred_area = hist[1:, 1:], hist.sum(axis=1)[1:], hist.sum(axis=0)[1:]
    union = true_area[:, None] + pred_area[None, :] - inter  # >= 1: every listed object has pixels
    return _Overlap(inter, true_area, pred_area, t_ids[1:], p_ids[1:], inter / np.maximum(union, 1))


def instance_iou_matrix(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(n_true, n_pred) float64 IoU of every true/predicted object pair; rows and columns in increasing id order."""
    return _overlap(pred, true).iou


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"IoU threshold must be in [0, 1), got {threshold}")
    return threshold


def _match(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the matched pairs (IoU > threshold, each object in at most one pair)."""
    eligible = iou > threshold
    if threshold >= 0.5 or not eligible.any():
        return np.nonzero(eligible)  # unique by the > 0.5 argument of the module docstring
    # weight 1 + IoU / (m + 1) per eligible pair: the IoU part sums to < 1, so more matches always win
    weight = np.where(eligible, 1.0 + iou / (min(iou.shape) + 1), 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    keep = eligible[rows, cols]
    return rows[keep], cols[keep]


def _counts(ov: _Overlap, threshold: float, empty: float) -> dict:
    iou = ov.iou
    rows, cols = _match(iou, threshold)
    n_true, n_pred, tp = int(iou.shape[0]), int(iou.shape[1]), int(rows.size)
    both_empty = n_true == 0 and n_pred == 0
    return {
        "threshold": threshold, "n_true": n_true, "n_pred": n_pred, "tp": tp, "fp": n_pred - tp, "fn": n_true - tp,
        "precision": tp / n_pred if n_pred else math.nan,
        "recall": tp / n_true if n_true else math.nan,
        "f1": float(empty) if both_empty else 2 * tp / (n_true + n_pred),
        "dsb_precision": float(empty) if both_empty else tp / (n_true + n_pred - tp),
        "mean_matched_iou": float(iou[rows, cols].mean()) if tp else math.nan,
    }


def match_instances(pred: np.ndarray, true: np.ndarray, threshold: float = 0.5, empty: float = 1.0) -> dict:
    """Match objects at an IoU threshold (IoU > threshold; see the module docstring).

    Returns ``{threshold, n_true, n_pred, tp, fp, fn, precision, recall, f1, dsb_precision =
    TP / (TP + FP + FN), mean_matched_iou}`` with plain ints / floats; ``empty`` is the f1 and dsb_precision
    of an image without true and predicted objects.
    """
    return _counts(_overlap(pred, true), _check_threshold(threshold), empty)


def f1_at(pred: np.ndarray, true: np.ndarray, threshold: float = 0.5, empty: float = 1.0) -> float:
    """Object F1 = 2 TP / (n_true + n_pred) at an IoU threshold (``empty`` when both have no object)."""
    return match_instances(pred, true, threshold, empty)["f1"]


def _average_precision(ov: _Overlap, thresholds: Sequence[float], empty: float) -> dict:
    ts = [_check_threshold(round(float(t), 10)) for t in np.atleast_1d(thresholds)]
    if not ts:
        raise ValueError("no thresholds given")
    rows = [_counts(ov, t, empty) for t in ts]
    per = [r["dsb_precision"] for r in rows]
    return {"ap": float(np.mean(per)), "thresholds": ts, "ap_per_threshold": per,
            "tp": [r["tp"] for r in rows], "fp": [r["fp"] for r in rows], "fn": [r["fn"] for r in rows]}


def average_precision(pred: np.ndarray, true: np.ndarray, thresholds: Sequence[float] = DSB_THRESHOLDS,
                      empty: float = 1.0) -> dict:
    """DSB 2018 score of one image: mean over thresholds t of TP(t) / (TP(t) + FP(t) + FN(t)).

    Returns ``{ap, thresholds, ap_per_threshold, tp, fp, fn}`` (lists per threshold). Thresholds are rounded
    to 10 decimals, so ``np.arange(0.5, 1.0, 0.05)`` gives exactly 0.5, 0.55, ..., 0.95.
    """
    return _average_precision(_overlap(pred, true), thresholds, empty)


def _aji(ov: _Overlap, empty: float) -> float:
    n_true, n_pred = ov.inter.shape
    if n_true == 0:
        return float(empty) if n_pred == 0 else 0.0
    inter_sum = union_sum = 0
    used = np.zeros(n_pred, dtype=bool)
    if n_pred:
        best = np.argmax(ov.iou, axis=1)  # first (lowest id) on ties
        inter = ov.inter[np.arange(n_true), best]
        hit = inter > 0
        used[best[hit]] = True
        inter_sum = int(inter.sum())
        union_sum = int((ov.true_area + np.where(hit, ov.pred_area[best] - inter, 0)).sum())
    else:
        union_sum = int(ov.true_area.sum())
    union_sum += int(ov.pred_area[~used].sum())
    return inter_sum / union_sum


def aggregated_jaccard_index(pred: np.ndarray, true: np.ndarray, empty: float = 1.0) -> float:
    """Aggregated Jaccard Index (Kumar et al. 2017), see the module docstring; ``empty`` if both have no object."""
    return _aji(_overlap(pred, true), empty)


def _seg_jaccards(ov: _Overlap) -> np.ndarray:
    """Per reference object (increasing id): the Jaccard index with the predicted object covering more than half of
    it, 0 without one."""
    if ov.inter.shape[1] == 0:
        return np.zeros(ov.inter.shape[0])
    covers = 2 * ov.inter > ov.true_area[:, None]  # |R & S| > |R| / 2, integer arithmetic
    return np.where(covers, ov.iou, 0.0).max(axis=1)


def seg_score(pred: np.ndarray, true: np.ndarray) -> dict:
    """The Cell Tracking Challenge SEG measure of one image (see the module docstring).

    Args:
        pred: predicted instance labels (or a bool mask, split into connected components).
        true: reference instance labels; only its objects are scored.

    Returns:
        ``{seg, n_ref, matched, jaccard_sum, jaccard}``: SEG (NaN without reference objects), the number of reference
        objects, how many of them have a match, the sum of their Jaccard indices (for pooling over images: the
        challenge's SEG is ``sum(jaccard_sum) / sum(n_ref)``), and the Jaccard index of each reference object in
        increasing id order.
    """
    jaccard = _seg_jaccards(_overlap(pred, true))
    n = int(jaccard.size)
    return {"seg": float(jaccard.mean()) if n else math.nan, "n_ref": n, "matched": int((jaccard > 0).sum()),
            "jaccard_sum": float(jaccard.sum()), "jaccard": jaccard.tolist()}


def instance_metrics(pred: np.ndarray, true: np.ndarray, thresholds: Sequence[float] = DSB_THRESHOLDS,
                     empty: float = 1.0) -> dict:
    """The usual nuclei metrics of one image from one joint histogram.

    Returns ``{n_true, n_pred, tp_50, fp_50, fn_50, precision_50, recall_50, f1_50, mean_matched_iou_50, ap_50,
    ap (mean over ``thresholds``, the DSB image score), thresholds, ap_per_threshold, aji, seg, seg_jaccard_sum}``
    (``seg``: the Cell Tracking Challenge measure, NaN without true objects; ``seg_jaccard_sum``: the sum of the true
    objects' Jaccard indices, for pooling SEG over images as ``sum / n_true``).
    """
    ov = _overlap(pred, true)
    at50 = _counts(ov, 0.5, empty)
    ap = _average_precision(ov, thresholds, empty)
    out = {"n_true": at50["n_true"], "n_pred": at50["n_pred"]}
    out.update({f"{k}_50": at50[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1", "mean_matched_iou")})
    out.update(ap_50=at50["dsb_precision"], ap=ap["ap"], thresholds=ap["thresholds"],
               ap_per_threshold=ap["ap_per_threshold"], aji=_aji(ov, empty))
    jaccard = _seg_jaccards(ov)
    out.update(seg=float(jaccard.mean()) if jaccard.size else math.nan, seg_jaccard_sum=float(jaccard.sum()))
    return out


def drop_ignored_objects(objects: np.ndarray, ignored: np.ndarray) -> np.ndarray:
    """``objects`` without the objects that lie mostly (more than half of their pixels) on ``ignored`` pixels."""
    if not ignored.any():
        return objects
    ids, index = np.unique(objects.ravel(), return_inverse=True)
    area = np.bincount(index, minlength=ids.size)
    on = np.bincount(index[ignored.ravel()], minlength=ids.size)
    drop = (2 * on > area) & (ids != 0)
    return np.where(drop[index].reshape(objects.shape), 0, objects)
