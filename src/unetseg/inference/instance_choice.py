"""Choosing how objects are separated (the instance method) on validation images, by the metric users report.

The candidates are the methods of :data:`~unetseg.inference.postprocess.INSTANCE_METHODS`, the first of which
(connected components) is the default. Each is scored against the validation objects with one of
:data:`INSTANCE_METRICS`:

- ``ap``: the mean over images of the average precision over IoU thresholds 0.5:0.05:0.95 (the 2018 Data Science
  Bowl score), predicted objects lying mostly on not-annotated pixels left out;
- ``seg``: the Cell Tracking Challenge's SEG, the mean Jaccard index of every reference object pooled over the
  images (only annotated objects count, so partial annotations are scored as the challenge scores them);
- ``rand``: the adapted Rand error of the regions (lower is better), for data whose objects are regions of the
  class map rather than instance labels (membranes and cells of electron microscopy).

Each method is judged at its own thresholds, chosen first by the same rule: for the seeded watershed the seeds'
probability (:data:`SEED_THRESHOLDS`), then for every method the objects' foreground threshold
(:data:`INSTANCE_THRESHOLDS`; a lower one narrows the gaps between objects, a higher one widens them), each tried
against the one chosen so far, the defaults first. Then the methods are compared at their thresholds.

A candidate (a method, or a threshold) replaces the one chosen so far only when it is better by at least
``min_gain`` on the whole validation set **and** consistently: it must be better than the current choice on more
units than it is worse, by at least the standard deviation of a fair sign test (``wins - losses >= sqrt(wins +
losses)``). The units are the validation images, or, with fewer than :data:`MIN_UNITS` images, tiles of about
:data:`TILE` pixels of them, so that a handful of images does not let one lucky image decide (a method that splits
one image's cells well and another's badly is not chosen).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..metrics.instances import drop_ignored_objects, instance_metrics, seg_score
from ..metrics.regions import rand_error

INSTANCE_METRICS = ("ap", "seg", "rand")
SEED_THRESHOLDS = (0.9, 0.8, 0.95)
"""The seed thresholds tried once the seeded watershed is chosen, the default first."""
INSTANCE_THRESHOLDS = (0.5, 0.4, 0.6, 0.3, 0.7)
"""The objects' foreground thresholds tried with the chosen method, the default (the class map's) first, then
outward from it."""
MIN_UNITS = 8
"""With fewer validation images than this, the consistency check counts tiles of the images instead."""
TILE = 256
"""The side (pixels) of the tiles of the consistency check on a few validation images."""


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` (one of :data:`INSTANCE_METRICS`) is better."""
    if metric not in INSTANCE_METRICS:
        raise ValueError(f"instance metric {metric!r}: expected one of {', '.join(INSTANCE_METRICS)}")
    return metric != "rand"


def unit_slices(shape: tuple[int, int], n_images: int, tile: int = TILE) -> list[tuple[slice, slice]]:
    """The units of one image for the consistency check: the whole image when there are at least
    :data:`MIN_UNITS` images, else a grid of tiles of about ``tile`` pixels.

    Example:
        >>> len(unit_slices((512, 700), 2)), len(unit_slices((512, 700), 8))
        (6, 1)
    """
    height, width = shape
    if n_images >= MIN_UNITS:
        return [(slice(0, height), slice(0, width))]
    rows, cols = max(1, round(height / tile)), max(1, round(width / tile))
    ys, xs = np.linspace(0, height, rows + 1).astype(int), np.linspace(0, width, cols + 1).astype(int)
    return [(slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1])) for i in range(rows) for j in range(cols)]


class InstanceScores:
    """The scores of one method's objects on the validation images: on the whole set (``overall``) and per unit.

    Args:
        metric: one of :data:`INSTANCE_METRICS`.
    """

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.units: list[float] = []
        self._values: list[float] = []  # per image (ap, rand)
        self._jaccard, self._n_ref = 0.0, 0  # pooled (seg)

    def add(self, objects: np.ndarray, truth: np.ndarray, ignored: np.ndarray | None, n_images: int) -> None:
        """Score ``objects`` (instance labels) of one image against ``truth`` (its true objects)."""
        if ignored is not None and self.metric == "ap":
            objects = drop_ignored_objects(objects, ignored)
        if self.metric == "seg":
            pooled = seg_score(objects, truth)
            self._jaccard, self._n_ref = self._jaccard + pooled["jaccard_sum"], self._n_ref + pooled["n_ref"]
        elif truth.any():
            self._values.append(self._score(objects, truth))
        for rows, cols in unit_slices(truth.shape, n_images):
            if truth[rows, cols].any():
                self.units.append(self._score(objects[rows, cols], truth[rows, cols]))

    def _score(self, objects: np.ndarray, truth: np.ndarray) -> float:
        if self.metric == "ap":
            return float(instance_metrics(objects, truth)["ap"])
        if self.metric == "rand":
            return float(rand_error(objects, truth)["rand_error"])
        one = seg_score(objects, truth)
        return one["jaccard_sum"] / one["n_ref"] if one["n_ref"] else math.nan

    @property
    def overall(self) -> float:
        """The metric on the whole validation set (NaN without true objects)."""
        if self.metric == "seg":
            return self._jaccard / self._n_ref if self._n_ref else math.nan
        return float(np.mean(self._values)) if self._values else math.nan


def consistently_better(candidate: Sequence[float], current: Sequence[float], higher: bool) -> bool:
    """Whether ``candidate`` beats ``current`` on more paired units than it loses, by at least the standard
    deviation of a fair sign test: ``wins - losses >= sqrt(wins + losses)`` (ties and NaN left out).

    Example:
        >>> consistently_better([0.9, 0.8, 0.7], [0.5, 0.5, 0.5], True), consistently_better([0.9, 0.1], [0.5, 0.5], True)
        (True, False)
    """
    a, b = np.asarray(candidate, float), np.asarray(current, float)
    keep = ~(np.isnan(a) | np.isnan(b))
    diff = (a - b)[keep] if higher else (b - a)[keep]
    wins, losses = int(np.sum(diff > 1e-12)), int(np.sum(diff < -1e-12))
    return wins > losses and wins - losses >= math.sqrt(wins + losses)


def choose_method(scores: dict[str, InstanceScores], min_gain: float) -> str:
    """The first method of ``scores`` (the default), replaced by a later one only when it is better overall by at
    least ``min_gain`` and :func:`consistently_better` per unit than the one chosen so far."""
    names = list(scores)
    chosen = names[0]
    higher = higher_is_better(scores[chosen].metric)
    for name in names[1:]:
        value, best = scores[name].overall, scores[chosen].overall
        if math.isnan(value):
            continue
        gain = (value - best) if higher else (best - value)
        better = math.isnan(best) or gain >= min_gain
        if better and consistently_better(scores[name].units, scores[chosen].units, higher):
            chosen = name
    return chosen


def threshold_label(method: str, threshold: float, seed_threshold: float) -> str:
    """The name of one (method, foreground threshold, seed threshold) candidate in the recorded scores.

    Example:
        >>> threshold_label("seeded", 0.4, 0.9), threshold_label("watershed", 0.5, 0.9)
        ('seeded t=0.4 s=0.9', 'watershed t=0.5')
    """
    return f"{method} t={threshold:g}" + (f" s={seed_threshold:g}" if method == "seeded" else "")


def choose_thresholds(method: str, default: InstanceScores, score: Callable[[dict[str, tuple[float, float]]],
                      dict[str, InstanceScores]], min_gain: float) -> tuple[float, float, dict[str, InstanceScores]]:
    """The (foreground threshold, seed threshold) of ``method``: the seeds first (seeded watershed only), then the
    foreground, each candidate against the one chosen so far by :func:`choose_method`'s rule.

    Args:
        method: an instance method.
        default: its scores at the default thresholds (0.5, 0.9).
        score: the :class:`InstanceScores` of candidates ``{label: (foreground threshold, seed threshold)}``.
        min_gain: the gain a candidate must show on the whole validation set.

    Returns:
        The two thresholds and the scores of every candidate tried, by :func:`threshold_label` (the chosen one's
        label among them).
    """
    threshold, seed = INSTANCE_THRESHOLDS[0], SEED_THRESHOLDS[0]
    tried = {threshold_label(method, threshold, seed): default}
    stages = [("seed", SEED_THRESHOLDS)] if method == "seeded" else []
    for stage, values in [*stages, ("foreground", INSTANCE_THRESHOLDS)]:
        candidates = {threshold_label(method, *pair): pair for pair in
                      ((threshold, v) if stage == "seed" else (v, seed) for v in values)}
        current = threshold_label(method, threshold, seed)
        scores = {current: tried[current], **score({k: v for k, v in candidates.items() if k != current})}
        tried.update(scores)
        threshold, seed = candidates[choose_method(scores, min_gain)]
    return threshold, seed, tried


def score_methods(methods: Sequence[str], objects_of: Callable[[int, str], np.ndarray], truths: Sequence[np.ndarray],
                  ignored: Sequence[np.ndarray | None], metric: str) -> dict[str, InstanceScores]:
    """The :class:`InstanceScores` of every method: ``objects_of(i, method)`` gives image i's objects."""
    higher_is_better(metric)  # checks the name
    scores = {method: InstanceScores(metric) for method in methods}
    for i, truth in enumerate(truths):
        for method in methods:
            scores[method].add(objects_of(i, method), truth, ignored[i], len(truths))
    return scores
