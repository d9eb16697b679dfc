"""``--time-budget``: epochs sized from a measured step, a learning-rate schedule over the time spent, training that
stops on time, validation and tuning that fit, and a resumed run that continues with the time left."""

from __future__ import annotations

import math
import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

import unetseg.engine.loop as loop
import unetseg.engine.trainer as trainer_module
import unetseg.inference.tune as tune_module
from unetseg import Callback, Config, train
from unetseg.checkpoint import load_checkpoint
from unetseg.data.patches import PatchDataset
from unetseg.data.synthetic import write_synthetic_dataset
from unetseg.engine.callbacks.budget import (TUNE_POST_PASSES, TUNE_SHARE, VAL_SHARE, TimeBudget, fit_epoch_to_budget,
                                             samples_for_budget, tuning_plan, tuning_seconds, validation_order,
                                             validation_plan)
from unetseg.data.normalize import Normalization
from unetseg.engine.callbacks.tuning import _budget_subset
from unetseg.engine.setup import RunData
from unetseg.engine.state import TrainState
from unetseg.losses import build_loss
from unetseg.models import create_model
from unetseg.optim import build_optimizer
from unetseg.optim.schedules import lr_at_fraction

from conftest import tiny_config

BUDGET = 0.15  # minutes: 9 s for the whole train() call


# -- the pure parts, with hand-computed values

def test_lr_over_the_fraction_of_the_time_spent():
    assert lr_at_fraction(0.0, 1.0) == 1.0 and lr_at_fraction(0.5, 1.0) == 0.5
    assert lr_at_fraction(1.0, 1.0) == 0.0 and lr_at_fraction(1.7, 1.0) == 0.0  # the end holds past the deadline
    assert lr_at_fraction(0.25, 2.0) == pytest.approx(2.0 * (1 + math.sqrt(0.5)) / 2)  # cos(pi/4)
    assert lr_at_fraction(0.5, 1.0, "poly") == pytest.approx(0.5 ** 0.9)
    assert lr_at_fraction(0.9, 0.3, "constant") == 0.3
    # warm-up in steps (whatever the time), then the schedule from the fraction at which the warm-up ended
    assert [lr_at_fraction(0.3, 1.0, "cosine", s, 4, 0.2) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at_fraction(0.2, 1.0, "cosine", 4, 4, 0.2) == 1.0
    assert lr_at_fraction(0.6, 1.0, "cosine", 9, 4, 0.2) == pytest.approx(0.5)  # half-way from 0.2 to 1
    assert lr_at_fraction(1.0, 1.0, "cosine", 9, 4, 0.2) == 0.0


def test_epoch_cap_arithmetic():
    # the failure this prevents: 2,098 steps of 2 photographs' patches planned for a 12-minute budget; at 1.5 s
    # per step a tenth of the budget (72 s) holds 48 steps
    assert samples_for_budget(2 * 2098, 2, 1.5, 12 * 60.0) == 96
    assert samples_for_budget(64, 32, 0.1, 60.0) == 64  # 59 steps would fit: the planned 2 stay
    assert samples_for_budget(64, 32, 9.0, 60.0) == 32  # not one step fits: one batch all the same
    assert samples_for_budget(100, 4, 0.5, 100.0) == 80  # 10 s / 0.5 s = 20 steps of 4


def test_validation_and_tuning_plans():
    assert validation_plan(10, 0.1, 20, 30.0) == (10, 1)  # 20 whole passes of 1 s fit in 30 s
    assert validation_plan(10, 0.1, 40, 10.0) == (10, 4)  # 10 whole passes fit: every 4th of 40 epochs
    assert validation_plan(88, 10.0, 10, 108.0) == (2, 2)  # 5 passes of 2 images (100 s), every 2nd epoch
    assert validation_plan(88, 10.0, 2, 108.0) == (5, 1)  # 2 passes of 5 images (100 s)
    assert validation_plan(3, 100.0, 1, 10.0) == (1, 1)  # at least one image
    assert tuning_seconds(10, ("none", "flips", "d4"), 0.5) == 10 * (8 + TUNE_POST_PASSES) * 0.5
    assert tuning_seconds(3, ("none",), 2.0) == 3 * (1 + TUNE_POST_PASSES) * 2.0
    # per image: the 8 passes of d4 (or 1 of none) and TUNE_POST_PASSES = 6 for the scoring and the objects
    assert TUNE_POST_PASSES == 6
    assert tuning_plan(10, 0.25, 40.0) == (10, ("none", "flips", "d4"))  # 35 s: all of it
    assert tuning_plan(10, 0.25, 15.0) == (4, ("none", "flips", "d4"))  # 3.5 s per image
    assert tuning_plan(10, 1.0, 11.0) == (1, ("none",))  # 14 s > 11 s for one image with 8 passes; 7 s with 1
    assert tuning_plan(10, 1.0, 4.0) == (0, ())
    order = validation_order(20, seed=3)
    assert sorted(order) == list(range(20)) and order == validation_order(20, seed=3) != validation_order(20, 4)


def _state(elapsed: float, **budget) -> TrainState:
    state = TrainState(budget=dict(budget))
    state.started, state.elapsed_before = time.perf_counter(), elapsed
    return state


def test_deadline_reserves_and_time_fraction():
    budget = TimeBudget(1.0, tune=True)  # 60 s
    budget.n_val = 10
    # before validation is measured: 15% (validation) and 10% (tuning) of the budget are kept
    assert budget.deadline(_state(3.0, train_start=3.0)) == pytest.approx(45.0)
    # measured: one pass of 4 images of 0.25 s, 0.5 s of checkpoints, tuning on the 1 image whose 14 passes of
    # 0.25 s fit in 6 s (+ the checkpoint it rewrites): 60 - (0.5 + 1.0 + 3.5 + 0.5) = 54.5
    state = _state(29.0, train_start=6.0, image_seconds=0.25, val_images=4, val_every=1, overhead=0.5)
    assert budget.reserve(state) == pytest.approx(5.5) and budget.deadline(state) == pytest.approx(54.5)
    assert budget.fraction(state) == pytest.approx((29.0 - 6.0) / (54.5 - 6.0), abs=1e-4)
    assert not budget.training_over(state) and budget.training_over(_state(55.0, **state.budget))
    no_tuning = TimeBudget(1.0)
    no_tuning.n_val = 10
    assert no_tuning.deadline(state) == pytest.approx(60.0 - 0.5 - 1.0)


def test_the_tuning_plan_takes_the_time_left():
    budget = TimeBudget(1.0, tune=True)  # 60 s
    budget.n_val = 10
    plans = []
    for elapsed in (50.0, 59.9, 63.0):
        state = _state(elapsed, image_seconds=0.25, val_images=4, val_every=1, overhead=0.5)
        budget.on_end(None, state)
        plans.append((state.budget["tune"]["images"], state.budget["tune"]["tta"]))
    assert plans[0] == (2, ["none", "flips", "d4"])  # 9.5 s left: 2 images of 14 passes of 0.25 s
    assert plans[1] == (1, ["none"])  # 0.4 s over: one image with one pass (7 x 0.25 s) fits in 5% (3 s) beyond it
    assert plans[2] == (0, [])  # 3.5 s over: not even that, and it would cost more than 1% (0.6 s)


def tiny_network_and_images(size: int, n: int):
    """A seeded tiny network, ``n`` random images of ``size`` x ``size`` and random binary labels."""
    torch.manual_seed(0)
    model = create_model("unet_bn", in_channels=1, num_classes=1, base_channels=4, depth=2)
    rng = np.random.default_rng(0)
    images = [rng.normal(size=(1, size, size)).astype(np.float32) for _ in range(n)]
    labels = [(rng.random((size, size)) > 0.5).astype(np.uint8) for _ in range(n)]
    return model, images, labels


def test_validation_on_given_images_until_enough():
    model, images, labels = tiny_network_and_images(32, 5)
    data = RunData(images, labels, images, labels, list("abcde"), None, 2, 1, ["background", "foreground"],
                   Normalization())
    loss, cpu = build_loss("bce_dice", 1), torch.device("cpu")
    whole = loop.validation_metrics(model, data, loss, cpu)
    assert "val_images" not in whole  # without a budget: every image, the row as it always was
    reordered = loop.validation_metrics(model, data, loss, cpu, images=[4, 3, 2, 1, 0])
    assert reordered["val_loss"] == pytest.approx(whole["val_loss"]) and reordered["val_images"] == 5
    seen = []
    part = loop.validation_metrics(model, data, loss, cpu, images=[3, 1, 4, 0, 2],
                                   enough=lambda done, seconds: seen.append((done, seconds)) or done >= 2)
    assert part["val_images"] == 2 and [done for done, _ in seen] == [1, 2] and seen[1][1] >= seen[0][1] > 0
    two = loop.validation_metrics(model, data, loss, cpu, images=[3, 1])
    assert part["val_loss"] == two["val_loss"] and two["val_images"] == 2


def test_tuning_with_none_alone_needs_one_pass_per_image(monkeypatch):
    passes = []
    monkeypatch.setattr(tune_module, "padded_forward", lambda model, x: passes.append(1) or 20 * (x[:, :1] - 0.5))
    truth = np.zeros((40, 40), np.uint8)
    truth[10:30, 10:30] = 1
    image = truth.astype(np.float32)[None]
    chosen = tune_module.tune_prediction(torch.nn.Identity(), [image, image], [truth, truth], 2, [truth],
                                         torch.device("cpu"), ttas=("none",))
    assert len(passes) == 2 and chosen.tta == "none"
    assert all(key.startswith("tta=none ") for key in chosen.scores) and chosen.tuned_on == {}
    passes.clear()
    tune_module.tune_prediction(torch.nn.Identity(), [image], [truth], 2, [truth], torch.device("cpu"))
    assert len(passes) == 8  # every candidate: the eight flips and turns


def test_tuning_subset_is_the_first_of_the_fixed_order():
    run = SimpleNamespace(data=SimpleNamespace(val_images=[None] * 6), config=Config())
    order = validation_order(6, Config().train.seed)
    assert _budget_subset(run, None) is None  # no budget
    assert _budget_subset(run, {"images": 6, "tta": ["none", "flips", "d4"]}) is None  # everything fits
    assert _budget_subset(run, {"images": 2, "tta": ["none", "flips", "d4"]}) == order[:2]
    assert _budget_subset(run, {"images": 6, "tta": ["none"]}) == order


# -- the recipe's step measurement

def test_fit_epoch_measures_a_copy_and_caps_the_patches_per_epoch():
    model, images, labels = tiny_network_and_images(64, 4)
    dataset = PatchDataset(images, labels, 32, 32, 64, augment=True, seed=1)
    config = Config()
    config.train.batch_size, config.train.samples_per_epoch, config.train.time_budget = 2, 64, 1e-4  # 6 ms
    recipe = {"train.samples_per_epoch": {"value": 64, "reason": "patches covering the pixels once"}}
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.get_rng_state()
    resolved, chosen = fit_epoch_to_budget(config, recipe, model, dataset, build_loss("bce_dice", 1),
                                           torch.device("cpu"), "fp32",
                                           lambda params: build_optimizer(config.train.optimizer, params, lr=1e-3))
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())  # the network is untouched
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert resolved.train.samples_per_epoch == 2 == dataset.samples_per_epoch  # one batch: no step fits 0.6 ms
    assert config.train.samples_per_epoch == 64 and recipe["train.samples_per_epoch"]["value"] == 64  # not changed
    reason = chosen["train.samples_per_epoch"]["reason"]
    assert reason.startswith("patches covering the pixels once would be 64 (32 steps); a training step of 2 "
                             "patches measured ") and float(re.search(r"measured ([0-9.e+-]+) s", reason)[1]) > 0


# -- whole runs on many small training images and large validation images

@pytest.fixture(scope="module")
def budget_data(tmp_path_factory):
    """48 training images of 64x64 and 4 validation images of 256x256."""
    root = tmp_path_factory.mktemp("budget")
    return (write_synthetic_dataset(root / "train", 48, 64, 64, seed=1),
            write_synthetic_dataset(root / "val", 4, 256, 256, seed=2))


def budget_config(data, out, tune: bool = True) -> Config:
    """The recipe chooses the patches per epoch (batches of 2 patches of 32 px keep the steps short)."""
    config = tiny_config(data[0], out, epochs=None)
    config.data.val = str(data[1])
    tc = config.train
    tc.time_budget, tc.tune_prediction, tc.precision = BUDGET, tune, "fp32"
    tc.batch_size, tc.patch_size, tc.samples_per_epoch = 2, 32, None
    return config


class StepTimes:
    """Records every training step of the engine (the recipe's measurement too): its start, duration and rate."""

    def __init__(self, monkeypatch) -> None:
        self.steps: list[tuple[float, float, float]] = []
        step = loop.training_step

        def timed(model, batch, optimizer, *args, **kwargs):
            started = time.perf_counter()
            loss = step(model, batch, optimizer, *args, **kwargs)
            self.steps.append((started, time.perf_counter() - started, optimizer.param_groups[0]["lr"]))
            return loss
        monkeypatch.setattr(loop, "training_step", timed)

    def longest(self) -> float:
        return max(seconds for _, seconds, _ in self.steps)


class AtStart(Callback):
    """Notes the run's elapsed time (first) and the wall clock when training starts."""

    def on_start(self, run, state):
        self.elapsed, self.at = state.elapsed(), time.perf_counter()


def started_late(watch: AtStart) -> bool:
    """Whether reading the data and timing the recipe's steps took the training share of the budget already (the
    share kept before validation is measured): only on a machine other programs slow down a lot."""
    return watch.elapsed >= (1 - VAL_SHARE - TUNE_SHARE) * BUDGET * 60


class EpochEndTimes:
    """Records the wall time of the default callbacks' work after every epoch (checkpoints, log, curves): the run
    keeps time for it from what it measured before, which a slowed disk or machine can exceed once."""

    def __init__(self, monkeypatch) -> None:
        self.seconds: list[float] = []
        build = trainer_module.default_callbacks

        def timed(run):
            callbacks = build(run)
            first, last = callbacks[0], callbacks[-1]
            start_of, end_of = first.on_epoch_end, last.on_epoch_end

            def starts(run, state, row):
                self._started = time.perf_counter()
                start_of(run, state, row)

            def ends(run, state, row):
                end_of(run, state, row)
                self.seconds.append(time.perf_counter() - self._started)
            first.on_epoch_end, last.on_epoch_end = starts, ends  # (first is last for a single callback: not here)
            return callbacks
        monkeypatch.setattr(trainer_module, "default_callbacks", timed)

    def longest(self) -> float:
        return max(self.seconds, default=0.0)


def overrun_allowed(history, steps: StepTimes, ends: EpochEndTimes) -> float:
    """What a run may take beyond its budget: 5% of it, one validation pass, the step in flight when the deadline
    passed and the work after an epoch (each the slowest measured: another program on the machine can slow one)."""
    return 0.05 * BUDGET * 60 + max(row.get("val_seconds", 0.0) for row in history) + steps.longest() + \
        ends.longest()


def test_a_budget_run_ends_on_time_with_the_schedule_at_its_end(budget_data, tmp_path, monkeypatch):
    steps, ends, watch = StepTimes(monkeypatch), EpochEndTimes(monkeypatch), AtStart()
    called = time.perf_counter()
    result = train(budget_config(budget_data, tmp_path), progress=False, callbacks=[watch])
    wall = time.perf_counter() - called  # the budget's clock starts when train() is called: nothing is left out
    history = result.history
    if started_late(watch):  # the least a run does: one step (at the schedule's end), one validation pass
        assert len(history) == 1 and history[0].get("steps", 1) == 1 and history[0]["lr"] == 0.0
    else:
        assert wall <= BUDGET * 60 + overrun_allowed(history, steps, ends)
        assert_schedule_ends_with_the_time(steps, history)
    recipe = yaml.safe_load((result.run_dir / "recipe.yaml").read_text())
    chosen = recipe["train.samples_per_epoch"]
    step = float(re.search(r"a training step of 2 patches measured ([0-9.e+-]+) s", chosen["reason"])[1])
    planned = 48 * 64 * 64 // (32 * 32)  # patches covering the training pixels once
    # the steps of at most a tenth of the budget (the printed time has 3 digits), at least one batch
    assert chosen["value"] % 2 == 0 and 2 <= chosen["value"] <= planned
    chosen_steps = chosen["value"] // 2
    assert chosen_steps == 1 or chosen_steps * step <= 0.1 * BUDGET * 60 * 1.01
    assert chosen["value"] == planned or (chosen_steps + 1) * step > 0.1 * BUDGET * 60 * 0.99
    assert load_config_samples(result) == chosen["value"]
    assert "train.validation" in recipe and load_checkpoint(result.best_checkpoint).recipe == recipe
    prediction = result.run_dir / "prediction.yaml"
    if prediction.exists():  # chosen in the time that was left; what it was chosen on is recorded when limited
        tuned = yaml.safe_load(prediction.read_text())
        assert not tuned["tuned_on"] or tuned["tuned_on"]["of"] == 4


def assert_schedule_ends_with_the_time(steps: StepTimes, history) -> None:
    """The rate follows the time spent: the first step near the peak, the last near the schedule's end. The last
    step started at most its own length d before the deadline, so at a fraction of at least 1 - d / W of the
    training window W (which is at least the time from the first step to the end of the last)."""
    training = steps.steps[3:]  # after the recipe's 3 measured steps
    first, last = training[0], training[-1]
    assert first[2] > 0.5e-2
    fraction = max(0.0, 1.0 - last[1] / (last[0] + last[1] - first[0]))
    assert last[2] <= 1e-2 * 0.5 * (1 + math.cos(math.pi * fraction)) + 2e-4 and history[-1]["lr"] == last[2]


def load_config_samples(result) -> int:
    return load_checkpoint(result.last_checkpoint).run_config["train"]["samples_per_epoch"]


class Interrupt(Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) after the checkpoints of epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, run, state, row):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


def test_a_resumed_budget_run_continues_with_the_time_left(budget_data, tmp_path, monkeypatch):
    steps, ends, first = StepTimes(monkeypatch), EpochEndTimes(monkeypatch), AtStart()
    called = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        train(budget_config(budget_data, tmp_path, tune=False), progress=False, callbacks=[first, Interrupt(1)])
    first_wall = time.perf_counter() - called
    run_dir = tmp_path / "run"
    stopped = load_checkpoint(run_dir / "last.safetensors")
    counted, plan = stopped.run_state["elapsed"], stopped.run_state["budget"]
    assert counted <= first_wall and {"train_start", "image_seconds", "val_images", "val_every"} <= set(plan)
    watch = AtStart()
    called = time.perf_counter()
    resumed = train(resume=run_dir, progress=False, callbacks=[watch])
    second_wall = time.perf_counter() - called
    # the time used before counts, once: the resumed clock starts at it when train() is called
    assert counted <= watch.elapsed <= counted + (watch.at - called)
    final = load_checkpoint(run_dir / "last.safetensors").run_state
    assert final["budget"]["train_start"] == plan["train_start"]  # one schedule over both processes
    assert final["budget"]["val_images"] == plan["val_images"]  # validation on the same images
    # both processes together: the budget, plus what the stopped one did after its checkpoint (not counted)
    unrecorded = first_wall - counted
    if not started_late(first):
        assert first_wall + second_wall <= BUDGET * 60 + overrun_allowed(resumed.history, steps, ends) + unrecorded
    if "steps" not in stopped.history[0]:  # (unless a slowed machine spent the budget in the first epoch)
        assert len(resumed.history) >= 2 and resumed.history[-1]["lr"] < resumed.history[0]["lr"]
