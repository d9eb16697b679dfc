"""``train.time_budget``: a run that ends within its budget whatever the size of the dataset.

The budget (minutes) covers the whole of ``train()``: its clock starts when ``train()`` is called, so reading the
data, planning, training, validation and the choice of the prediction settings all count, and a resumed run
continues with the time the run used before (:meth:`~unetseg.engine.state.TrainState.elapsed`).

- **Epoch length** (:func:`fit_epoch_to_budget`, when the run is assembled): a few training steps are timed on a
  copy of the network, and the recipe's patches per epoch are capped so that an epoch's training steps take at
  most :data:`EPOCH_SHARE` of the budget (:func:`samples_for_budget`). A ``train.samples_per_epoch`` the user set
  is kept.
- **Training stops on time**: between steps, inside an epoch if need be, when the run reaches its deadline
  (:meth:`TimeBudget.deadline`): the budget less what follows training (the validation of the last epoch, the
  callbacks after it, and the choice of the prediction settings). That last epoch is still validated and
  checkpointed.
- **Learning rate**: the schedule runs over the fraction of the training time spent, from the start of training
  to the deadline (:func:`~unetseg.optim.schedules.lr_at_fraction`), so it reaches its end when the time does.
- **Validation**: the first pass is timed image by image over a fixed, seeded order of the validation images
  (:func:`validation_order`); when validating every image after every epoch would take more than
  :data:`VAL_SHARE` of the budget, the run validates the first images of that order and/or every k-th epoch
  (:func:`validation_plan`; the last epoch always). The plan is in the recipe (``train.validation``) and each
  validated epoch's row says how many images it used (``val_images``).
- **Prediction settings** (:class:`~unetseg.engine.callbacks.tuning.TunePrediction`): at most :data:`TUNE_SHARE`
  of the budget is kept for them, estimated from the measured validation time; when 8 passes over every
  validation image would not fit, they are chosen on the first images of the fixed order, or with ``none`` as the
  only test-time augmentation when not even one image fits 8 passes (:func:`tuning_plan`); the settings record it
  (``tuned_on``). When the time left does not hold even that (a step or a pass slowed by another program), one
  image with ``none`` is used if it fits in :data:`OVERRUN_SHARE` of the budget beyond it or costs at most
  :data:`NEGLIGIBLE_SHARE` of it, else the settings are not chosen.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from typing import Any, Callable

import numpy as np
import torch

from ...config import Config
from ...distributed import from_rank_zero, rank_and_world
from ...inference.tta import transforms_needed
from ...inference.tune import TTA_ORDER
from ...optim.schedules import lr_at_fraction
from ..loop import seconds_per_step, validation_metrics
from ..state import Run, TrainState, save_recipe
from .base import Callback

log = logging.getLogger("unetseg")

#: the most of the budget one epoch's training steps take (the recipe's cap on the patches per epoch)
EPOCH_SHARE = 0.10
#: the share of the budget validation may take over the whole run before a subset or every k-th epoch is used
VAL_SHARE = 0.15
#: the most of the budget kept for choosing the prediction settings after training
TUNE_SHARE = 0.10
#: a subset of the validation images is used only when the whole set cannot be validated this many times
MIN_PASSES = 5
#: the overrun a run may have (its share of the budget): the one use of it is the least tuning (one image, ``none``)
#: when nothing fits in the time left; that least tuning is done anyway when it costs at most NEGLIGIBLE_SHARE
OVERRUN_SHARE = 0.05
NEGLIGIBLE_SHARE = 0.01
#: the scoring and the three instance methods with their thresholds, per image, in validation passes (measured on
#: two CPU cores: 1.5 to 3.5 for the methods alone, from unet_bn with 32 features to a 4-feature one on 512 px
#: images; the thresholds add 1.4 (DSB2018) to 3.0 (ISBI 2012) with 32 features, more where passes are fast)
TUNE_POST_PASSES = 6


def samples_for_budget(planned: int, batch_size: int, step_seconds: float, budget_seconds: float) -> int:
    """The patches per epoch under a budget: ``planned``, or fewer whole batches so that an epoch's steps of
    ``step_seconds`` take at most :data:`EPOCH_SHARE` of ``budget_seconds``; at least one batch.

    Example:
        >>> samples_for_budget(4196, 2, 1.5, 720.0)  # 72 s fit 48 steps of 1.5 s
        96
        >>> samples_for_budget(64, 32, 0.1, 60.0), samples_for_budget(64, 32, 9.0, 60.0)
        (64, 32)
    """
    steps = max(1, int(EPOCH_SHARE * budget_seconds / max(step_seconds, 1e-9)))
    return min(planned, steps * batch_size)


def validation_order(n_images: int, seed: int) -> list[int]:
    """The fixed order of the validation images under a budget (a permutation seeded by ``train.seed``): a subset
    is always its first images."""
    return np.random.default_rng([seed, 7]).permutation(n_images).tolist()


def validation_plan(n_images: int, image_seconds: float, epochs: int, allowance: float) -> tuple[int, int]:
    """(images, every): validate the first ``images`` of :func:`validation_order` after every ``every``-th epoch so
    that about ``epochs`` epochs validate in ``allowance`` seconds at ``image_seconds`` per image. The whole set
    every epoch when it fits; else the whole set every k-th epoch when it still fits :data:`MIN_PASSES` times; else
    as many images as fit ``min(epochs, MIN_PASSES)`` passes (at least one).

    Example:
        >>> validation_plan(10, 0.1, 20, 30.0)  # 20 passes of 1 s fit
        (10, 1)
        >>> validation_plan(10, 0.1, 40, 10.0)  # 10 passes fit: every 4th epoch
        (10, 4)
        >>> validation_plan(88, 10.0, 10, 108.0)  # 5 passes of 2 images, every 2nd epoch
        (2, 2)
    """
    full = n_images * image_seconds
    passes = int(allowance // full) if full > 0 else epochs
    if passes >= epochs:
        return n_images, 1
    if passes >= MIN_PASSES:
        return n_images, math.ceil(epochs / passes)
    passes = max(1, min(epochs, MIN_PASSES))
    return max(1, min(n_images, int(allowance // (passes * image_seconds)))), math.ceil(epochs / passes)


def tuning_seconds(images: int, ttas: tuple[str, ...], image_seconds: float) -> float:
    """Estimated seconds of choosing the prediction settings on ``images`` validation images with the
    test-time augmentations ``ttas``: the network passes they need plus :data:`TUNE_POST_PASSES`, per image."""
    return images * (len(transforms_needed(ttas)) + TUNE_POST_PASSES) * image_seconds


def tuning_plan(n_images: int, image_seconds: float, allowance: float) -> tuple[int, tuple[str, ...]]:
    """(images, test-time augmentations) to choose the prediction settings on in ``allowance`` seconds: every
    validation image with every candidate when it fits; else the first images of :func:`validation_order` that
    fit; else, when not one image fits the 8 passes, ``none`` alone on as many images as fit; else (0, ()).

    Example:
        >>> tuning_plan(10, 0.25, 40.0), tuning_plan(10, 0.25, 15.0)  # 3.5 s per image: 8 passes + 6
        ((10, ('none', 'flips', 'd4')), (4, ('none', 'flips', 'd4')))
        >>> tuning_plan(10, 1.0, 11.0), tuning_plan(10, 1.0, 4.0)  # 14 s per image, or 7 s with none
        ((1, ('none',)), (0, ()))
    """
    for ttas in (TTA_ORDER, ("none",)):
        fits = int(allowance // max(tuning_seconds(1, ttas, image_seconds), 1e-12))
        if fits >= 1:
            return min(fits, n_images), ttas
    return 0, ()


def fit_epoch_to_budget(config: Config, recipe: dict[str, Any], model: torch.nn.Module, dataset: Any,
                        loss_fn: Any, device: torch.device, precision: str,
                        optimizer_factory: Callable[[Any], torch.optim.Optimizer]) -> tuple[Config, dict[str, Any]]:
    """The recipe's ``train.samples_per_epoch`` of a new run with ``train.time_budget``, capped by
    :func:`samples_for_budget` from the measured seconds of one training step (:func:`seconds_per_step`, on a copy
    of ``model`` with the run's optimizer, ``optimizer_factory(parameters)``); returns (new config, new recipe with
    the choice and the measured time), and sets the patches of ``dataset``. Call it only when the recipe chose the
    patches per epoch."""
    tc = config.train
    key, minutes = "train.samples_per_epoch", tc.time_budget
    seconds = from_rank_zero(seconds_per_step(model, dataset, tc.batch_size, optimizer_factory, loss_fn, device,
                                              precision, tc.num_workers or 0))  # several processes: rank 0's clock
    planned = tc.samples_per_epoch
    samples = samples_for_budget(planned, tc.batch_size, seconds, minutes * 60.0)
    steps = math.ceil(samples / tc.batch_size)
    measured = f"a training step of {tc.batch_size} patches measured {seconds:.3g} s"
    if samples < planned:
        reason = (f"{recipe[key]['reason']} would be {planned} ({math.ceil(planned / tc.batch_size)} steps); "
                  f"{measured}, so {steps} step(s) keep an epoch's training within {EPOCH_SHARE:.0%} of the "
                  f"{minutes:g}-minute budget")
    else:
        reason = (f"{recipe[key]['reason']}; {measured}: {steps} step(s) take about {steps * seconds:.3g} s, "
                  f"within {EPOCH_SHARE:.0%} of the {minutes:g}-minute budget")
    dataset.samples_per_epoch = samples
    new = copy.deepcopy(config)
    new.train = dataclasses.replace(new.train, samples_per_epoch=samples)
    return new, {**recipe, key: {"value": samples, "reason": reason}}


class TimeBudget(Callback):
    """Keeps a run within ``train.time_budget``: the deadline training stops at, the fraction of the training time
    spent (the learning-rate schedule's clock), the validation plan, and at the end the plan of the tuning; after
    every epoch the number of epochs is re-estimated from the measured epoch times (for the log: training stops at
    the deadline, not at that number). At the start of a resumed run, the plan and the time used come from the
    checkpoint (:attr:`TrainState.budget`, :meth:`TrainState.elapsed`), so it continues with the budget left.

    What it has measured and decided is kept in ``state.budget`` (stored in the checkpoints): ``train_start`` (the
    run's elapsed seconds when training started; 0 for a run given its budget when resumed), ``warmup_end`` (the
    fraction spent when the warm-up ended), ``image_seconds`` (a validation image's measured seconds, the median
    of the last five passes), ``val_images`` and ``val_every`` (the validation plan), ``overhead`` (the seconds of
    the callbacks after an epoch, the largest of the last five) and, at the end, ``tune`` (the tuning plan).

    Args:
        minutes: the budget for the whole run.
        tune: the prediction settings are chosen after training (time is kept for it).
    """

    def __init__(self, minutes: float, tune: bool = False) -> None:
        self.budget = minutes * 60.0
        self.tune = tune
        self.n_val = 0
        # the wall time from one epoch end to the next: an epoch's training and validation plus the callbacks
        # after the epoch before (checkpoints, logs, curves), which the rows' "seconds" leave out
        self._cycles: list[float] = []
        self._overheads: list[float] = []
        self._image_seconds: list[float] = []
        self._last_end = time.perf_counter()
        self._epoch_end: float | None = None  # when on_epoch_end ran, until the next epoch starts
        self._stopped_logged = False

    # -- what the trainer asks between steps and around validation

    def reserve(self, state: TrainState) -> float:
        """Seconds kept after training: a validation pass, the callbacks after an epoch and the tuning (before the
        first validation is measured: :data:`VAL_SHARE` and :data:`TUNE_SHARE` of the budget)."""
        plan, overhead = state.budget, state.budget.get("overhead", 0.0)
        seconds = plan.get("image_seconds")
        if seconds is None:
            return overhead + (VAL_SHARE * self.budget if self.n_val else 0.0) + \
                (TUNE_SHARE * self.budget if self.tune else 0.0)
        tuning = tuning_seconds(*tuning_plan(self.n_val, seconds, TUNE_SHARE * self.budget), seconds) + overhead \
            if self.tune else 0.0
        return overhead + plan["val_images"] * seconds + tuning

    def deadline(self, state: TrainState) -> float:
        """The run's elapsed seconds at which training stops."""
        return self.budget - self.reserve(state)

    def training_over(self, state: TrainState) -> bool:
        """True once the training share of the budget is spent (with several processes: on rank 0's clock)."""
        return from_rank_zero(state.elapsed() >= self.deadline(state))

    def fraction(self, state: TrainState) -> float:
        """The fraction of the training time spent: 0 when training started, 1 at the deadline."""
        start = state.budget.get("train_start", 0.0)
        span = self.deadline(state) - start
        return from_rank_zero(1.0 if span <= 0 else (state.elapsed() - start) / span)

    def start_epoch(self, run: Run, state: TrainState,
                    base_lr: float) -> tuple[Callable[[int], float], Callable[[], bool]]:
        """Called by the trainer when an epoch starts: notes how long the callbacks after the previous epoch took
        (``overhead``: the largest of the last five, as the last epoch's may also write ``best.safetensors``), and
        returns the learning rate of the epoch's step i (the warm-up in steps, then the schedule over
        :meth:`fraction`: :func:`~unetseg.optim.schedules.lr_at_fraction`) and the check that ends it on time."""
        if self._epoch_end is not None:
            self._overheads.append(time.perf_counter() - self._epoch_end)
            state.budget["overhead"] = round(max(self._overheads[-5:]), 3)
            self._epoch_end = None
        tc, steps = run.config.train, run.steps_per_epoch
        warmup, first = tc.warmup_epochs * steps, state.epoch * steps

        def lr(i: int) -> float:
            fraction = self.fraction(state)
            if first + i >= warmup and "warmup_end" not in state.budget:
                state.budget["warmup_end"] = round(fraction, 6) if warmup else 0.0
            return lr_at_fraction(fraction, base_lr, tc.schedule, first + i, warmup,
                                  state.budget.get("warmup_end", 0.0))
        return lr, lambda: self.training_over(state)

    def validate(self, run: Run, state: TrainState, row: dict[str, Any], train_seconds: float, steps: int) -> None:
        """Validate the epoch that just trained (``steps`` steps in ``train_seconds``) as the plan says, adding the
        metrics and ``val_seconds`` to ``row``; the first time, measure and decide the plan while validating."""
        data, plan = run.data, state.budget
        order = validation_order(len(data.val_images), run.config.train.seed)
        started = time.perf_counter()
        if "image_seconds" not in plan:
            epochs = self._expected_epochs(state, train_seconds / steps * run.steps_per_epoch)
            allowance = VAL_SHARE * self.budget

            def enough(done: int, seconds: float) -> bool:
                return done >= validation_plan(len(order), seconds / done, epochs, allowance)[0]
            row.update(validation_metrics(run.model, data, run.loss_fn, run.device, run.precision, order, enough))
            self._measured(state, (time.perf_counter() - started) / row["val_images"])
            plan["val_images"] = row["val_images"]
            plan["val_every"] = validation_plan(len(order), plan["image_seconds"], epochs, allowance)[1]
            self._record_validation(run, state, epochs)
        elif steps < run.steps_per_epoch or self.training_over(state) or (state.epoch + 1) % plan["val_every"] == 0:
            row.update(validation_metrics(run.model, data, run.loss_fn, run.device, run.precision,
                                          order[:plan["val_images"]]))
            self._measured(state, (time.perf_counter() - started) / row["val_images"])
        else:
            return
        row["val_seconds"] = round(time.perf_counter() - started, 3)

    def _measured(self, state: TrainState, image_seconds: float) -> None:
        """Note a validation pass's seconds per image: the plan uses the median of the last five (one pass slowed
        by another program moves the deadline less)."""
        if not self._image_seconds and "image_seconds" in state.budget:  # a resumed run: the stored estimate
            self._image_seconds.append(state.budget["image_seconds"])
        self._image_seconds.append(image_seconds)
        state.budget["image_seconds"] = float(np.median(self._image_seconds[-5:]))

    def _expected_epochs(self, state: TrainState, epoch_seconds: float) -> int:
        """About how many epochs of ``epoch_seconds`` training the budget holds."""
        share = self.budget * (1.0 - VAL_SHARE - (TUNE_SHARE if self.tune else 0.0))
        return max(1, round((share - state.budget.get("train_start", 0.0)) / max(epoch_seconds, 1e-9)))

    def _record_validation(self, run: Run, state: TrainState, epochs: int) -> None:
        """The validation plan into the recipe (``train.validation``, ``recipe.yaml``) and the log."""
        plan, n = state.budget, self.n_val
        every = plan["val_every"]
        value = f"{plan['val_images']} of {n} images" + (f", every {every} epochs" if every > 1 else ", every epoch")
        reason = (f"a validation image measured {plan['image_seconds']:.3g} s; about {epochs} epoch(s) fit the "
                  f"{self.budget / 60:g}-minute budget, and validation is kept to about {VAL_SHARE:.0%} of it "
                  "(a fixed, seeded subset, the last epoch always validated)")
        run.recipe["train.validation"] = {"value": value, "reason": reason}
        if rank_and_world()[0] == 0:
            save_recipe(run.run_dir, run.recipe)
        log.info("recipe: train.validation = %s (%s)", value, reason)

    # -- the callback hooks

    def on_start(self, run: Run, state: TrainState) -> None:
        self.n_val = len(run.data.val_images)
        self._last_end = time.perf_counter()
        state.budget.setdefault("train_start", round(state.elapsed(), 3) if not state.history else 0.0)
        if not state.history:
            return
        self._refit(state)
        log.info("time budget: %.1f of %g minutes used after epoch %d; %d epoch(s) in all fit", state.elapsed() / 60,
                 self.budget / 60, state.epoch, state.total_epochs)

    def on_epoch_end(self, run: Run, state: TrainState, row: dict[str, Any]) -> None:
        now = time.perf_counter()
        self._cycles.append(max(now - self._last_end, row["seconds"]))
        self._last_end = self._epoch_end = now
        self._refit(state)

    def on_end(self, run: Run, state: TrainState) -> None:
        seconds = state.budget.get("image_seconds")
        if not self.tune or seconds is None:
            return
        left = self.budget - state.elapsed() - state.budget.get("overhead", 0.0)
        images, ttas = tuning_plan(self.n_val, seconds, left)
        least = tuning_seconds(1, ("none",), seconds)
        if not images and least <= max(left + OVERRUN_SHARE * self.budget, NEGLIGIBLE_SHARE * self.budget):
            images, ttas = 1, ("none",)  # the time ran short (a slow step or pass): the least tuning
        state.budget["tune"] = {"images": images, "tta": list(ttas), "image_seconds": seconds,
                                "seconds": round(tuning_seconds(images, ttas, seconds), 3), "left": round(left, 3)}
        if images < self.n_val or ttas != TTA_ORDER:
            log.info("time budget: %.1f s left: the prediction settings are chosen on %d of %d validation images%s",
                     left, images, self.n_val, " with tta none only" if ttas == ("none",) else "")

    def _refit(self, state: TrainState) -> None:
        """The epochs in all: those done, plus the epochs (the last one partial) that fit before the deadline."""
        left = self.deadline(state) - state.elapsed()
        if left <= 0 and self.n_val and state.history and "val_loss" not in state.history[-1]:
            state.total_epochs = state.epoch + 1  # the deadline moved past an epoch left unvalidated: one more step
            return
        if left <= 0:
            state.total_epochs = state.epoch
            if not self._stopped_logged:
                self._stopped_logged = True
                log.info("time budget: training ends after %d epoch(s), at %.1f of %g minutes (%.1f s kept for "
                         "validation, checkpoints and the prediction settings)", state.epoch, state.elapsed() / 60,
                         self.budget / 60, self.reserve(state))
            return
        recent = (self._cycles or [row["seconds"] for row in state.history])[-5:]
        state.total_epochs = state.epoch + max(1, math.ceil(left / max(float(np.median(recent)), 1e-6)))
