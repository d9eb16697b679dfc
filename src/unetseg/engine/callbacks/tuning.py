"""After training: the prediction settings chosen on the validation set with the best weights
(:mod:`unetseg.inference.tune`), stored in ``best.safetensors`` and ``prediction.yaml``."""

from __future__ import annotations

import logging

import yaml

from ...checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ...fileio import atomic_write_text
from ...inference.tune import tune_prediction
from ..state import BEST, Run, TrainState
from .base import Callback

log = logging.getLogger("unetseg")


class TunePrediction(Callback):
    """Chooses test-time augmentation, small-object removal and the instance method on the validation images.

    It works on ``best.safetensors`` as it is on disk, which an earlier process of a resumed run may have
    written (with settings it chose then, which are replaced): a missing or unreadable file leaves the settings
    unchosen with a warning instead of failing the finished run, and a file from another epoch than the history's
    best is named in the log."""

    def on_end(self, run: Run, state: TrainState) -> None:
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
        data = run.data
        best.prediction = tune_prediction(run.model, data.val_images, data.val_labels, data.num_classes,
                                          data.train_labels, run.device, run.precision, run.config.train.monitor,
                                          data.ignore_index, instances=data.val_instances)
        save_checkpoint(path, best)
        atomic_write_text(run.run_dir / "prediction.yaml", yaml.safe_dump(best.prediction.to_dict(), sort_keys=False))
