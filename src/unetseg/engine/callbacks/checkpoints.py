"""``best.safetensors`` (what prediction needs, at the best monitored epoch) and ``last.safetensors`` (also the
training state, after every epoch)."""

from __future__ import annotations

from typing import Any

import torch

from ...checkpoint import Checkpoint, save_checkpoint
from ..state import BEST, LAST, Run, TrainState
from .base import Callback


def make_checkpoint(run: Run, state: TrainState) -> Checkpoint:
    """The full checkpoint of ``run`` as it stands (weights, training state, history, recipe)."""
    device = run.device
    return Checkpoint(
        model_config=run.model.config, num_classes=run.data.num_classes, class_names=run.data.class_names,
        normalization=run.data.normalization.to_dict(), run_config=run.config.to_dict(), epoch=state.epoch,
        history=state.history, best_score=state.best_score, recipe=run.recipe, model_state=run.model.state_dict(),
        optimizer_state=run.optimizer.state_dict(), torch_rng_state=torch.get_rng_state(),
        cuda_rng_state=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        run_state=state.run_state(),
    )


class Checkpoints(Callback):
    """After every epoch: ``best.safetensors`` first when the epoch improved the monitored score (without the
    optimizer state), then ``last.safetensors``; so no interruption leaves ``best`` behind ``last``."""

    def on_epoch_end(self, run: Run, state: TrainState, row: dict[str, Any]) -> None:
        ckpt = make_checkpoint(run, state)
        if state.improved:
            save_checkpoint(run.run_dir / BEST, ckpt.for_prediction())
        save_checkpoint(run.run_dir / LAST, ckpt)
