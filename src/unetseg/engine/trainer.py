"""The training loop: a :class:`Trainer` runs epochs and calls its callbacks; :func:`train` is the facade that
assembles a run from a configuration (or continues one) and trains it."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import Checkpoint
from ..config import Config, ConfigError
from ..distributed import collective, json_from_rank_zero, rank_and_world
from ..optim import load_optimizer_state
from ..optim.schedules import lr_at
from .callbacks import (Callback, Checkpoints, CsvLog, Curves, FreezeEncoder, TensorBoard, TimeBudget,
                        TunePrediction)
from .distributed import ReplicatedNetwork, distributed_training
from .divergence import LR_FACTOR, MAX_ROLLBACKS, Divergence, Snapshot, TrainingDiverged, explosion
from .loop import is_best, monitor_score, train_steps, validation_metrics
from .plan import DEFAULT_EPOCHS
from .run import assemble_run, starting_point
from .state import BEST, LAST, Run, TrainState

log = logging.getLogger("unetseg")


@dataclass
class TrainResult:
    """Where a finished run put its files, its per-epoch history, and why it stopped early (if a callback did)."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, Any]]
    stop_reason: str = ""


def default_callbacks(run: Run) -> list[Callback]:
    """The callbacks every run has: the frozen encoder (with ``train.freeze_encoder``), the time budget (with
    ``train.time_budget``), checkpoints, ``log.csv``, ``curves.png``, TensorBoard (with ``train.tensorboard``)
    and, with ``train.tune_prediction`` and validation images, the tuning of the prediction settings."""
    tc = run.config.train
    tune = tc.tune_prediction and bool(run.data.val_images)
    callbacks: list[Callback] = [FreezeEncoder(tc.freeze_encoder)] if tc.freeze_encoder else []
    if tc.time_budget is not None:
        callbacks.append(TimeBudget(tc.time_budget, tune=tune))
    callbacks += [Checkpoints(), CsvLog(), Curves()]
    if tc.tensorboard:
        callbacks.append(TensorBoard(tc.tensorboard_images_every))
    return callbacks + ([TunePrediction()] if tune else [])


class Trainer:
    """Runs the epochs of an assembled :class:`~unetseg.engine.state.Run` and calls ``callbacks`` at the start,
    after every epoch and at the end (:class:`~unetseg.engine.callbacks.Callback`).

    In a process group of several processes (``torchrun``: :mod:`unetseg.engine.distributed`) every process runs a
    trainer: the network trains wrapped in DistributedDataParallel, callbacks marked ``rank_zero_only`` (those that
    write files) run on rank 0 alone, and after the callbacks rank 0's number of epochs, stop decision and time
    budget state hold for every process. Progress bars are shown by rank 0 only.

    Args:
        run: the run (network, data, optimizer, loss, run directory).
        callbacks: called in order; see :func:`default_callbacks`.
        progress: show a progress bar per epoch.
        started: the ``time.perf_counter()`` at which the run's clock starts (default: now); :func:`train` starts
            it when it is called, so that a time budget counts reading the data and building the network.
    """

    def __init__(self, run: Run, callbacks: Sequence[Callback] = (), progress: bool = True,
                 started: float | None = None) -> None:
        self.run = run
        rank, _ = rank_and_world()
        self.callbacks = [c for c in callbacks if rank == 0 or not getattr(c, "rank_zero_only", False)]
        self.progress = progress and rank == 0
        self.network = ReplicatedNetwork(run.model, run.device)
        epochs = run.config.train.epochs
        self.state = TrainState(total_epochs=epochs if epochs is not None else DEFAULT_EPOCHS)
        self.state.started = started if started is not None else self.state.started
        # with a time budget, training stops on time and the learning rate and validation follow the budget
        self.budget = next((c for c in self.callbacks if isinstance(c, TimeBudget)), None)

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from ``ckpt`` (a ``last`` checkpoint of this run): weights, optimizer, random state, epoch,
        history, best score, the planned number of epochs, the time used, and a learning rate lowered after a
        divergence."""
        run, state = self.run, self.state
        run.model.load_state_dict(ckpt.model_state)
        load_optimizer_state(run.optimizer, ckpt.optimizer_state)
        torch.set_rng_state(ckpt.torch_rng_state)
        if run.device.type == "cuda" and ckpt.cuda_rng_state is not None:
            torch.cuda.set_rng_state(ckpt.cuda_rng_state, run.device)
        state.restore(ckpt.run_state, ckpt.epoch, ckpt.history)
        state.best_score = ckpt.best_score if ckpt.best_score is not None else -math.inf
        if run.config.train.epochs is None:
            state.total_epochs = ckpt.run_state.get("total_epochs", state.total_epochs)
        log.info("resuming %s after epoch %d of %d", run.run_dir, state.epoch, state.total_epochs)
        if state.epoch >= state.total_epochs and run.config.train.time_budget is None:
            log.info("all %d epochs are done; to train longer give a larger total (--epochs)", state.epoch)
        if state.lr_scale != 1.0:
            log.info("resume: the learning rate stays lowered to %g (%g x train.lr) after the divergence (%s)",
                     run.config.train.lr * state.lr_scale, state.lr_scale, "; ".join(state.divergences))

    def fit(self) -> TrainState:
        """Train until the planned number of epochs is done or a callback stops the run."""
        run, state = self.run, self.state
        self._log_start()
        run.model.train()
        for callback in self.callbacks:
            callback.on_start(run, state)
        self._agree()
        while state.epoch < state.total_epochs and not state.stop:
            row = self._good_epoch()
            state.history.append(row)
            state.epoch += 1
            self._update_best(row)
            for callback in self.callbacks:
                callback.on_epoch_end(run, state, row)
            self._agree()
            self._log_epoch(row)
        if state.stop:
            log.info("stopped after epoch %d: %s", state.epoch, state.stop_reason)
        for callback in self.callbacks:
            callback.on_end(run, state)
        return state

    def _agree(self) -> None:
        """With several processes: rank 0's planned epochs, stop decision and time-budget state in every process
        (callbacks may have decided them from each process's own clock)."""
        if not collective():
            return
        state = self.state
        shared = json_from_rank_zero({"total_epochs": state.total_epochs, "stop": state.stop,
                                      "stop_reason": state.stop_reason, "budget": state.budget})
        state.total_epochs, state.stop = shared["total_epochs"], shared["stop"]
        state.stop_reason, state.budget = shared["stop_reason"], shared["budget"]

    def _good_epoch(self) -> dict[str, Any]:
        """One epoch (:meth:`_epoch`); when it diverges, the run is rolled back to where the epoch started and the
        epoch trained again with a tenth of the learning rate (once per run; the second time raises)."""
        snapshot = Snapshot.take(self.run) if self.state.rollbacks < MAX_ROLLBACKS else None
        while True:
            try:
                return self._epoch()
            except Divergence as divergence:
                self._roll_back(snapshot, divergence)

    def _roll_back(self, snapshot: Snapshot | None, divergence: Divergence) -> None:
        """Restore ``snapshot`` with the learning rate lowered; raise when that was done before or cannot help."""
        run, state, lr = self.run, self.state, self.run.config.train.lr
        where = divergence.where(state.epoch + 1)
        if state.epoch == 0 and divergence.step == 1 and state.rollbacks == 0:  # no weight was updated yet
            raise ConfigError(f"training failed at its first step ({where}), before any weight was updated, so the "
                              f"learning rate is not the cause: check the training images in {run.config.data.train} "
                              "for NaN or infinite values, and train.loss_options")
        state.divergences.append(where)
        if state.rollbacks >= MAX_ROLLBACKS or snapshot is None:
            raise TrainingDiverged(diverged_message(run, state))
        snapshot.restore(run)
        state.rollbacks, state.lr_scale = state.rollbacks + 1, state.lr_scale * LR_FACTOR
        log.warning("training diverged (%s): rolled back to %s and lowered the learning rate from %g to %g; "
                    "continuing", where, f"the end of epoch {state.epoch}" if state.epoch else "the initial weights",
                    lr * state.lr_scale / LR_FACTOR, lr * state.lr_scale)

    def _epoch(self) -> dict[str, Any]:
        """One epoch of training, then validation; the epoch's log row.

        Raises:
            Divergence: the epoch diverged (before validation; nothing was recorded).
        """
        run, state, tc = self.run, self.state, self.run.config.train
        started = time.perf_counter()
        run.dataset.set_epoch(state.epoch)
        steps = run.steps_per_epoch
        first_step, total_steps, base_lr = state.epoch * steps, steps * state.total_epochs, tc.lr * state.lr_scale
        budget = self.budget
        lr_of_step, stop = budget.start_epoch(run, state, base_lr) if budget is not None else (
            lambda i: lr_at(first_step + i, total_steps, base_lr, tc.schedule, tc.warmup_epochs * steps), None)
        done = train_steps(self.network.current(), run.loader, run.optimizer, run.loss_fn, run.device, lr_of_step,
                           desc=f"epoch {state.epoch + 1}/{state.total_epochs}", progress=self.progress,
                           precision=run.precision, stop=stop)
        state.first_loss = done.first_loss if state.first_loss is None else state.first_loss
        exploded = explosion(done.mean_loss, state.first_loss,
                             state.history[-1]["train_loss"] if state.history else None)
        if exploded is not None:
            raise exploded
        row: dict[str, Any] = {"epoch": state.epoch + 1, "lr": done.lr, "train_loss": done.mean_loss}
        if done.steps < steps:
            row["steps"] = done.steps  # the time budget ended the epoch early
        if run.data.val_images and budget is not None:
            budget.validate(run, state, row, time.perf_counter() - started, done.steps)
        elif run.data.val_images:
            val_started = time.perf_counter()
            row.update(validation_metrics(run.model, run.data, run.loss_fn, run.device, run.precision))
            row["val_seconds"] = round(time.perf_counter() - val_started, 3)
        row["seconds"] = round(time.perf_counter() - started, 3)
        return row

    def _validated(self, row: dict[str, Any]) -> bool:
        """Whether the epoch of ``row`` was validated (a time budget's plan skips some), or there is no validation
        (then every epoch counts, by its training loss)."""
        return not (self.run.data.val_images and "val_loss" not in row)

    def _update_best(self, row: dict[str, Any]) -> None:
        """Mark the epoch of ``row`` (the last of the history) best when its windowed validation score is at least
        every earlier one (:func:`~unetseg.engine.loop.is_best`); ``best_score`` is the chosen epoch's own score."""
        state = self.state
        if not self._validated(row):
            state.improved = False
            return
        monitor = self.run.config.train.monitor
        state.improved = is_best([monitor_score(r, monitor) for r in state.history if self._validated(r)])
        if state.improved:
            state.best_epoch, state.best_score = state.epoch, monitor_score(row, monitor)

    def _log_start(self) -> None:
        run = self.run
        input_size = run.dataset.input_size
        log.info("model %s (%d parameters), input tile %d -> output %d, %d steps per epoch, device %s, %s",
                 run.model.config["name"], sum(p.numel() for p in run.model.parameters()), input_size,
                 run.model.output_size(input_size), run.steps_per_epoch, run.device, run.precision)

    def _log_epoch(self, row: dict[str, Any]) -> None:
        state, monitor = self.state, self.run.config.train.monitor
        validation = (f"  val loss {row['val_loss']:.4f}  val {monitor} {row.get('val_' + monitor, math.nan):.4f}"
                      if "val_loss" in row else "")
        log.info("epoch %d/%d  loss %.4f%s  %.1fs%s", state.epoch, state.total_epochs, row["train_loss"], validation,
                 row["seconds"], "  (best)" if state.improved else "")


def diverged_message(run: Run, state: TrainState) -> str:
    """The message of :class:`TrainingDiverged`: where it diverged, the lowered learning rate, the last good
    checkpoint and what to do."""
    lowered = run.config.train.lr * state.lr_scale
    earlier = f"; the first time: {'; '.join(state.divergences[:-1])}" if len(state.divergences) > 1 else ""
    last = run.run_dir / LAST
    kept = (f"the last good checkpoint is {last} (epoch {state.epoch})" if last.is_file()
            else f"no epoch ended without diverging, so {run.run_dir} holds no checkpoint (a new run of that name "
                 "reuses the folder)")
    return (f"training diverged twice ({state.divergences[-1]}), also after lowering the learning rate to "
            f"{lowered:g}{earlier}; {kept}; try a lower --lr (below {lowered:g})")


def train(config: Config | None = None, resume: str | Path | None = None, epochs: int | None = None,
          progress: bool = True, callbacks: Sequence[Callback] = (),
          overrides: Mapping[str, Any] | None = None) -> TrainResult:
    """Train a network as ``config`` says, or continue the run in directory ``resume`` exactly where it stopped.

    Settings left unset are chosen from the data by :mod:`unetseg.engine.plan` and recorded in ``recipe.yaml``.
    With ``train.time_budget`` (minutes) the whole call, from reading the data to the final choice of prediction
    settings, ends within the budget (:mod:`unetseg.engine.callbacks.budget`): the recipe caps the patches per
    epoch from a measured training step, training stops on time (inside an epoch if need be; at least one step
    runs), the learning-rate schedule runs over the fraction of the training time spent, and validation and the
    tuning use fixed subsets of the validation images when the whole set would not fit.

    The run directory holds ``config.yaml`` (the resolved configuration), ``recipe.yaml``, ``log.csv``,
    ``curves.png``, ``last.safetensors`` (after every epoch, with the training state) and ``best.safetensors``
    (best validation ``train.monitor``; what prediction needs). After training, with ``train.tune_prediction`` and
    validation images, test-time augmentation, small-object removal and the instance method are chosen on the
    validation set (:mod:`unetseg.inference.tune`), written to ``prediction.yaml`` and stored in
    ``best.safetensors``, where :meth:`unetseg.Predictor.from_checkpoint` finds them. A run directory without
    ``last.safetensors`` (a run stopped before its first epoch ended) is reused by a new run of the same name.

    An epoch that diverges (a non-finite loss, gradient or weight, or an exploding mean loss:
    :mod:`unetseg.engine.divergence`) is rolled back once to where it started and trained again with a tenth of
    the learning rate (kept by a resume); a second divergence raises :class:`TrainingDiverged`, and no checkpoint
    is written from a diverged epoch.

    A resumed run restores the weights, optimizer, epoch, history and random state, so it ends with the same
    weights as a run that was never stopped (on the same device and thread count; with a time budget the number
    of epochs and the learning rates depend on measured times and so may differ). It needs the same training files
    (sizes and modification times) and keeps the time budget that is left.

    Started by ``torchrun`` (in every process: ``torchrun --nproc-per-node N -m unetseg train ...``, or a script
    calling this function), the run trains on all the processes with DistributedDataParallel
    (:mod:`unetseg.engine.distributed`): ``train.batch_size`` is the batch of all processes together, each draws
    its share of every epoch's patches, validation is split over them, and only rank 0 writes the run directory.
    Its checkpoints are those of one process, so it can be resumed on any number of processes that divides the
    batch. Every process returns the run's result (the timings in its history are the process's own).

    Args:
        config: the run configuration (not used with ``resume``, which reads it from the checkpoint).
        resume: a run directory holding ``last.safetensors``.
        epochs: with ``resume``, a new total number of epochs (the schedule is stretched to it; ends a time budget);
            the same as ``overrides={"train.epochs": epochs}``.
        progress: show a progress bar per epoch.
        callbacks: further :class:`~unetseg.engine.callbacks.Callback` objects, called after the default ones (a
            callback can stop the run or log elsewhere).
        overrides: with ``resume``, run options given again (dotted keys such as ``"train.epochs"``, to values).
            ``train.epochs``, ``train.time_budget`` and ``train.num_workers`` may change; a value equal to the
            run's is accepted; any other change raises.

    Raises:
        ConfigError: a bad configuration, a ``resume`` directory that cannot be continued (missing, without
            ``last.safetensors``, other training data) or an override that cannot change.
        TrainingDiverged: (a ConfigError) training diverged twice.
        ProcessesStopped: (a ConfigError) under torchrun, another process of the run ended.
    """
    started = time.perf_counter()  # a time budget's clock: reading the data and building the network count
    config, previous, run_dir = starting_point(config, resume, epochs, overrides)
    with distributed_training(config.train.device) as processes:
        run = assemble_run(config, previous, run_dir)
        processes.run_dir = run.run_dir
        trainer = Trainer(run, default_callbacks(run) + list(callbacks), progress, started)
        if previous is not None:
            trainer.restore(previous)
        state = trainer.fit()
    return TrainResult(run.run_dir, run.run_dir / BEST, run.run_dir / LAST, state.history, state.stop_reason)
