"""Region (instance) metrics of the ISBI 2012 EM segmentation challenge.

The challenge scores a segmentation by the regions it induces: the cell interiors (foreground) are split into
connected components, and the predicted and true region labelings are compared by pair counting with the
adapted Rand error and the variation of information (VI). :func:`label_regions` turns a class mask into such a
labeling; :func:`rand_error` and :func:`variation_of_information` wrap :func:`skimage.metrics.adapted_rand_error`
and :func:`skimage.metrics.variation_of_information` (they are not reimplemented here).

Notes on scikit-image's definition (checked by hand in ``tests/test_metrics.py``):

* pixels whose *true* label is 0 are ignored (``ignore_labels=(0,)``); label 0 in the prediction is an
  ordinary region;
* pairs are counted without self-pairs: with ``n_ij`` the contingency counts (true ``i``, predicted ``j``),
  ``a_i`` the true region sizes and ``b_j`` the predicted region sizes (all restricted to pixels with a
  non-zero true label), ``S = sum n_ij (n_ij - 1)``, ``rand_precision = S / sum a_i (a_i - 1)``,
  ``rand_recall = S / sum b_j (b_j - 1)`` and ``rand_error = 1 - 2 S / (sum a_i (a_i - 1) + sum b_j (b_j - 1))``;
* scikit-image's "precision" is normalised by the pairs of the *true* labeling and its "recall" by those of
  the *prediction*, the reverse of its own docstring (scikit-image issue #6485). The values are returned
  under scikit-image's names, and also under the unambiguous names ``rand_split_score`` (= scikit-image
  precision; lowered when the prediction splits true regions) and ``rand_merge_score`` (= scikit-image
  recall; lowered when the prediction merges true regions).

Variation of information (Meila 2007), in bits (log base 2), over the same pixels (true label 0 ignored by
default): ``vi_split = H(pred | true)`` (over-segmentation; 0 when the prediction never splits a true
region), ``vi_merge = H(true | pred)`` (under-segmentation; 0 when the prediction never merges true regions) and
``vi = vi_split + vi_merge``. Lower is better; 0 is a perfect match up to relabelling.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from skimage.measure import label as _sk_label
from skimage.metrics import adapted_rand_error
from skimage.metrics import variation_of_information as _sk_vi

__all__ = ["label_regions", "rand_error", "variation_of_information"]


def label_regions(mask: np.ndarray, foreground: int | Sequence[int] = 1, connectivity: int = 1) -> np.ndarray:
    """Connected components of the pixels whose value is in ``foreground``.

    Returns an int32 label image (0 = every other pixel, components numbered 1.. in raster order).
    ``connectivity`` is the number of orthogonal hops counted as adjacent, from 1 (4-neighbourhood in 2D)
    to ``mask.ndim`` (8-neighbourhood in 2D). For ISBI 2012 masks (membrane 0, cell 255 or 1) pass the cell
    value as ``foreground``.
    """
    mask = np.asarray(mask)
    if mask.ndim < 1:
        raise ValueError("mask must have at least one dimension")
    if not 1 <= int(connectivity) <= mask.ndim:
        raise ValueError(f"connectivity must be in [1, {mask.ndim}] for a {mask.ndim}-D mask, got {connectivity}")
    fg = np.isin(mask, np.atleast_1d(np.asarray(foreground)))
    return _sk_label(fg, background=0, connectivity=int(connectivity)).astype(np.int32)


def _as_labels(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise TypeError(f"{name} must be an integer label image, got dtype {x.dtype}")
    x = x.astype(np.int64)
    if x.size and x.min() < 0:
        raise ValueError(f"{name} contains negative label {int(x.min())}")
    return x


def _pair(pred_labels: np.ndarray, true_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = _as_labels(pred_labels, "pred_labels")
    true = _as_labels(true_labels, "true_labels")
    if pred.shape != true.shape:
        raise ValueError(f"pred_labels and true_labels shapes differ: {pred.shape} vs {true.shape}")
    return pred, true


def rand_error(pred_labels: np.ndarray, true_labels: np.ndarray, ignore_background: bool = True) -> dict:
    """Adapted Rand error as scikit-image defines it (:func:`skimage.metrics.adapted_rand_error`).

    Returns ``{'rand_error': 1 - Rand F-score, 'rand_precision': ..., 'rand_recall': ...,
    'rand_split_score': ..., 'rand_merge_score': ...}`` as Python floats. Label 0 in ``true_labels`` is
    treated as boundary/background and ignored (``ignore_labels=(0,)``). Undefined ratios (e.g. no
    non-zero true pixels, or only single-pixel regions) are NaN. See the module docstring for which pair
    count each value is normalised by. ``ignore_background=False`` counts the true-0 pixels as one more region.
    """
    pred, true = _pair(pred_labels, true_labels)
    if true.size == 0:
        are = prec = rec = math.nan
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            are, prec, rec = adapted_rand_error(true, pred, ignore_labels=(0,) if ignore_background else ())
    prec, rec = float(prec), float(rec)
    return {"rand_error": float(are), "rand_precision": prec, "rand_recall": rec,
            "rand_split_score": prec, "rand_merge_score": rec}


def rand_index_error(pred_labels: np.ndarray, true_labels: np.ndarray, ignore_background: bool = True) -> float:
    """Plain Rand error, ``1 - Rand index``: the fraction of pixel pairs on which the two labelings disagree (same
    region in one, different regions in the other), over all unordered pairs of distinct pixels.

    Counted from the contingency table ``n_ij`` (pixels in true region i and predicted region j) with
    ``C(n) = n (n - 1) / 2``: ``RI = 1 + (2 sum C(n_ij) - sum_i C(a_i) - sum_j C(b_j)) / C(n)``. With
    ``ignore_background`` the pixels whose true label is 0 are left out (as :func:`rand_error` does). NaN for
    fewer than two pixels.
    """
    pred, true = _pair(pred_labels, true_labels)
    if ignore_background:
        keep = true != 0
        pred, true = pred[keep], true[keep]
    n = true.size
    if n < 2:
        return math.nan
    _, joint = np.unique(np.stack([true.ravel(), pred.ravel()]), axis=1, return_counts=True)
    _, rows = np.unique(true, return_counts=True)
    _, cols = np.unique(pred, return_counts=True)

    def pairs(counts: np.ndarray) -> float:
        counts = counts.astype(np.float64)
        return float((counts * (counts - 1) / 2).sum())

    total = n * (n - 1) / 2
    return float((pairs(rows) + pairs(cols) - 2 * pairs(joint)) / total)


def variation_of_information(pred_labels: np.ndarray, true_labels: np.ndarray,
                             ignore_background: bool = True) -> dict:
    """Variation of information between two labelings, via :func:`skimage.metrics.variation_of_information`.

    Returns ``{'vi': vi_split + vi_merge, 'vi_split': H(pred | true), 'vi_merge': H(true | pred)}`` in bits as
    Python floats. Pixels whose true label is 0 are left out unless ``ignore_background=False`` (then the true
    background is one more region); with no pixel left every value is NaN. Invariant to relabelling.
    """
    pred, true = _pair(pred_labels, true_labels)
    if not (np.count_nonzero(true) if ignore_background else true.size):
        return {"vi": math.nan, "vi_split": math.nan, "vi_merge": math.nan}
    split, merge = _sk_vi(true, pred, ignore_labels=(0,) if ignore_background else ())
    split, merge = max(float(split), 0.0), max(float(merge), 0.0)  # clip -0.0 / rounding below zero
    return {"vi": split + merge, "vi_split": split, "vi_merge": merge}
