"""Boundary distances between segmentations: Hausdorff distance and its percentile variants (HD95).

Conventions
-----------
* Distances are measured between the *boundaries* of the masks: the mask pixels with at least one
  ``connectivity``-neighbour outside the mask (default: a 4-neighbour in 2-D, a 6-neighbour in 3-D). Pixels on
  the edge of the image count as boundary (the outside of the image is background).
* For every boundary pixel of one mask the Euclidean distance to the nearest boundary pixel of the other mask
  is read from a distance transform (:func:`scipy.ndimage.distance_transform_edt`, scaled per axis by
  ``spacing``; default 1 = pixel units). That gives two directed distance sets, pred -> true and true -> pred.
* ``hausdorff_distance(..., percentile=q)`` = max(q-th percentile of pred -> true, q-th percentile of true ->
  pred), with :func:`numpy.percentile`'s linear interpolation. q = 100 is the Hausdorff distance; q = 95 is HD95
  as e.g. MONAI defines it. (MedPy's ``hd95`` instead takes the 95th percentile of both sets pooled together,
  which can be smaller.)
* Both masks empty: 0.0. Exactly one mask empty: ``inf`` (as :func:`skimage.metrics.hausdorff_distance`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["hausdorff_distance", "hausdorff_per_class", "mask_boundary"]


def mask_boundary(mask: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Bool array of the pixels of ``mask != 0`` that have a ``connectivity``-neighbour outside it (or the image)."""
    mask = np.asarray(mask) != 0
    if mask.ndim < 1:
        raise ValueError("mask must have at least one dimension")
    if not 1 <= int(connectivity) <= mask.ndim:
        raise ValueError(f"connectivity must be in [1, {mask.ndim}] for a {mask.ndim}-D mask, got {connectivity}")
    structure = ndimage.generate_binary_structure(mask.ndim, int(connectivity))
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _directed(from_boundary: np.ndarray, to_boundary: np.ndarray,
              spacing: float | Sequence[float] | None) -> np.ndarray:
    """Distances from each pixel of ``from_boundary`` to the nearest pixel of ``to_boundary``."""
    distance = ndimage.distance_transform_edt(~to_boundary, sampling=spacing)
    return distance[from_boundary]


def hausdorff_distance(pred_mask: np.ndarray, true_mask: np.ndarray, percentile: float = 100,
                       spacing: float | Sequence[float] | None = None, connectivity: int = 1) -> float:
    """Symmetric (percentile) Hausdorff distance between the boundaries of two masks (non-zero = inside).

    ``percentile=100`` gives the Hausdorff distance, ``95`` HD95; ``spacing`` is the pixel size per axis (a
    scalar or one value per axis). Returns 0.0 when both masks are empty and ``inf`` when exactly one is.
    See the module docstring for the definitions.
    """
    pred, true = np.asarray(pred_mask), np.asarray(true_mask)
    if pred.shape != true.shape:
        raise ValueError(f"pred_mask and true_mask shapes differ: {pred.shape} vs {true.shape}")
    q = float(percentile)
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    bp, bt = mask_boundary(pred, connectivity), mask_boundary(true, connectivity)
    has_p, has_t = bool(bp.any()), bool(bt.any())
    if not (has_p and has_t):
        return 0.0 if has_p == has_t else math.inf
    d_pt, d_tp = _directed(bp, bt, spacing), _directed(bt, bp, spacing)
    if q == 100.0:
        return float(max(d_pt.max(), d_tp.max()))
    return float(max(np.percentile(d_pt, q), np.percentile(d_tp, q)))


def hausdorff_per_class(pred_labels: np.ndarray, true_labels: np.ndarray, num_classes: int,
                        percentile: float = 100, spacing: float | Sequence[float] | None = None) -> list[float]:
    """:func:`hausdorff_distance` of ``label == c`` for every class c in 0..num_classes-1 (index = class).

    Use ``hausdorff_distance(pred != 0, true != 0)`` for the foreground as a whole.
    """
    pred, true = np.asarray(pred_labels), np.asarray(true_labels)
    return [hausdorff_distance(pred == c, true == c, percentile, spacing) for c in range(int(num_classes))]
