"""Data options of training: dataset-wide normalisation, augmentation overrides and previews, oversampling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from unetseg import Predictor, train
from unetseg.cli.main import main
from unetseg.data.normalize import Normalization

from conftest import tiny_config


def test_dataset_normalization_uses_one_set_of_statistics():
    dark = np.full((10, 10, 1), 10, np.uint8)
    bright = np.linspace(0, 200, 100).reshape(10, 10, 1).astype(np.uint8)
    norm = Normalization("zscore", scope="dataset").fit([dark, bright])
    pixels = np.concatenate([dark.ravel(), bright.ravel()]).astype(np.float64)
    (offset, spread), = norm.stats
    assert offset == pytest.approx(pixels.mean(), rel=1e-5) and spread == pytest.approx(pixels.std(), rel=1e-5)
    np.testing.assert_allclose(norm(dark)[0], (10 - pixels.mean()) / pixels.std(), rtol=1e-5)
    per_image = Normalization("zscore")(dark)  # a constant image: per-image statistics map it to 0
    assert np.allclose(per_image, 0)
    assert Normalization.from_dict(norm.to_dict()) == norm
    with pytest.raises(ValueError, match="fit"):
        Normalization("zscore", scope="dataset")(dark)


def test_training_with_dataset_normalization_predicts_with_the_same_statistics(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path, epochs=1)
    config.data.normalization, config.data.normalization_scope = "percentile", "dataset"
    result = train(config, progress=False)
    predictor = Predictor.from_checkpoint(result.best_checkpoint, device="cpu")
    assert predictor.normalization.scope == "dataset" and len(predictor.normalization.stats) == 1
    assert predictor.predict(np.zeros((20, 30), np.uint8)).shape == (20, 30)


def test_show_augmentations_writes_a_picture_and_does_not_train(tiny_data, tmp_path):
    out = tmp_path / "aug.png"
    code = main(["train", "--data", str(tiny_data), "--patch-size", "32", "--aug", "affine=true",
                 "--output", str(tmp_path / "runs"), "--show-augmentations", str(out)])
    assert code == 0 and out.is_file()
    assert Image.open(out).size[0] > 400
    assert not (tmp_path / "runs").exists()


def test_bad_augmentation_key_exits_2(tiny_data, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_data), "--aug", "elastik=false", "--output", str(tmp_path),
                 "--no-progress"])
    assert code == 2 and "elastik" in capsys.readouterr().err


def test_foreground_oversampling_in_training(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path, epochs=1)
    config.train.foreground_fraction = 1.0
    result = train(config, progress=False)
    assert np.isfinite(result.history[0]["train_loss"])
