"""Training that diverges: a diverged epoch is rolled back once with a tenth of the learning rate; a second
divergence stops the run with TrainingDiverged (a ConfigError: exit 2 with one clear message)."""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch

import unetseg.engine.run as run_module
from unetseg import Callback, train
from unetseg.checkpoint import load_checkpoint
from unetseg.config import ConfigError, save_config
from unetseg.engine.divergence import Divergence, TrainingDiverged, explosion
from unetseg.engine.loop import train_steps

from conftest import tiny_config


def nan_loss_at(monkeypatch: pytest.MonkeyPatch, *calls: int) -> None:
    """Make the training loss NaN at the given training steps of the run (counted from 1 over all epochs and
    attempts; validation is not counted). With 6 samples in batches of 2, epoch 1 is steps 1-3."""
    real = run_module.build_training_loss

    def build(config, num_outputs):
        loss, count = real(config, num_outputs), itertools.count(1)

        def poisoned(out, target, **kwargs):
            value = loss(out, target, **kwargs)
            if out.requires_grad and next(count) in calls:
                return value * math.nan
            return value
        return poisoned

    monkeypatch.setattr(run_module, "build_training_loss", build)




def weights(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model_state


def test_the_explosion_rule():
    assert explosion(0.9, 1.0, None) is None  # a first epoch near the untrained loss
    assert explosion(9.9, 1.0, 5.0) is None  # high, but not 10x
    assert explosion(50.0, 1.0, 80.0) is None  # 10x, but coming back down
    assert explosion(50.0, 1.0, 20.0).where(4) == ("mean training loss 50 at epoch 4, over 10x the untrained "
                                                   "network's loss 1")
    assert explosion(1e11, None, None) is None and explosion(1e11, 0.0, None) is None  # no scale to compare with
    assert Divergence("loss nan", step=5).where(3) == "loss nan at epoch 3, step 5"


def test_train_steps_stops_at_a_non_finite_gradient_or_weight():
    model = torch.nn.Conv2d(1, 1, 1)
    batch = (torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    with torch.no_grad():
        model.weight.zero_(), model.bias.zero_()  # output 0, where the square root's gradient is infinite
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(Divergence) as caught:
        train_steps(model, [batch], optimizer, lambda out, y: out.abs().sqrt().mean(), torch.device("cpu"),
                    lambda i: 1.0, progress=False)
    assert caught.value.where(2) == "gradient norm nan at epoch 2, step 1"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the step was not taken
    with pytest.raises(Divergence) as caught:  # finite loss and gradient, but an infinite step
        train_steps(model, [batch, batch], optimizer, lambda out, y: ((out - 1) ** 2).mean(), torch.device("cpu"),
                    lambda i: math.inf if i == 1 else 0.1, progress=False)
    assert caught.value.where(1) == "weights not finite at epoch 1, after the epoch's last update (step 2)"


def test_lr_1e30_diverges_twice_and_stops_with_a_clear_error(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path, epochs=3)
    config.train.lr = 1e30
    with pytest.raises(TrainingDiverged) as caught:
        train(config, progress=False)
    message = str(caught.value)
    assert isinstance(caught.value, ConfigError)
    assert message.startswith("training diverged twice (loss nan at epoch 1, step 2), also after lowering the "
                              "learning rate to 1e+29")
    assert "holds no checkpoint" in message and message.endswith("try a lower --lr (below 1e+29)")
    run_dir = tmp_path / "run"
    assert not (run_dir / "best.safetensors").exists() and not (run_dir / "last.safetensors").exists()


def test_an_exploding_loss_counts_as_divergence(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path, epochs=3)
    config.train.lr = 100.0  # finite losses in the thousands: no NaN, but no learning either
    config.train.weight_map = False  # the plain loss, whose untrained value the message gives
    with pytest.raises(TrainingDiverged, match=r"\(mean training loss [0-9.e+]+ at epoch 1, over 10x the untrained "
                                               r"network's loss 1\.04\), also after lowering the learning rate to 10"):
        train(config, progress=False)


def test_cli_exits_2_with_the_message_and_writes_only_the_run_directory(tiny_data, tmp_path, monkeypatch, capsys,
                                                                       cli):
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tiny_data, tmp_path / "runs", epochs=3)
    save_config(config, tmp_path / "run.yaml")
    before = {p for p in tmp_path.rglob("*")}
    assert cli(["train", "--config", "run.yaml", "--lr", "1e30", "--no-progress"]) == 2
    err = capsys.readouterr().err
    last_line = err.strip().splitlines()[-1]  # the log lines come before it
    assert last_line.startswith("unetseg train: error: training diverged twice (loss nan at epoch 1, step 2)")
    assert last_line.endswith("try a lower --lr (below 1e+29)") and "Traceback" not in err
    run_dir = tmp_path / "runs" / "run"
    written = {p for p in tmp_path.rglob("*")} - before
    assert written and all(p == run_dir or run_dir in p.parents or p == run_dir.parent for p in written)


def test_a_single_nan_is_rolled_back_and_the_run_finishes(tiny_data, tmp_path, monkeypatch, caplog):
    nan_loss_at(monkeypatch, 5)  # epoch 2, step 2
    config = tiny_config(tiny_data, tmp_path, epochs=3)
    with caplog.at_level(logging.WARNING, logger="unetseg"):
        result = train(config, progress=False)
    assert ("training diverged (loss nan at epoch 2, step 2): rolled back to the end of epoch 1 and lowered the "
            "learning rate from 0.01 to 0.001; continuing") in caplog.text
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert all(torch.isfinite(t).all() for t in weights(result.last_checkpoint).values())
    last = load_checkpoint(result.last_checkpoint)
    assert last.run_state["lr_scale"] == pytest.approx(0.1) and last.run_state["rollbacks"] == 1
    assert last.run_state["divergences"] == ["loss nan at epoch 2, step 2"]
    monkeypatch.undo()
    plain = train(tiny_config(tiny_data, tmp_path / "plain", epochs=3), progress=False)
    assert result.history[0]["train_loss"] == plain.history[0]["train_loss"]  # epoch 1 untouched
    for rolled, normal in zip(result.history[1:], plain.history[1:]):
        assert rolled["lr"] == pytest.approx(normal["lr"] / 10)  # the schedule scaled by 1/10
    best = load_checkpoint(result.best_checkpoint)
    assert best.epoch == last.run_state["best_epoch"]


def test_a_resumed_run_keeps_the_lowered_learning_rate(tiny_data, tmp_path, monkeypatch):
    nan_loss_at(monkeypatch, 5)
    full = train(tiny_config(tiny_data, tmp_path / "full", epochs=4), progress=False)

    class StopAfterThirdEpoch(Callback):
        def on_epoch_end(self, run, state, row):
            if state.epoch == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_data, tmp_path / "split", epochs=4), progress=False,
              callbacks=[StopAfterThirdEpoch()])
    monkeypatch.undo()  # the resumed process sees no NaN
    resumed = train(resume=tmp_path / "split" / "run", progress=False)
    a, b = weights(full.last_checkpoint), weights(resumed.last_checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)  # at 10x the learning rate epoch 4 would differ
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in full.history]


def test_a_second_divergence_names_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    nan_loss_at(monkeypatch, 5, 7)  # epoch 2, step 2; and again in its second attempt (steps 6-8)
    config = tiny_config(tiny_data, tmp_path, epochs=3)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as caught:
        train(config, progress=False)
    assert str(caught.value) == (
        "training diverged twice (loss nan at epoch 2, step 2), also after lowering the learning rate to 0.001; the "
        f"first time: loss nan at epoch 2, step 2; the last good checkpoint is {run_dir / 'last.safetensors'} "
        "(epoch 1); try a lower --lr (below 0.001)")
    assert load_checkpoint(run_dir / "last.safetensors").epoch == 1
    assert load_checkpoint(run_dir / "best.safetensors").epoch == 1  # never from a diverged epoch


def test_a_nan_at_the_first_step_blames_the_data_not_the_learning_rate(tiny_data, tmp_path, monkeypatch):
    nan_loss_at(monkeypatch, 1)
    with pytest.raises(ConfigError, match="at its first step .* before any weight was updated, so the learning rate "
                                          "is not the cause: check the training images") as caught:
        train(tiny_config(tiny_data, tmp_path, epochs=2), progress=False)
    assert not isinstance(caught.value, TrainingDiverged)
