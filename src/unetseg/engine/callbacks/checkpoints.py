"""``best.safetensors`` (what prediction needs, at the best monitored epoch) and ``last.safetensors`` (also the
training state, after every epoch)."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import torch

from ...checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from ..state import BEST, LAST, Run, TrainState
from .base import Callback

log = logging.getLogger("unetseg")


def make_checkpoint(run: Run, state: TrainState) -> Checkpoint:
    """The full checkpoint of ``run`` as it stands (weights, training state, history, recipe, and in its
    ``run_state`` what a resume needs: :meth:`TrainState.run_state`, the training files and the folder relative
    data paths start from; for a fine-tuning run, ``init``: the checkpoint its weights came from)."""
    device = run.device
    return Checkpoint(
        model_config=run.model.config, num_classes=run.data.num_classes, class_names=run.data.class_names,
        normalization=run.data.normalization.to_dict(), run_config=run.config.to_dict(), epoch=state.epoch,
        history=state.history, best_score=state.best_score, recipe=run.recipe, model_state=run.model.state_dict(),
        optimizer_state=run.optimizer.state_dict(), torch_rng_state=torch.get_rng_state(),
        cuda_rng_state=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        run_state={**state.run_state(), "data_files": run.data_files, "started_in": _cwd(),
                   **({"init": run.init} if run.init is not None else {})},
    )


def _cwd() -> str:
    """The working folder ("" when it no longer exists)."""
    try:
        return os.getcwd()
    except OSError:
        return ""


def best_checkpoint(ckpt: Checkpoint) -> Checkpoint:
    """What ``best.safetensors`` holds of ``ckpt``: no training state, no list of training files."""
    best = ckpt.for_prediction()
    return dataclasses.replace(best, run_state={k: v for k, v in best.run_state.items()
                                                if k not in ("data_files", "started_in")})


def stored_epoch(path: Any) -> int | None:
    """The epoch of the checkpoint at ``path``, or None when there is none or it cannot be read."""
    try:
        return load_checkpoint(path).epoch
    except CheckpointError:
        return None


class Checkpoints(Callback):
    """After every epoch: ``best.safetensors`` first when the epoch is the best so far (``state.improved``, by the
    windowed monitored score of :func:`~unetseg.engine.loop.is_best`; without the
    optimizer state), then ``last.safetensors``; so no interruption leaves ``best`` behind ``last``.

    A process killed between the two leaves ``best`` one epoch ahead of ``last``; the resumed run trains that
    epoch again and, being exact, writes the same ``best`` again."""

    rank_zero_only = True

    def on_start(self, run: Run, state: TrainState) -> None:
        if state.epoch == 0 or state.best_epoch is None:
            return
        best = stored_epoch(run.run_dir / BEST)
        if best is None and state.best_epoch == state.epoch:  # the weights in memory are the best: write them
            log.warning("%s is missing or unreadable; written again from %s (epoch %d)", run.run_dir / BEST, LAST,
                        state.epoch)
            save_checkpoint(run.run_dir / BEST, best_checkpoint(make_checkpoint(run, state)))
        elif best is None:
            log.warning("%s is missing or unreadable; it is written again when an epoch improves on epoch %d",
                        run.run_dir / BEST, state.best_epoch)
        elif best > state.epoch:
            log.info("%s is from epoch %d, which the stopped run ended without recording in %s; it is trained again",
                     run.run_dir / BEST, best, LAST)

    def on_epoch_end(self, run: Run, state: TrainState, row: dict[str, Any]) -> None:
        ckpt = make_checkpoint(run, state)
        if state.improved:
            save_checkpoint(run.run_dir / BEST, best_checkpoint(ckpt))
        save_checkpoint(run.run_dir / LAST, ckpt)
