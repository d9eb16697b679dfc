"""The default recipe, the time budget and the prediction settings chosen on validation."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import yaml

import unetseg.inference.tune as tune_module
from unetseg import Config, Predictor, train
from unetseg.config import ConfigError, load_config
from unetseg.checkpoint import load_checkpoint
from unetseg.engine.plan import (DataFacts, batch_size_for, choose_model, choose_training, patch_size_for,
                                 plan_run, samples_per_epoch_for)
from unetseg.inference.tune import min_size_candidates, object_sizes, tune_prediction
from unetseg.inference.postprocess import INSTANCE_METHODS

from conftest import tiny_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_patch_size_follows_the_median_shorter_side():
    assert patch_size_for([(96, 96)] * 5, CPU) == 96
    assert patch_size_for([(256, 320), (360, 360), (520, 696)], CPU) == 256  # median 360 capped at 256
    assert patch_size_for([(520, 696)] * 3, CUDA) == 512  # GPU cap 512
    assert patch_size_for([(100, 300), (110, 120), (130, 400)], CPU) == 96  # median 110 -> 96 (multiple of 16)
    assert patch_size_for([(20, 20)], CPU) == 32  # never below 32


def test_batch_size_keeps_pixels_per_step():
    assert batch_size_for(96, CPU) == 131072 // 96**2 == 14
    assert batch_size_for(256, CPU) == 2
    assert batch_size_for(512, CPU) == 2  # at least 2
    assert batch_size_for(32, CPU) == 32  # at most 32
    assert batch_size_for(256, CUDA) == 12


def test_samples_per_epoch_cover_the_pixels_once():
    assert samples_per_epoch_for([(512, 512)] * 20, 256, 2) == 80  # 4 patches per slice
    assert samples_per_epoch_for([(96, 96)] * 429, 96, 14) == 434  # one per image, rounded up to whole batches
    assert samples_per_epoch_for([(50, 50)] * 10, 96, 4) == 12  # small images: still one per image


def test_recipe_leaves_user_settings_alone():
    config = Config()
    config.model.base_channels = 16
    config.train.patch_size, config.train.epochs = 64, 7
    assert choose_model(config)[1] == []
    resolved, choices = choose_training(config, [(96, 96)] * 4, 2, 1, CPU, "fp32")
    chosen = {c.key: c.value for c in choices}
    assert "train.patch_size" not in chosen and "train.epochs" not in chosen
    assert resolved.train.patch_size == 64 and resolved.train.epochs == 7 and resolved.model.base_channels == 16
    assert chosen["train.batch_size"] == resolved.train.batch_size == 32  # 131072 / 64^2
    assert config.train.batch_size is None  # the given config is not changed
    assert chosen["train.loss"] == "bce_dice"
    default = Config()
    resolved, choices = choose_model(default)
    assert [c.value for c in choices] == [32] and resolved.model.base_channels == 32
    assert default.model.base_channels is None
    paper = Config()
    paper.model.name = "unet"
    resolved, choices = choose_model(paper)
    assert choices == [] and resolved.model.base_channels is None  # the paper's network keeps its 64


def test_plan_run_is_pure_and_orders_its_choices():
    config = Config()
    config.data.train = "DATA"
    before = config.to_dict()
    facts = DataFacts(shapes=((96, 96),) * 10, num_classes=2, channels=1, layout_ignore_index=255)
    resolved, choices = plan_run(config, facts, CPU, "fp32")
    assert config.to_dict() == before  # nothing assigned into the given config
    keys = [c.key for c in choices]
    assert keys[:2] == ["data.val_fraction", "data.ignore_index"]
    assert keys[-2:] == ["model.base_channels", "train.weight_map"]  # no instance labels: plain masks
    assert resolved.data.val_fraction == 0.2 and resolved.data.ignore_index == 255
    assert resolved.train.patch_size == 96 and resolved.train.batch_size == 14  # from the 8 training images
    assert resolved.train.samples_per_epoch == 14 and resolved.train.epochs == 50
    assert resolved.model.base_channels == 32 and resolved.model.norm is None  # batch 14 >= 8: batch norm stays
    assert resolved.train.weight_map is False
    again, more = plan_run(resolved, facts, CPU, "fp32")
    assert again == resolved  # a resolved config plans to itself
    assert {c.key for c in more} <= {"train.loss", "train.precision", "data.normalization"}


def test_epochs_and_time_budget_exclude_each_other(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path)
    config.train.time_budget = 1.0
    with pytest.raises(ConfigError, match="train.time_budget"):
        train(config, progress=False)
    config.train.epochs, config.train.time_budget = None, -1.0
    with pytest.raises(ConfigError, match="train.time_budget must be > 0"):
        train(config, progress=False)


def test_time_budget_run_records_recipe_and_tuned_prediction(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path)
    config.train.epochs, config.train.time_budget = None, 0.25  # 15 s for the whole run
    config.train.batch_size = config.train.patch_size = config.train.samples_per_epoch = None  # recipe chooses
    started = time.perf_counter()
    result = train(config, progress=False)
    seconds = time.perf_counter() - started
    assert seconds < 15 + 10  # the budget, plus at most about one (tiny) epoch of overrun
    saved = load_config(result.run_dir / "config.yaml")  # the resolved configuration, written once
    assert saved.train.epochs is None and saved.train.time_budget == 0.25 and len(result.history) >= 1
    assert load_checkpoint(result.last_checkpoint).run_state["total_epochs"] == len(result.history)
    recipe = yaml.safe_load((result.run_dir / "recipe.yaml").read_text())
    assert recipe["train.patch_size"]["value"] == 48 and recipe["train.batch_size"]["value"] == 32
    assert recipe["train.epochs"]["value"] == "fitted"
    tuned = yaml.safe_load((result.run_dir / "prediction.yaml").read_text())
    assert tuned["tta"] in ("none", "flips", "d4") and tuned["min_size"] >= 0
    best = load_checkpoint(result.best_checkpoint)
    assert best.prediction.tta == tuned["tta"] and best.recipe == recipe
    assert tuned["instances"] in INSTANCE_METHODS
    predictor = Predictor.from_checkpoint(result.best_checkpoint, device="cpu")
    assert predictor.tta == tuned["tta"] and predictor.instances == tuned["instances"]
    assert predictor.settings()["min_size"] == tuned["min_size"]
    assert Predictor.from_checkpoint(result.best_checkpoint, device="cpu", tta="rot").tta == "rot"  # override


def test_tiny_budget_runs_exactly_one_epoch(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path)
    config.train.epochs, config.train.time_budget, config.train.tune_prediction = None, 1e-4, False
    result = train(config, progress=False)
    assert len(result.history) == 1 and not (result.run_dir / "prediction.yaml").exists()


def test_min_size_candidates_from_object_sizes():
    labels = [np.zeros((20, 20), np.uint8)]
    labels[0][2:12, 2:12] = 1  # one object of 100 px
    labels[0][15:17, 15:19] = 1  # one of 8 px
    assert object_sizes(labels, 2).tolist() == [100, 8]
    assert min_size_candidates(np.array([100] * 19 + [8])) == [0, 24, 48]  # 5th percentile 8 + 0.95 * 92 = 95.4
    assert min_size_candidates(np.array([4, 4])) == [0, 2]
    assert min_size_candidates(np.zeros(0)) == [0]


def test_tune_removes_spurious_blobs_and_keeps_equivariant_tta(monkeypatch):
    """A stand-in network whose logits are the input itself (so every flip gives the same answer): the
    prediction is the true square plus 2x2 blobs, which the chosen min_size must remove."""
    monkeypatch.setattr(tune_module, "padded_forward", lambda model, x: 20 * (x[:, :1] - 0.5))
    truth = np.zeros((40, 40), np.uint8)
    truth[10:30, 10:30] = 1  # a 400 px object
    noisy = truth.astype(np.float32).copy()
    for r, c in ((2, 2), (2, 35), (35, 2), (35, 35)):
        noisy[r:r + 2, c:c + 2] = 1.0
    chosen = tune_prediction(torch.nn.Identity(), [noisy[None]], [truth], 2, [truth], CPU)
    assert chosen.tta == "none"  # all equal: the cheapest wins
    assert chosen.min_size == 100  # candidates 0, 400 * 0.25, 400 * 0.5: 100 removes every blob, 200 only ties
    assert chosen.score == pytest.approx(1.0)
    assert chosen.scores["tta=none min_size=0"] == pytest.approx(2 * 400 / (2 * 400 + 16))


def test_validation_share():
    from unetseg.engine.plan import val_fraction_for

    assert val_fraction_for(25) == 0.2  # 5 images
    assert round(536 * val_fraction_for(536)) == 54  # 107 would be 20%; capped at max(50, 10%) = 54
    assert round(2000 * val_fraction_for(2000)) == 200
    assert val_fraction_for(1) == 0.0  # a single image: nothing to hold out


def test_seeded_watershed_splits_along_a_probability_valley():
    from unetseg.inference.postprocess import instances_from_semantic

    p = np.zeros((10, 21))
    p[2:8, 2:9] = p[2:8, 12:19] = 0.99  # two confident objects
    p[4:6, 9:12] = 0.6  # joined by a less certain bridge
    assert instances_from_semantic(p, "components").max() == 1
    seeded = instances_from_semantic(p, "seeded")
    assert seeded.max() == 2 and seeded[5, 4] != seeded[5, 16]
    assert (seeded > 0).sum() == (p >= 0.5).sum()  # the same foreground, only split
    with pytest.raises(ValueError, match="probability"):
        instances_from_semantic(p > 0.5, "seeded")


def test_tune_chooses_the_instance_method_by_ap_against_instance_labels(monkeypatch):
    """Two touching squares joined by a low-probability bridge: the seeded watershed separates them, connected
    components merge them, so a splitting method must be chosen when the truth has two objects (AP 1 against 0);
    with the regions of the class map as truth (no instance labels) the Rand error decides and components stay."""
    monkeypatch.setattr(tune_module, "padded_forward", lambda model, x: 20 * (x[:, :1] - 0.5))
    prob = np.zeros((30, 40), np.float32)
    prob[5:25, 3:18] = prob[5:25, 22:37] = 1.0
    prob[12:18, 18:22] = 0.57  # foreground at every threshold tried (0.3-0.7), below the seed thresholds 0.9, 0.95
    truth_objects = np.zeros((30, 40), np.int32)
    truth_objects[5:25, 3:20], truth_objects[5:25, 20:37] = 1, 2
    truth_objects[~((prob >= 0.5))] = 0
    labels = (truth_objects > 0).astype(np.uint8)
    # the stand-in network's sigmoid(20 (x - 0.5)) puts 0.57 at ~0.80: foreground, below the 0.9 seeds
    chosen = tune_prediction(torch.nn.Identity(), [prob[None]], [labels], 2, [labels], CPU, instances=[truth_objects])
    scores = chosen.instance_scores
    assert chosen.instance_metric == "ap" and scores["components"] == 0.0  # one merged object: no match at 0.5
    assert scores["seeded"] > 0.9 and chosen.instances != "components"
    assert scores[chosen.instances] == max(scores.values())
    merged = tune_prediction(torch.nn.Identity(), [prob[None]], [labels], 2, [labels], CPU)  # truth: components
    assert merged.instance_metric == "rand" and merged.instances == "components"
    assert merged.instance_rand_errors["components"] == pytest.approx(0)


def test_small_batches_get_instance_norm():
    small = Config()
    small.train.batch_size = 2
    resolved, choices = choose_model(small)
    assert {c.key: c.value for c in choices}["model.norm"] == "instance" and resolved.model.norm == "instance"
    large = Config()
    large.train.batch_size = 14
    resolved, choices = choose_model(large)
    assert "model.norm" not in {c.key for c in choices} and resolved.model.norm is None  # batch norm
    mine = Config()
    mine.train.batch_size, mine.model.norm = 2, "batch"
    assert choose_model(mine)[0].model.norm == "batch"  # the user's choice stays
