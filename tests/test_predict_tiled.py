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
    whole = Predictor.from_checkpoint(checkpoints["unet"], device="cpu", precision="fp32").predict_proba(image)
    tiled = Predictor.from_checkpoint(checkpoints["unet"], device="cpu", tile=12, precision="fp32").predict_proba(image)
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


def test_block_prediction_of_a_tiff_matches_whole_image_prediction(checkpoints, tmp_path):
    # A pointwise-exact check is not possible for a network (its receptive field exceeds the halo), so compare
    # the bounded-memory path with whole-image prediction away from block borders and require near agreement.
    rng = np.random.default_rng(2)
    image = (rng.random((300, 520)) * 60).astype(np.uint8)
    image[100:180, 200:300] += 150  # a bright object across a block border
    tifffile.imwrite(tmp_path / "big.tif", image, tile=(256, 256))
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoints["unet_bn"]), "--input", str(tmp_path / "big.tif"),
                 "--output", str(out), "--block", "256", "--halo", "32", "--tile", "64", "--device", "cpu"]) == 0
    blocks = tifffile.imread(out / "big.tif")
    assert blocks.shape == image.shape and tifffile.TiffFile(out / "big.tif").pages[0].is_tiled
    whole = Predictor.from_checkpoint(checkpoints["unet_bn"], device="cpu", tile=64).predict(image)
    agreement = ((blocks > 0) == (whole > 0)).mean()
    assert agreement > 0.99, agreement
    assert main(["predict", "--checkpoint", str(checkpoints["unet_bn"]), "--input", str(tmp_path / "big.tif"),
                 "--output", str(out), "--block", "300"]) == 2


def test_instances_and_post_processing_outputs(checkpoints, tiny_data, tmp_path):
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(checkpoints["unet_bn"]), "--input", str(tiny_data / "images"),
                 "--output", str(out), "--instances", "watershed", "--min-size", "5", "--fill-holes",
                 "--device", "cpu"]) == 0
    name = sorted((tiny_data / "images").iterdir())[0].stem
    objects = read_image(out / f"{name}_instances.png")
    labels = read_image(out / f"{name}.png")
    assert objects.dtype == np.uint16 and objects.shape == labels.shape
    np.testing.assert_array_equal(objects > 0, labels > 0)


def test_bfloat16_agrees_with_float32(checkpoints):
    from unetseg.precision import resolve_precision

    image = np.random.default_rng(3).integers(0, 255, (64, 80), dtype=np.uint8)
    fp32 = Predictor.from_checkpoint(checkpoints["unet_bn"], device="cpu", precision="fp32")
    bf16 = Predictor.from_checkpoint(checkpoints["unet_bn"], device="cpu", precision="bf16")
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    p32, p16 = fp32.predict_proba(image), bf16.predict_proba(image)
    assert p16.dtype == np.float32
    assert np.abs(p32 - p16).max() < 0.03  # bfloat16 keeps 8 bits of mantissa
    confident = np.abs(p32[1] - 0.5) > 0.05
    assert (fp32.predict(image) == bf16.predict(image))[confident].all()
    assert resolve_precision("auto", torch.device("cpu")) in ("fp32", "bf16")
    with pytest.raises(ValueError, match="precision"):
        Predictor.from_checkpoint(checkpoints["unet_bn"], device="cpu", precision="fp8")


def test_settings_chosen_in_training_are_the_defaults(tmp_path):
    from unetseg.checkpoint import Checkpoint, PredictionSettings, save_checkpoint
    from unetseg.data.normalize import Normalization
    from unetseg.models import create_model

    model = create_model("unet_bn", base_channels=4, depth=2)
    path = tmp_path / "best.safetensors"
    chosen = PredictionSettings(tta="flips", min_size=5, instances="watershed", score=0.8)
    save_checkpoint(path, Checkpoint(model_config=model.config, num_classes=2, class_names=["bg", "cell"],
                                     normalization=Normalization().to_dict(), prediction=chosen,
                                     model_state=model.state_dict()))
    predictor = Predictor.from_checkpoint(path, device="cpu")
    assert (predictor.tta, predictor.min_size, predictor.instances) == ("flips", 5, "watershed")
    assert predictor.class_names == ["bg", "cell"]
    override = Predictor.from_checkpoint(path, device="cpu", tta="none", min_size=None)  # None: keep the default
    assert (override.tta, override.min_size) == ("none", 5)
    save_checkpoint(path, Checkpoint(model_config=model.config, num_classes=2, class_names=["bg", "cell"],
                                     normalization=Normalization().to_dict(), model_state=model.state_dict()))
    plain = Predictor.from_checkpoint(path, device="cpu")
    assert (plain.tta, plain.min_size, plain.instances) == ("none", 0, "components")


def test_default_class_names_and_setting_errors():
    from unetseg.data.normalize import Normalization
    from unetseg.models import create_model

    model = create_model("unet_bn", base_channels=4, depth=2)
    assert Predictor(model, Normalization(), 2, device="cpu").class_names == ["background", "foreground"]
    three = create_model("unet_bn", base_channels=4, depth=2, num_classes=3)
    assert Predictor(three, Normalization(), 3, device="cpu").class_names == ["class0", "class1", "class2"]
    for options, message in (({"tile": 0}, "tile must be a positive"), ({"min_size": -1}, "min_size must be >= 0"),
                             ({"instances": "blobs"}, "instances='blobs' is not one of components")):
        with pytest.raises(ValueError, match=message):
            Predictor(model, Normalization(), 2, device="cpu", **options)
