"""Which epoch ``best.safetensors`` keeps: the windowed validation score (unetseg.engine.loop.is_best)."""

from __future__ import annotations

import math

import pytest

from unetseg import train
from unetseg.checkpoint import load_checkpoint
from unetseg.engine.loop import BEST_WINDOW, is_best, windowed_means

from conftest import tiny_config


def chosen(scores: list[float]) -> int:
    """The 1-based epoch the rule keeps after all of ``scores``: the last one :func:`is_best` marked."""
    return max(i + 1 for i in range(len(scores)) if is_best(scores[:i + 1]))


def test_windowed_means_by_hand():
    assert BEST_WINDOW == 3
    assert windowed_means([0.3, 0.6, 0.9, 0.3]) == pytest.approx([0.3, 0.45, 0.6, 0.6])
    assert windowed_means([0.2, 0.4], window=1) == [0.2, 0.4]
    assert windowed_means([]) == []


def test_a_plateau_keeps_the_latest_weights_not_the_first_noisy_maximum():
    # the shape of a 6-frame validation on a flat curve: epoch 3 is highest by 0.0001, the plateau goes on
    scores = [0.70, 0.78, 0.7969, 0.7960, 0.7962, 0.7966, 0.7967, 0.7966]
    assert scores.index(max(scores)) + 1 == 3  # what the highest single score would keep
    # windows of 3: 0.70, 0.74, 0.7590, 0.7910, 0.7964, 0.7963, 0.7965, 0.7966 (by hand)
    assert chosen(scores) == 8


def test_a_single_spike_does_not_win_and_a_real_peak_does():
    # windows of 3 (exact in binary): 0.5, 0.5, 2/3, 2/3, 2/3, 0.5: the spike's weights are not singled out, the tie
    # goes on to epoch 5
    assert chosen([0.5, 0.5, 1.0, 0.5, 0.5, 0.5]) == 5
    # windows 0.25, 0.375, 0.5, 2/3, 0.75, 2/3, 0.5: the peak of epochs 3-5 keeps epoch 5
    assert chosen([0.25, 0.5, 0.75, 0.75, 0.75, 0.5, 0.25]) == 5


def test_ties_go_to_the_later_epoch_and_a_nan_metric_never_wins_after_the_first():
    assert is_best([0.5, 0.5]) and is_best([0.5])
    assert not is_best([0.5, -math.inf]) and is_best([-math.inf])
    assert not is_best([0.5, 0.6, -math.inf, 0.9])  # the -inf is still in the window of the fourth epoch


def test_training_keeps_the_epoch_the_rule_chooses(tiny_data, tmp_path, monkeypatch):
    import unetseg.engine.trainer as trainer_module

    # windows 0.5, 0.625, 0.625, 0.7083, 0.7083, 0.6667: epoch 5 (the highest single score is epoch 2's, the last 6)
    values = iter([0.5, 0.75, 0.625, 0.75, 0.75, 0.5])
    real = trainer_module.monitor_score
    by_epoch: dict[int, float] = {}

    def scripted(row, monitor):
        if row["epoch"] not in by_epoch:
            by_epoch[row["epoch"]] = next(values)
        return by_epoch[row["epoch"]] if "val_loss" in row else real(row, monitor)

    monkeypatch.setattr(trainer_module, "monitor_score", scripted)
    config = tiny_config(tiny_data, tmp_path, epochs=6)
    config.train.tune_prediction = False
    result = train(config, progress=False)
    best, last = load_checkpoint(result.best_checkpoint), load_checkpoint(result.last_checkpoint)
    assert best.epoch == 5 and last.run_state["best_epoch"] == 5 and last.epoch == 6
    assert best.best_score == 0.75 == last.best_score
