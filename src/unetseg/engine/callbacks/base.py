"""The callback interface of the :class:`~unetseg.engine.trainer.Trainer`."""

from __future__ import annotations

from typing import Any

from ..state import Run, TrainState


class Callback:
    """Hooks the trainer calls, in the order the callbacks were given; override the ones you need.

    A callback ends a run after the current epoch by setting ``state.stop = True`` (and ``state.stop_reason``);
    it may read everything in ``run`` (the network, the data, the run directory) and ``state`` (the history).

    Example:
        >>> class StopAtDice(Callback):
        ...     def on_epoch_end(self, run, state, row):
        ...         if row.get("val_foreground_dice", 0) > 0.9:
        ...             state.stop, state.stop_reason = True, "validation Dice above 0.9"

    In a run of several processes (``torchrun``) every process calls its callbacks, except those with
    ``rank_zero_only = True`` (the ones that write files), which only rank 0 calls; a stop decided after an epoch
    is rank 0's (:func:`unetseg.distributed.rank_and_world` tells a callback where it runs).
    """

    #: call this callback on rank 0 only when several processes train (it writes files, or logs what rank 0 has)
    rank_zero_only: bool = False

    def on_start(self, run: Run, state: TrainState) -> None:
        """Before the first epoch of this process (after a resume too)."""

    def on_epoch_end(self, run: Run, state: TrainState, row: dict[str, Any]) -> None:
        """After every epoch; ``row`` is the epoch's log row (already in ``state.history``)."""

    def on_end(self, run: Run, state: TrainState) -> None:
        """After the last epoch (not after an exception)."""
