"""After training: the prediction settings chosen on the validation set with the best weights
(:mod:`unetseg.inference.tune`), stored in ``best.safetensors`` and ``prediction.yaml``."""

from __future__ import annotations

import logging
from typing import Any

import yaml

from ...checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ...data.layouts import detect_layout
from ...fileio import atomic_write_text
from ...inference.tta import transforms_needed
from ...inference.tune import TTA_ORDER, tune_prediction
from ..state import BEST, Run, TrainState
from .base import Callback
from .budget import validation_order

log = logging.getLogger("unetseg")


class TunePrediction(Callback):
    """Chooses test-time augmentation, small-object removal and the instance method on the validation images.

    It works on ``best.safetensors`` as it is on disk, which an earlier process of a resumed run may have
    written (with settings it chose then, which are replaced): a missing or unreadable file leaves the settings
    unchosen with a warning instead of failing the finished run, and a file from another epoch than the history's
    best is named in the log.

    Under a time budget, the plan the :class:`~unetseg.engine.callbacks.budget.TimeBudget` made from the time left
    (``state.budget["tune"]``) says on how many validation images (the first of the budget's fixed order) and with
    which test-time augmentations the settings are chosen; the settings record it (``tuned_on``), and when not even
    one image fits, none are chosen (with a warning)."""

    rank_zero_only = True

    def on_end(self, run: Run, state: TrainState) -> None:
        plan = state.budget.get("tune")
        if plan is not None and not plan["images"]:
            log.warning("prediction settings not chosen: the time budget leaves %.1f s, less than one validation "
                        "image needs (about %.2f s); prediction uses the defaults", plan["left"],
                        plan.get("image_seconds", float("nan")))
            return
        path = run.run_dir / BEST
        try:
            best = load_checkpoint(path)
        except CheckpointError as err:
            log.warning("prediction settings not chosen: %s", err)
            return
        if state.best_epoch is not None and best.epoch != state.best_epoch:
            log.warning("%s holds epoch %d, the history's best is epoch %d; the settings are chosen for the file",
                        path, best.epoch, state.best_epoch)
        run.model.load_state_dict(best.model_state)
        data, ttas, subset = run.data, TTA_ORDER, _budget_subset(run, plan)
        images, labels, instances = data.val_images, data.val_labels, data.val_instances
        if subset is not None:
            images, labels = [images[i] for i in subset], [labels[i] for i in subset]
            instances = None if instances is None else [instances[i] for i in subset]
            ttas = tuple(plan["tta"])
        best.prediction = tune_prediction(run.model, images, labels, data.num_classes, data.train_labels, run.device,
                                          run.precision, run.config.train.monitor, data.ignore_index,
                                          instances=instances, ttas=ttas, instance_metric=instance_metric(run))
        if subset is not None:
            best.prediction.tuned_on = {"images": len(images), "of": len(data.val_images),
                                        "passes": len(transforms_needed(ttas))}
        save_checkpoint(path, best)
        atomic_write_text(run.run_dir / "prediction.yaml", yaml.safe_dump(best.prediction.to_dict(), sort_keys=False))


def _budget_subset(run: Run, plan: dict[str, Any] | None) -> list[int] | None:
    """The validation images a time budget's tuning ``plan`` allows (the first of the budget's fixed order), or
    None when it allows every image and every test-time augmentation (or there is no plan)."""
    n = len(run.data.val_images)
    if plan is None or (plan["images"] >= n and tuple(plan["tta"]) == TTA_ORDER):
        return None
    return validation_order(n, run.config.train.seed)[:plan["images"]]


def instance_metric(run: Run) -> str | None:
    """The metric the instance method is chosen by: the challenge's SEG for Cell Tracking Challenge data, else
    :func:`~unetseg.inference.tune.tune_prediction`'s default (AP with instance labels, the Rand error without)."""
    dc = run.config.data
    layout = detect_layout(dc.train) if dc.layout == "auto" else dc.layout
    return "seg" if layout == "ctc" else None
