"""``train.time_budget``: the number of epochs re-fitted after every epoch so that the run ends within budget."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ..state import Run, TrainState
from .base import Callback

log = logging.getLogger("unetseg")


def fit_epochs(history: list[dict[str, Any]], elapsed: float, budget: float, reserve: float,
               epoch_seconds: list[float] | None = None) -> int:
    """Total epochs that fit in ``budget`` seconds: the epochs done plus as many more of the median recent epoch
    time as the remaining budget (less ``reserve`` for what follows training) allows. ``epoch_seconds``: the
    measured cost of recent epochs (default: the history's ``seconds``, training and validation only)."""
    recent = (epoch_seconds or [row["seconds"] for row in history])[-5:]
    more = int((budget - elapsed - reserve) // max(float(np.median(recent)), 1e-6))
    return len(history) + max(more, 0)


class TimeBudget(Callback):
    """Re-fits ``state.total_epochs`` after every epoch from the measured epoch times (the first epoch always runs;
    the learning-rate schedule follows the fitted total), and at the start of a resumed run from the time the run
    has used so far (:meth:`TrainState.elapsed`, stored in the checkpoint), so that it continues with the budget
    that is left.

    Args:
        minutes: the budget for the whole run.
        reserve_passes: validation passes to keep time for after training (the tuning of the prediction settings
            predicts every validation image 8 times).
    """

    def __init__(self, minutes: float, reserve_passes: int = 0) -> None:
        self.budget = minutes * 60.0
        self.reserve_passes = reserve_passes
        # the wall time from one epoch end to the next: an epoch's training and validation plus the callbacks
        # after the epoch before (checkpoints, logs, curves), which the rows' "seconds" leave out
        self._cycles: list[float] = []
        self._last_end = time.perf_counter()

    def on_start(self, run: Run, state: TrainState) -> None:
        self._last_end = time.perf_counter()
        if not state.history:
            return
        self._refit(state, state.history[-1])
        log.info("time budget: %.1f of %g minutes used after epoch %d; %d epoch(s) in all fit", state.elapsed() / 60,
                 self.budget / 60, state.epoch, state.total_epochs)

    def on_epoch_end(self, run: Run, state: TrainState, row: dict[str, Any]) -> None:
        now = time.perf_counter()
        self._cycles.append(max(now - self._last_end, row["seconds"]))
        self._last_end = now
        self._refit(state, row)

    def _refit(self, state: TrainState, row: dict[str, Any]) -> None:
        reserve = self.reserve_passes * row.get("val_seconds", 0.0)
        total = fit_epochs(state.history, state.elapsed(), self.budget, reserve, self._cycles or None)
        state.total_epochs = max(state.epoch, total)
