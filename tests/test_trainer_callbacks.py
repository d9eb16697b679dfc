"""The trainer's extension points: user callbacks, the checkpoint split (best for prediction, last for resume)."""

from __future__ import annotations

import csv

import pytest
from safetensors import safe_open

from unetseg import Callback, train
from unetseg.checkpoint import load_checkpoint

from conftest import tiny_config


class Recorder(Callback):
    """Records the hook calls; stops the run after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls: list[str] = []
        self.stop_after = stop_after

    def on_start(self, run, state):
        self.calls.append(f"start:{state.epoch}/{state.total_epochs}")

    def on_epoch_end(self, run, state, row):
        assert state.history[-1] is row and (run.run_dir / "last.safetensors").exists()
        self.calls.append(f"epoch:{row['epoch']}")
        if self.stop_after is not None and state.epoch >= self.stop_after:
            state.stop, state.stop_reason = True, "enough"

    def on_end(self, run, state):
        self.calls.append("end")


def test_a_callback_sees_every_epoch_and_can_stop_the_run(tiny_data, tmp_path):
    recorder = Recorder(stop_after=2)
    config = tiny_config(tiny_data, tmp_path, epochs=5)
    config.train.tune_prediction = False
    result = train(config, progress=False, callbacks=[recorder])
    assert recorder.calls == ["start:0/5", "epoch:1", "epoch:2", "end"]
    assert len(result.history) == 2 and result.stop_reason == "enough"
    assert len(list(csv.DictReader(open(result.run_dir / "log.csv")))) == 2
    assert load_checkpoint(result.last_checkpoint).epoch == 2


def test_best_holds_what_prediction_needs_and_last_the_training_state(tiny_data, tmp_path):
    result = train(tiny_config(tiny_data, tmp_path, epochs=2), progress=False)
    best, last = load_checkpoint(result.best_checkpoint), load_checkpoint(result.last_checkpoint)
    assert best.optimizer_state is None and best.torch_rng_state is None
    assert last.optimizer_state is not None and last.torch_rng_state is not None
    assert best.prediction is not None and best.recipe == last.recipe and best.best_score == last.best_score
    assert best.class_names == ["background", "foreground"] and best.normalization == last.normalization
    with safe_open(str(result.best_checkpoint), "pt") as f:
        keys = list(f.keys())
        weights = sum(f.get_tensor(k).numel() * f.get_tensor(k).element_size() for k in keys)
    assert all(k.startswith("model/") for k in keys)
    assert result.best_checkpoint.stat().st_size <= 1.05 * weights + 64 * 1024  # weights + JSON header only
    weight_bytes = sum(v.numel() * v.element_size() for v in best.model_state.values())
    assert weights == weight_bytes
    assert result.last_checkpoint.stat().st_size > 2 * weight_bytes  # Adam's two moments per weight


def test_resume_continues_a_time_budget_run(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path, epochs=None)
    config.train.time_budget, config.train.tune_prediction = 10.0, False

    class Interrupt(Callback):
        def on_epoch_end(self, run, state, row):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, callbacks=[Interrupt()])
    run_dir = tmp_path / "run"
    planned = load_checkpoint(run_dir / "last.safetensors").run_state["total_epochs"]
    assert planned > 1  # fitted to the 10-minute budget after the first epoch
    resumed = train(resume=run_dir, epochs=3, progress=False)  # a new total: ends the budget
    assert len(resumed.history) == 3
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert load_checkpoint(run_dir / "last.safetensors").run_state["total_epochs"] == 3
