"""Prediction settings chosen on the validation set after training: test-time augmentation, small-object removal
and how objects (instances) are separated.

The trained network predicts every validation image under all eight flips and quarter turns once; the ``none``,
``flips`` and ``d4`` test-time augmentations are averages of subsets of those eight probability maps, so trying
them costs one ``d4`` pass. A test-time augmentation costs its number of network passes per image (1, 4, 8); a
costlier one is kept only when it beats the cheaper one on the validation metric by at least ``cost_margin`` for
each doubling of the passes (by default 0.005: ``flips`` must gain 0.01 over ``none``, ``d4`` 0.015 over ``none``
or 0.005 over ``flips``), so an 8x slower prediction must earn its cost. The seconds each choice costs per
validation image, measured on the training device, are recorded (``cost``). Then connected components smaller
than a few candidate sizes (fractions of the smallest objects in the training labels) are removed, kept when they
gain at least ``min_gain``. Last, the objects of that prediction are separated by
connected components, a distance-transform watershed or a probability-seeded watershed, chosen by the metric users
report (:mod:`unetseg.inference.instance_choice`: AP over IoU 0.5:0.95 against instance labels, the Cell Tracking
Challenge's SEG for its data, the adapted Rand error for regions), a splitting method only when it is better on
the whole and consistently over the validation images (or tiles of them, for a few images), each method judged at
its own seed threshold (seeded watershed) and objects' foreground threshold, chosen first by the same rule. The
result is stored in the checkpoint and :meth:`unetseg.Predictor.from_checkpoint` uses it unless told otherwise.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from ..checkpoint import PredictionSettings
from ..models.apply import logits_to_probabilities, padded_forward
from .instance_choice import InstanceScores, choose_method, choose_thresholds, score_methods, threshold_label
from .postprocess import INSTANCE_METHODS, prediction_objects, remove_small_objects
from .tta import TTA_SETS, transforms_needed
from ..metrics import ConfusionMatrix
from ..metrics.regions import label_regions
from ..precision import autocast

log = logging.getLogger("unetseg")

TTA_ORDER = ("none", "flips", "d4")  # cheapest first
COST_MARGIN = 0.005
"""The validation gain a test-time augmentation must show per doubling of the network passes it costs."""


def required_gain(cheaper: str, costlier: str, cost_margin: float = COST_MARGIN) -> float:
    """The validation gain ``costlier`` (a :data:`TTA_SETS` name) must show over ``cheaper`` to be chosen:
    ``cost_margin`` per doubling of the passes.

    Example:
        >>> round(required_gain("none", "d4"), 4), round(required_gain("flips", "d4"), 4)
        (0.015, 0.005)
    """
    return cost_margin * math.log2(len(TTA_SETS[costlier]) / len(TTA_SETS[cheaper]))


def object_sizes(labels: list[np.ndarray], num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Pixel counts of the 4-connected components of every foreground class in ``labels``."""
    sizes = []
    for image in labels:
        for value in range(1, num_classes):
            if value == ignore_index:
                continue
            components, n = ndimage.label(image == value)
            if n:
                sizes.append(np.bincount(components.ravel())[1:])
    return np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)


def min_size_candidates(sizes: np.ndarray) -> list[int]:
    """0, and a quarter and a half of the 5th percentile of the training objects' sizes (distinct, >= 2).

    Example:
        >>> min_size_candidates(np.array([40] * 100))
        [0, 10, 20]
    """
    if sizes.size == 0:
        return [0]
    small = float(np.percentile(sizes, 5))
    return sorted({0, *(int(round(small * f)) for f in (0.25, 0.5) if round(small * f) >= 2)})


def _labels_per_tta(model: torch.nn.Module, image: np.ndarray, device: torch.device, precision: str,
                    ttas: Sequence[str] = TTA_ORDER) -> dict[str, np.ndarray | float]:
    """Predicted class indices (H, W) of ``image`` for each TTA set of ``ttas``, from one pass of each transform
    of TTA_SETS['d4'] they use (each set's probabilities are the mean over its transforms), and under
    ``"seconds"`` the mean seconds of one pass."""
    x = torch.from_numpy(image).to(device)
    maps = {}
    needed = transforms_needed(ttas)
    started = time.perf_counter()
    with torch.inference_mode(), autocast(precision, device):
        for t in TTA_SETS["d4"]:
            if t.name not in needed:
                continue
            logits = padded_forward(model, t.apply(x)[None])
            maps[t.name] = t.inverse(logits_to_probabilities(logits)[0]).float()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out: dict[str, np.ndarray | float] = {"seconds": (time.perf_counter() - started) / len(maps)}
    for name in ttas:
        members = [maps[t.name] for t in TTA_SETS[name]]
        mean = sum(members) / len(members)
        out[name] = mean.argmax(0).cpu().numpy().astype(np.int32)
        out[f"{name}_foreground"] = (1.0 - mean[0]).cpu().numpy().astype(np.float16)  # P(not background)
    return out


def metric_value(cm: ConfusionMatrix, monitor: str) -> float:
    """The ``monitor`` metric of ``cm`` (NaN or missing counts as minus infinity)."""
    value = cm.compute()[monitor]
    return -np.inf if value is None or np.isnan(value) else float(value)


def tune_prediction(model: torch.nn.Module, images: list[np.ndarray], labels: list[np.ndarray], num_classes: int,
                    train_labels: list[np.ndarray], device: torch.device, precision: str = "fp32",
                    monitor: str = "foreground_dice", ignore_index: int | None = None,
                    min_gain: float = 0.001, instances: list[np.ndarray] | None = None,
                    cost_margin: float = COST_MARGIN, ttas: Sequence[str] = TTA_ORDER,
                    instance_metric: str | None = None) -> PredictionSettings:
    """Choose ``tta`` (a costlier one must gain :func:`required_gain`) and ``min_size`` on normalised validation
    ``images`` (C, H, W) with their ``labels``, then the instance method (:data:`INSTANCE_METHODS`) by
    ``instance_metric`` against the validation ``instances`` (instance labels; without them, the connected
    components of the labels' foreground) as :mod:`unetseg.inference.instance_choice` says. ``instance_metric``:
    ``ap``, ``seg`` or ``rand``; by default ``ap`` with instance labels, ``rand`` (regions) without. ``ttas``: the
    test-time augmentations tried, cheapest first (a time budget may leave only ``("none",)``, which needs one
    network pass per image instead of eight).

    Returns:
        The chosen settings with the validation ``monitor`` metric of every candidate (``scores``), the
        ``instance_metric`` of every instance method at its chosen thresholds (``instance_scores``; also
        ``instance_rand_errors`` when it is the adapted Rand error) and of every threshold tried
        (``threshold_scores``), and the network seconds per validation image of each test-time augmentation
        (``cost``).
    """
    model.eval()
    predicted = [_labels_per_tta(model, image, device, precision, ttas) for image in images]
    scorer = _Scorer(predicted, labels, num_classes, monitor, ignore_index)
    sizes = min_size_candidates(object_sizes(train_labels, num_classes, ignore_index))
    tta, size, best = _choose_tta_and_size(scorer, sizes, min_gain, cost_margin, ttas)
    pass_seconds = float(np.mean([p["seconds"] for p in predicted])) if predicted else math.nan
    cost = {name: round(pass_seconds * len(TTA_SETS[name]), 6) for name in TTA_ORDER}
    truths = instances if instances is not None else [label_regions(t, list(range(1, num_classes))) for t in labels]
    metric = instance_metric or ("ap" if instances is not None else "rand")
    ignored = [None if ignore_index is None else t == ignore_index for t in labels]
    method, (threshold, seed), at_chosen, tried = _choose_objects(predicted, tta, size, truths, ignored, metric,
                                                                  min_gain)
    log.info("prediction settings chosen on %d validation images: tta=%s (%.3f s per image; %s), min_size=%d "
             "(val %s %.4f), instances=%s (%s at each method's thresholds: %s)", len(images), tta, cost[tta],
             ", ".join(f"{t} {scorer.scores[f'tta={t} min_size=0']:.4f}" for t in ttas), size, monitor, best,
             threshold_label(method, threshold, seed), metric, ", ".join(f"{m} {e:.4f}" for m, e in at_chosen.items()))
    return PredictionSettings(tta=tta, min_size=size, instances=method, instance_threshold=threshold,
                              seed_threshold=seed, monitor=monitor, score=best, scores=scorer.scores,
                              instance_metric=metric, instance_scores=at_chosen, threshold_scores=tried,
                              instance_rand_errors=at_chosen if metric == "rand" else {}, cost=cost)


def _choose_objects(predicted: list[dict[str, np.ndarray]], tta: str, size: int, truths: Sequence[np.ndarray],
                    ignored: Sequence[np.ndarray | None], metric: str, min_gain: float
                    ) -> tuple[str, tuple[float, float], dict[str, float], dict[str, float]]:
    """The instance method and its (foreground, seed) thresholds (:mod:`unetseg.inference.instance_choice`):
    returns them, every method's ``metric`` at its chosen thresholds and that of every threshold tried."""
    methods = INSTANCE_METHODS.names()
    defaults = score_methods(methods, lambda i, m: _objects(predicted[i], tta, size, m), truths, ignored, metric)
    chosen, at_chosen, tried = {}, {}, {}
    for method in methods:
        def score(candidates: dict[str, tuple[float, float]], method: str = method) -> dict[str, InstanceScores]:
            return score_methods(list(candidates), lambda i, name: _objects(predicted[i], tta, size, method,
                                                                            *candidates[name]), truths, ignored, metric)
        threshold, seed, scores = choose_thresholds(method, defaults[method], score, min_gain)
        chosen[method], at_chosen[method] = (threshold, seed), scores[threshold_label(method, threshold, seed)]
        tried.update({name: round(s.overall, 6) for name, s in scores.items()})
    method = choose_method(at_chosen, min_gain)
    return method, chosen[method], {m: round(s.overall, 6) for m, s in at_chosen.items()}, tried


class _Scorer:
    """The validation ``monitor`` metric of a (tta, min_size) candidate; remembers every score it computed."""

    def __init__(self, predicted: list[dict[str, np.ndarray]], labels: list[np.ndarray], num_classes: int,
                 monitor: str, ignore_index: int | None) -> None:
        self.predicted, self.labels, self.num_classes = predicted, labels, num_classes
        self.monitor, self.ignore_index = monitor, ignore_index
        self.scores: dict[str, float] = {}

    def __call__(self, tta: str, min_size: int) -> float:
        cm = ConfusionMatrix(self.num_classes, ignore_index=self.ignore_index)
        for by_tta, truth in zip(self.predicted, self.labels):
            pred = by_tta[tta]
            if min_size > 1:
                pred = remove_small_objects(pred, min_size)
            cm.update(torch.from_numpy(pred), torch.from_numpy(truth.astype(np.int64)))
        score = metric_value(cm, self.monitor)
        self.scores[f"tta={tta} min_size={min_size}"] = score
        return score


def _choose_tta_and_size(score: _Scorer, sizes: list[int], min_gain: float, cost_margin: float = COST_MARGIN,
                         ttas: Sequence[str] = TTA_ORDER) -> tuple[str, int, float]:
    """The cheapest TTA of ``ttas`` unless a costlier one gains :func:`required_gain` over the one chosen so far,
    then the smallest ``min_size`` unless a larger one gains at least ``min_gain``."""
    best_tta, best = ttas[0], score(ttas[0], 0)
    for tta in ttas[1:]:
        value = score(tta, 0)
        if value >= best + max(min_gain, required_gain(best_tta, tta, cost_margin)):
            best_tta, best = tta, value
    best_size = 0
    for size in sizes[1:]:
        value = score(best_tta, size)
        if value >= best + min_gain:
            best_size, best = size, value
    return best_tta, best_size, best


def _objects(by_tta: dict[str, np.ndarray], tta: str, min_size: int, method: str, threshold: float = 0.5,
             seed_threshold: float = 0.9) -> np.ndarray:
    """``method``'s objects of one validation image (as :meth:`unetseg.Predictor.objects` makes them)."""
    pred = by_tta[tta]
    if min_size > 1:
        pred = remove_small_objects(pred, min_size)
    return prediction_objects(by_tta[f"{tta}_foreground"].astype(np.float32), pred, method, threshold=threshold,
                              seed_threshold=seed_threshold, min_size=min_size)
