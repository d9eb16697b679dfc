"""After training: the prediction settings chosen on the validation set with the best weights
(:mod:`unetseg.inference.tune`), stored in ``best.safetensors`` and ``prediction.yaml``."""

from __future__ import annotations

import yaml

from ...checkpoint import load_checkpoint, save_checkpoint
from ...fileio import atomic_write_text
from ...inference.tune import tune_prediction
from ..state import BEST, Run, TrainState
from .base import Callback


class TunePrediction(Callback):
    """Chooses test-time augmentation, small-object removal and the instance method on the validation images."""

    def on_end(self, run: Run, state: TrainState) -> None:
        best = load_checkpoint(run.run_dir / BEST)
        run.model.load_state_dict(best.model_state)
        data = run.data
        best.prediction = tune_prediction(run.model, data.val_images, data.val_labels, data.num_classes,
                                          data.train_labels, run.device, run.precision, run.config.train.monitor,
                                          data.ignore_index, instances=data.val_instances)
        save_checkpoint(run.run_dir / BEST, best)
        atomic_write_text(run.run_dir / "prediction.yaml", yaml.safe_dump(best.prediction.to_dict(), sort_keys=False))
