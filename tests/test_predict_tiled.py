"""Tiled prediction and test-time augmentation through the Predictor and the command line."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from unetseg import Predictor, train
from unetseg.cli.main import main
from unetseg.data.io import read_image

from conftest import tiny_config


@pytest.fixture(scope="module")
def checkpoints(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {name: train(tiny_config(tiny_data, out / name, name, epochs=1), progress=False).best_checkpoint
            for name in ("unet", "unet_bn")}


def test_overlap_tile_equals_one_pass_for_the_paper_unet(checkpoints):
    image = np.random.default_rng(0).integers(0, 255, (45, 61), dtype=np.uint8)
    whole = Predictor.from_checkpoint(checkpoints["unet"], device="cpu").predict_proba(image)
    tiled = Predictor.from_checkpoint(checkpoints["unet"], device="cpu", tile=12).predict_proba(image)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_sliding_window_and_tta_keep_size_and_probabilities(checkpoints):
    image = np.random.default_rng(1).integers(0, 255, (37, 50), dtype=np.uint8)
    for tta in ("none", "flips", "d4"):
        predictor = Predictor.from_checkpoint(checkpoints["unet_bn"], device="cpu", tile=16, tta=tta)
        probs = predictor.predict_proba(image)
        assert probs.shape == (2, 37, 50)
        np.testing.assert_allclose(probs.sum(0), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(predictor.predict(image), probs.argmax(0))
    with pytest.raises(ValueError, match="TTA set .all."):
        Predictor.from_checkpoint(checkpoints["unet_bn"], device="cpu", tta="all")


def test_cli_tiled_prediction_with_probability_maps(checkpoints, tiny_data, tmp_path):
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(checkpoints["unet_bn"]), "--input", str(tiny_data / "images"),
                 "--output", str(out), "--tile", "16", "--tta", "flips", "--probabilities", "--device", "cpu"]) == 0
    name = sorted((tiny_data / "images").iterdir())[0].stem
    probs = tifffile.imread(out / f"{name}_prob.tif")
    assert probs.dtype == np.float16 and probs.shape == (2, 48, 48)
    labels = read_image(out / f"{name}.png")
    np.testing.assert_array_equal(labels > 0, probs.astype(np.float32).argmax(0) == 1)
    assert main(["predict", "--checkpoint", str(checkpoints["unet_bn"]), "--input", str(tiny_data / "images"),
                 "--output", str(out), "--tile", "0"]) == 2
    assert torch.get_num_threads() >= 1
