"""The instance method chosen by the metric users report, and only when it is consistently better."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unetseg.inference.instance_choice import (InstanceScores, choose_method, consistently_better, higher_is_better,
                                               score_methods, unit_slices)
from unetseg.metrics.instances import drop_ignored_objects


def test_sign_rule_by_hand():
    # 3 wins, 0 losses: 3 >= sqrt(3); 1 win, 1 loss: not more wins than losses
    assert consistently_better([0.9, 0.8, 0.7], [0.5, 0.5, 0.5], higher=True)
    assert not consistently_better([0.9, 0.1], [0.5, 0.5], higher=True)
    # 5 wins, 3 losses: 2 < sqrt(8) = 2.83; 6 wins, 2 losses: 4 >= 2.83
    assert not consistently_better([1] * 5 + [0] * 3, [0.5] * 8, higher=True)
    assert consistently_better([1] * 6 + [0] * 2, [0.5] * 8, higher=True)
    # lower is better for the Rand error; ties and NaN do not count
    assert consistently_better([0.1, 0.2, 0.5, math.nan], [0.3, 0.4, 0.5, 0.1], higher=False)
    assert not consistently_better([0.5, 0.5], [0.5, 0.5], higher=True)


def test_units_are_tiles_for_a_few_images():
    tiles = unit_slices((512, 700), 2)
    assert len(tiles) == 2 * 3  # about 256 px: 512 / 256 rows, round(700 / 256) = 3 columns
    covered = np.zeros((512, 700), int)
    for rows, cols in tiles:
        covered[rows, cols] += 1
    assert (covered == 1).all()  # the tiles cover the image once
    assert unit_slices((512, 700), 8) == [(slice(0, 512), slice(0, 700))]
    assert unit_slices((40, 30), 1) == [(slice(0, 40), slice(0, 30))]
    with pytest.raises(ValueError, match="instance metric 'iou'"):
        higher_is_better("iou")


def _scores(metric: str, overall: list[float], units: list[float]) -> InstanceScores:
    scores = InstanceScores(metric)
    scores._values, scores.units = overall, units
    return scores


def test_one_lucky_image_does_not_decide():
    # "watershed" is far better on one of 8 units and a little worse on the other 7: its mean is higher, but it is
    # not consistently better, so the default stays
    default = _scores("ap", [0.5] * 8, [0.5] * 8)
    lucky = _scores("ap", [1.0] + [0.45] * 7, [1.0] + [0.45] * 7)
    assert lucky.overall > default.overall + 0.01
    assert choose_method({"components": default, "watershed": lucky}, min_gain=0.001) == "components"
    steady = _scores("ap", [0.55] * 8, [0.55] * 8)
    assert choose_method({"components": default, "watershed": lucky, "seeded": steady}, 0.001) == "seeded"
    # a consistent but smaller gain than min_gain is not enough either
    assert choose_method({"components": default, "seeded": steady}, min_gain=0.1) == "components"


def test_seg_is_pooled_over_reference_objects_and_ap_leaves_ignored_objects_out():
    truth = np.zeros((8, 8), int)
    truth[0:4, 0:4], truth[4:8, 4:8] = 1, 2  # two objects of 16 pixels
    pred = np.zeros((8, 8), int)
    pred[0:4, 0:4] = 1  # the first exactly (Jaccard 1)
    pred[4:8, 4:6] = 2  # half of the second (Jaccard 0.5: above SEG's majority rule? 8 of 16 is not > half -> 0)
    seg = InstanceScores("seg")
    seg.add(pred, truth, None, n_images=1)
    assert seg.overall == pytest.approx((1.0 + 0.0) / 2)
    pred[4:8, 4:7] = 2  # 12 of 16 pixels: a match, Jaccard 12 / 16
    seg = InstanceScores("seg")
    seg.add(pred, truth, None, n_images=1)
    assert seg.overall == pytest.approx((1.0 + 0.75) / 2)
    ignored = np.zeros((8, 8), bool)
    ignored[0:4, 4:8] = True  # not annotated: an object there is not a false positive
    extra = pred.copy()
    extra[0:3, 5:8] = 3
    assert (drop_ignored_objects(extra, ignored) == pred).all()
    with_ignored, without = InstanceScores("ap"), InstanceScores("ap")
    with_ignored.add(extra, truth, ignored, 1)
    without.add(pred, truth, None, 1)
    assert with_ignored.overall == without.overall


def test_score_methods_calls_each_method_on_each_image():
    truths = [np.eye(4, dtype=int), np.zeros((4, 4), int)]
    calls = []

    def objects_of(i: int, method: str) -> np.ndarray:
        calls.append((i, method))
        return truths[i]
    scores = score_methods(["components", "seeded"], objects_of, truths, [None, None], "ap")
    assert sorted(calls) == [(0, "components"), (0, "seeded"), (1, "components"), (1, "seeded")]
    assert scores["components"].overall == 1.0  # the image without objects is left out of the mean


def test_the_recipe_reports_the_training_target_of_instance_data():
    import torch

    from unetseg import Config
    from unetseg.engine.plan import SPARSE_FOREGROUND, DataFacts, plan_run

    def planned(config, **facts):
        config.data.train = "DATA"
        facts = DataFacts(shapes=((96, 96),) * 10, num_classes=2, channels=1, **facts)
        resolved, choices = plan_run(config, facts, torch.device("cpu"), "fp32")
        return resolved.train, {c.key: c for c in choices}

    sparse, chosen = planned(Config(), instance_labels=True, foreground_share=0.012)  # HeLa gold: 1.2%
    assert sparse.weight_map is True and sparse.weight_map_balance is True
    assert "instance labels" in chosen["train.weight_map"].reason and "0.758" in chosen["train.weight_map"].reason
    assert "1.2% of the annotated" in chosen["train.weight_map_balance"].reason
    dense, chosen = planned(Config(), instance_labels=True, foreground_share=0.127)  # DSB2018: 12.7%
    assert dense.weight_map is True and dense.weight_map_balance is False
    reason = chosen["train.weight_map_balance"].reason
    assert "foreground is 12.7% of the annotated training pixels, not under 5%" in reason
    edge, _ = planned(Config(), instance_labels=True, foreground_share=SPARSE_FOREGROUND)  # the bound: not under
    assert edge.weight_map_balance is False
    unknown, chosen = planned(Config(), instance_labels=True)
    assert unknown.weight_map is True and unknown.weight_map_balance is False
    reason = chosen["train.weight_map_balance"].reason
    assert reason.startswith("the foreground share of the training labels is not known;")
    plain, chosen = planned(Config())  # no instance labels: plain masks
    assert plain.weight_map is False and "train.weight_map_balance" not in chosen
    assert "no instance labels" in chosen["train.weight_map"].reason
    given = Config()
    given.train.weight_map, given.train.weight_map_balance = True, False  # the user's choices: kept, not reported
    kept, chosen = planned(given, instance_labels=True, foreground_share=0.012)
    assert kept.weight_map is True and kept.weight_map_balance is False
    assert "train.weight_map" not in chosen and "train.weight_map_balance" not in chosen
    off = Config()
    off.train.weight_map = False
    kept, chosen = planned(off, instance_labels=True, foreground_share=0.012)
    assert kept.weight_map is False and kept.weight_map_balance is None and "train.weight_map_balance" not in chosen