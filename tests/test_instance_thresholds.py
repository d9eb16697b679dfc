"""The thresholds of the objects: the foreground threshold and the seeded watershed's seeds, chosen on validation
after the method and used by every prediction of the checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import unetseg.inference.tune as tune_module
from unetseg import Predictor
from unetseg.checkpoint import Checkpoint, PredictionSettings, save_checkpoint
from unetseg.inference.instance_choice import (INSTANCE_THRESHOLDS, SEED_THRESHOLDS, InstanceScores,
                                               choose_thresholds, threshold_label)
from unetseg.inference.postprocess import prediction_objects
from unetseg.inference.tune import tune_prediction
from unetseg.models import create_model

CPU = torch.device("cpu")


def _steady(value: float, units: int = 8) -> InstanceScores:
    scores = InstanceScores("ap")
    scores._values, scores.units = [value] * units, [value] * units
    return scores


def test_seeds_first_then_the_foreground_with_the_chosen_seed():
    asked = []
    # made-up AP per (foreground, seed): seeds 0.95 are best; with them, foreground 0.4 is best, 0.3 only ties it
    table = {(0.5, 0.8): 0.40, (0.5, 0.95): 0.60, (0.4, 0.95): 0.70, (0.6, 0.95): 0.50, (0.3, 0.95): 0.70,
             (0.7, 0.95): 0.10}

    def score(candidates: dict[str, tuple[float, float]]) -> dict[str, InstanceScores]:
        asked.append(sorted(candidates.values()))
        return {name: _steady(table[pair]) for name, pair in candidates.items()}

    threshold, seed, tried = choose_thresholds("seeded", _steady(0.5), score, min_gain=0.001)
    assert (threshold, seed) == (0.4, 0.95)
    assert asked == [[(0.5, 0.8), (0.5, 0.95)], [(0.3, 0.95), (0.4, 0.95), (0.6, 0.95), (0.7, 0.95)]]
    overall = {name: scores.overall for name, scores in tried.items()}
    assert overall == {"seeded t=0.5 s=0.9": 0.5, "seeded t=0.5 s=0.8": 0.4, "seeded t=0.5 s=0.95": 0.6,
                       "seeded t=0.4 s=0.95": 0.7, "seeded t=0.6 s=0.95": 0.5, "seeded t=0.3 s=0.95": 0.7,
                       "seeded t=0.7 s=0.95": 0.1}
    assert SEED_THRESHOLDS[0] == 0.9 and INSTANCE_THRESHOLDS[0] == 0.5  # the defaults are tried first


def test_other_methods_try_only_the_foreground_and_keep_the_default_without_a_steady_gain():
    asked = []

    def score(candidates: dict[str, tuple[float, float]]) -> dict[str, InstanceScores]:
        asked.append(sorted(candidates.values()))
        lucky = InstanceScores("ap")  # better on the mean, but on one unit of eight only
        lucky._values = lucky.units = [1.0] + [0.45] * 7
        return {name: lucky for name in candidates}

    threshold, seed, tried = choose_thresholds("watershed", _steady(0.5), score, min_gain=0.001)
    assert (threshold, seed) == (0.5, 0.9) and asked == [[(0.3, 0.9), (0.4, 0.9), (0.6, 0.9), (0.7, 0.9)]]
    assert list(tried) == ["watershed t=0.5", "watershed t=0.4", "watershed t=0.6", "watershed t=0.3",
                           "watershed t=0.7"]
    assert threshold_label("components", 0.3, 0.95) == "components t=0.3"


def _bridged() -> np.ndarray:
    p = np.zeros((12, 23), np.float32)
    p[2:10, 2:10] = p[2:10, 13:21] = 0.99  # two confident 8x8 objects
    p[5:7, 10:13] = 0.45  # joined by a bridge below one half
    p[0, 0:3] = 0.45  # and a faint 3-pixel speck
    return p


def test_prediction_objects_by_hand():
    p = _bridged()
    labels = (p >= 0.5).astype(np.uint8)
    at_half = prediction_objects(p, labels, "components")
    assert at_half.max() == 2 and (at_half > 0).sum() == 2 * 64  # the class map's foreground: the bridge is a gap
    lower = prediction_objects(p, labels, "components", threshold=0.4)
    assert lower.max() == 2 and (lower > 0).sum() == 2 * 64 + 6 + 3  # one object through the bridge, and the speck
    assert lower[5, 3] == lower[5, 15] != lower[0, 1]
    assert prediction_objects(p, labels, "components", threshold=0.4, min_size=4).max() == 1  # speck removed
    split = prediction_objects(p, labels, "seeded", threshold=0.4)
    assert split.max() == 3 and split[5, 3] != split[5, 15]  # the seeds (>= 0.9) split along the bridge
    # the seeds' threshold: above every probability, each component is its own object
    assert prediction_objects(p, labels, "seeded", threshold=0.4, seed_threshold=0.995).max() == 2


def test_the_tuning_lowers_the_threshold_when_the_objects_are_larger_than_the_class_map(monkeypatch):
    """Two 10x10 objects whose outer ring the network gives probability 0.45: the class map's foreground is their
    8x8 cores (IoU 0.64: AP 0.3), the foreground at 0.4 is exactly the objects (AP 1); 0.3 only ties 0.4. Every
    method reaches AP 1 at 0.4, so none beats the default, connected components."""
    monkeypatch.setattr(tune_module, "padded_forward", lambda model, x: 20 * (x[:, :1] - 0.5))
    x = np.zeros((30, 40), np.float32)
    truth = np.zeros((30, 40), np.int32)
    for k, col in enumerate((4, 24), start=1):
        truth[10:20, col:col + 10] = k
        x[10:20, col:col + 10] = 0.5 + float(np.log(0.45 / 0.55)) / 20  # sigmoid(20 (x - 0.5)) = 0.45
        x[11:19, col + 1:col + 9] = 1.0
    cores = (x >= 0.9).astype(np.uint8)
    chosen = tune_prediction(torch.nn.Identity(), [x[None]], [cores], 2, [cores], CPU, instances=[truth])
    assert chosen.instances == "components" and (chosen.instance_threshold, chosen.seed_threshold) == (0.4, 0.9)
    assert chosen.threshold_scores["components t=0.5"] == pytest.approx(0.3)  # matches at IoU 0.5, 0.55, 0.6
    assert chosen.threshold_scores["components t=0.4"] == pytest.approx(1.0)
    assert chosen.threshold_scores["components t=0.3"] == pytest.approx(1.0)
    assert chosen.instance_scores == {"components": 1.0, "watershed": 1.0, "seeded": 1.0}  # each at its thresholds
    assert chosen.threshold_scores["seeded t=0.5 s=0.9"] == pytest.approx(0.3)


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """An untrained binary checkpoint whose run chose the seeded watershed with seeds 0.95 and objects at 0.4."""
    torch.manual_seed(0)
    model = create_model("unet_bn", base_channels=4, depth=2, num_classes=1)
    path = tmp_path / "best.safetensors"
    chosen = PredictionSettings(instances="seeded", instance_threshold=0.4, seed_threshold=0.95)
    save_checkpoint(path, Checkpoint(model_config=model.config, num_classes=2, class_names=["bg", "fg"],
                                     normalization={"mode": "percentile", "low": 1.0, "high": 99.8},
                                     model_state=model.state_dict(), prediction=chosen))
    return path


def test_the_checkpoint_carries_the_thresholds_to_the_predictor(checkpoint):
    path = checkpoint
    predictor = Predictor.from_checkpoint(path, device="cpu")
    assert (predictor.instances, predictor.instance_threshold, predictor.seed_threshold) == ("seeded", 0.4, 0.95)
    assert predictor.settings()["instance_threshold"] == 0.4
    assert Predictor.from_checkpoint(path, device="cpu", seed_threshold=0.8).seed_threshold == 0.8
    p = _bridged()
    probs = np.stack([1 - p, p])
    labels = predictor.labels(probs)
    expected = prediction_objects(p, labels, "seeded", threshold=0.4, seed_threshold=0.95)
    assert (predictor.objects(probs, labels) == expected).all()
    with pytest.raises(ValueError, match="instance_threshold must be a probability between 0 and 1.*got 1.5"):
        Predictor.from_checkpoint(path, device="cpu", instance_threshold=1.5)
    old = PredictionSettings.from_dict({"tta": "none", "instances": "watershed"})  # written before the thresholds
    assert old.predictor_options()["instance_threshold"] == 0.5 and old.seed_threshold == 0.9


def test_predict_refuses_a_threshold_out_of_range(tmp_path, checkpoint, cli, capsys):
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(image)
    code = cli(["predict", "--checkpoint", str(checkpoint), "--input", str(image), "--output", str(tmp_path / "out"),
                "--device", "cpu", "--seed-threshold", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "predict.seed_threshold must be in (0, 1), got 1.0" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
