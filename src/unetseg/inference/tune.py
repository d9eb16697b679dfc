"""Prediction settings chosen on the validation set after training: test-time augmentation, small-object removal
and how objects (instances) are separated.

The trained network predicts every validation image under all eight flips and quarter turns once; the ``none``,
``flips`` and ``d4`` test-time augmentations are averages of subsets of those eight probability maps, so trying
them costs one ``d4`` pass. Then connected components smaller than a few candidate sizes (fractions of the
smallest objects in the training labels) are removed. A costlier choice is kept only when it beats the cheaper
one on the validation metric by at least ``min_gain``. Last, the objects of that prediction are separated by
connected components, a distance-transform watershed or a probability-seeded watershed, whichever gives the lowest
adapted Rand error against the validation objects. The result is stored in the checkpoint and
:meth:`unetseg.Predictor.from_checkpoint` uses it unless told otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..models.apply import logits_to_probabilities, padded_forward
from ..inference.postprocess import INSTANCE_METHODS, instances_from_semantic, remove_small_objects
from ..inference.tta import TTA_SETS
from ..metrics import ConfusionMatrix
from ..metrics.regions import label_regions, rand_error
from ..precision import autocast

log = logging.getLogger("unetseg")

TTA_ORDER = ("none", "flips", "d4")  # cheapest first


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


def _labels_per_tta(model: torch.nn.Module, image: np.ndarray, device: torch.device,
                    precision: str) -> dict[str, np.ndarray]:
    """Predicted class indices (H, W) of ``image`` for each TTA set of TTA_ORDER, from one pass of the eight
    transforms of TTA_SETS['d4'] (each set's probabilities are the mean over its transforms)."""
    x = torch.from_numpy(image).to(device)
    maps = {}
    with torch.inference_mode(), autocast(precision, device):
        for t in TTA_SETS["d4"]:
            logits = padded_forward(model, t.apply(x)[None])
            maps[t.name] = t.inverse(logits_to_probabilities(logits)[0]).float()
    out = {}
    for name in TTA_ORDER:
        members = [maps[t.name] for t in TTA_SETS[name]]
        mean = sum(members) / len(members)
        out[name] = mean.argmax(0).cpu().numpy().astype(np.int32)
        out[f"{name}_foreground"] = (1.0 - mean[0]).cpu().numpy().astype(np.float16)  # P(not background)
    return out


def _score(cm: ConfusionMatrix, monitor: str) -> float:
    value = cm.compute()[monitor]
    return -np.inf if value is None or np.isnan(value) else float(value)


def tune_prediction(model: torch.nn.Module, images: list[np.ndarray], labels: list[np.ndarray], num_classes: int,
                    train_labels: list[np.ndarray], device: torch.device, precision: str = "fp32",
                    monitor: str = "foreground_dice", ignore_index: int | None = None,
                    min_gain: float = 0.001, instances: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Choose ``tta`` and ``min_size`` on normalised validation ``images`` (C, H, W) with their ``labels``, then
    the instance method (:data:`INSTANCE_METHODS`) with the lowest mean adapted Rand error against the
    validation ``instances`` (instance labels; without them, the connected components of the labels' foreground).

    Returns ``{"tta", "min_size", "instances", "monitor", "score", "scores": {candidate: value},
    "instance_rand_errors": {method: value}}``, where the scores are the validation ``monitor`` metric of each
    candidate.
    """
    model.eval()
    predicted = [_labels_per_tta(model, image, device, precision) for image in images]
    scores: dict[str, float] = {}

    def evaluate(tta: str, min_size: int) -> float:
        cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
        for by_tta, truth in zip(predicted, labels):
            pred = by_tta[tta]
            if min_size > 1:
                pred = remove_small_objects(pred, min_size)
            cm.update(torch.from_numpy(pred), torch.from_numpy(truth.astype(np.int64)))
        score = _score(cm, monitor)
        scores[f"tta={tta} min_size={min_size}"] = score
        return score

    best_tta, best = "none", evaluate("none", 0)
    for tta in TTA_ORDER[1:]:
        score = evaluate(tta, 0)
        if score >= best + min_gain:
            best_tta, best = tta, score
    best_size = 0
    for size in min_size_candidates(object_sizes(train_labels, num_classes, ignore_index))[1:]:
        score = evaluate(best_tta, size)
        if score >= best + min_gain:
            best_size, best = size, score
    rand = {}
    for method in INSTANCE_METHODS:
        errors = []
        for i, (by_tta, truth) in enumerate(zip(predicted, labels)):
            pred = by_tta[best_tta]
            if best_size > 1:
                pred = remove_small_objects(pred, best_size)
            foreground = np.where(pred > 0, by_tta[f"{best_tta}_foreground"].astype(np.float32), 0.0)
            objects = instances_from_semantic(foreground, method, min_size=best_size)  # as Predictor.objects
            true_objects = instances[i] if instances is not None else label_regions(truth, list(range(1, num_classes)))
            if true_objects.any():
                errors.append(rand_error(objects, true_objects)["rand_error"])
        rand[method] = float(np.mean(errors)) if errors else float("nan")
    valid = {m: e for m, e in rand.items() if not np.isnan(e)}
    method = INSTANCE_METHODS[0]
    for candidate in INSTANCE_METHODS[1:]:  # a different method only when it lowers the error by min_gain
        if candidate in valid and valid[candidate] <= valid.get(method, np.inf) - min_gain:
            method = candidate
    log.info("prediction settings chosen on %d validation images: tta=%s, min_size=%d (val %s %.4f), "
             "instances=%s (adapted Rand error %s)", len(images), best_tta, best_size, monitor, best, method,
             ", ".join(f"{m} {e:.4f}" for m, e in rand.items()))
    return {"tta": best_tta, "min_size": best_size, "instances": method, "monitor": monitor, "score": best,
            "scores": scores, "instance_rand_errors": rand}
