"""``train.freeze_encoder``: the encoder of a fine-tuned network gets no weight updates for the first epochs."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..finetune import encoder_parameters, encoder_summary
from ..state import Run, TrainState
from .base import Callback

log = logging.getLogger("unetseg")


class FreezeEncoder(Callback):
    """Freezes the encoder (:func:`unetseg.engine.finetune.encoder_parameters`) for the first ``epochs`` epochs:
    its parameters get ``requires_grad = False``, so they have no gradient and the optimizer leaves them exactly as
    they are; after epoch ``epochs`` (and at the end of the run) their own ``requires_grad`` comes back. Batch-norm
    statistics of the encoder still follow the new data. A resumed run freezes again when it resumes before
    epoch ``epochs`` ends, so that it stays exact.

    Args:
        epochs: how many epochs the encoder stays frozen (0: never).
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self._saved: list[tuple[torch.nn.Parameter, bool]] = []

    def on_start(self, run: Run, state: TrainState) -> None:
        if state.epoch >= self.epochs:
            return
        named = encoder_parameters(run.model)
        self._saved = [(p, p.requires_grad) for _, p in named]
        for _, p in named:
            p.requires_grad_(False)
        whole = " (the whole run)" if self.epochs >= state.total_epochs else ""
        log.info("freeze: the encoder (%s) gets no weight updates until epoch %d ends%s",
                 encoder_summary(run.model, named), self.epochs, whole)

    def on_epoch_end(self, run: Run, state: TrainState, row: dict[str, Any]) -> None:
        if self._saved and state.epoch >= self.epochs:
            self._release()
            log.info("freeze: the encoder trains from epoch %d on", state.epoch + 1)

    def on_end(self, run: Run, state: TrainState) -> None:
        self._release()

    def _release(self) -> None:
        for p, requires_grad in self._saved:
            p.requires_grad_(requires_grad)
        self._saved = []
