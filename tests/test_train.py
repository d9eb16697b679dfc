"""Training runs: run-directory contents, exact resume, checkpoint -> prediction round trip."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from unetseg import Callback, Predictor, train
from unetseg.config import ConfigError, load_config
from unetseg.checkpoint import load_checkpoint
from unetseg.models.apply import padded_forward

from conftest import tiny_config


def test_run_directory_contents(tiny_data, tmp_path):
    result = train(tiny_config(tiny_data, tmp_path), progress=False)
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"config.yaml", "log.csv", "curves.png", "last.safetensors", "best.safetensors"} <= files
    rows = list(csv.DictReader(open(result.run_dir / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    for key in ("lr", "train_loss", "val_loss", "val_pixel_accuracy", "val_mean_class_accuracy", "val_mean_iou",
                "val_fw_iou", "val_dice_foreground", "val_iou_background", "seconds"):
        assert rows[-1][key] != "", key
    assert load_config(result.run_dir / "config.yaml").train.epochs == 3
    best = max(result.history, key=lambda r: r["val_foreground_dice"])
    assert load_checkpoint(result.best_checkpoint).epoch == best["epoch"]
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(tiny_data, tmp_path), progress=False)  # same name: refuse to overwrite


@pytest.mark.parametrize("model", ["unet", "unet_bn"])  # unet has dropout: its RNG state must be restored too
def test_resume_gives_identical_weights(tiny_data, tmp_path, model):
    full = train(tiny_config(tiny_data, tmp_path / "full", model, epochs=4), progress=False)

    class InterruptAfterSecondEpoch(Callback):
        def on_epoch_end(self, run, state, row):
            if state.epoch == 2:
                raise KeyboardInterrupt  # as if the user pressed Ctrl-C at the end of epoch 2

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_data, tmp_path / "split", model, epochs=4), progress=False,
              callbacks=[InterruptAfterSecondEpoch()])
    run_dir = tmp_path / "split" / "run"
    assert load_checkpoint(run_dir / "last.safetensors").epoch == 2
    resumed = train(resume=run_dir, progress=False)

    a = load_checkpoint(full.last_checkpoint).model_state
    b = load_checkpoint(resumed.last_checkpoint).model_state
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]
    assert len(list(csv.DictReader(open(run_dir / "log.csv")))) == 4


def test_resume_detects_a_difference(tiny_data, tmp_path):
    # The equality above is meaningful: a different seed gives different weights.
    config = tiny_config(tiny_data, tmp_path / "a", epochs=1)
    a = train(config, progress=False)
    config = tiny_config(tiny_data, tmp_path / "b", epochs=1)
    config.train.seed = 1
    b = train(config, progress=False)
    sa, sb = load_checkpoint(a.last_checkpoint).model_state, load_checkpoint(b.last_checkpoint).model_state
    assert not all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("model", ["unet", "unet_bn"])
@pytest.mark.parametrize("shape", [(37, 53), (48, 48), (5, 70)])
def test_predictor_output_matches_input_size(tiny_data, tmp_path, model, shape):
    result = train(tiny_config(tiny_data, tmp_path, model, epochs=1), progress=False)
    predictor = Predictor.from_checkpoint(result.best_checkpoint, device="cpu")
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    labels = predictor.predict(image)
    assert labels.shape == shape and labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1}
    probs = predictor.predict_proba(image)
    assert probs.shape == (2, *shape)
    np.testing.assert_allclose(probs.sum(0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels, (probs[1] > 0.5).astype(np.uint8))


def test_padded_forward_on_valid_net_equals_manual_mirror_padding(tiny_data, tmp_path):
    result = train(tiny_config(tiny_data, tmp_path, "unet", epochs=1), progress=False)
    model = Predictor.from_checkpoint(result.last_checkpoint, device="cpu").model
    x = torch.randn(1, 1, 30, 30)
    size = model.input_size_for(30)
    m = model.margin(size)
    manual = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (m, size - 30 - m), (m, size - 30 - m)), "reflect"))
    with torch.inference_mode():
        expected = model(manual)[..., :30, :30]
        assert torch.equal(padded_forward(model, x), expected)


def test_multiclass_with_separate_validation_folder(tiny_data, tmp_path):
    # Three classes: background, nucleus interior, nucleus border (from the synthetic instance labels).
    from skimage.segmentation import find_boundaries

    from unetseg.data.io import read_image, write_png
    from unetseg.inference.files import predict

    for split, names in (("train", [p.name for p in sorted((tiny_data / "images").iterdir())][:6]),
                         ("val", [p.name for p in sorted((tiny_data / "images").iterdir())][6:])):
        for name in names:
            instances = read_image(tiny_data / "labels" / name)
            mask = (instances > 0).astype(np.uint8)
            mask[find_boundaries(instances, mode="inner") & (instances > 0)] = 2
            write_png(tmp_path / split / "images" / name, read_image(tiny_data / "images" / name))
            write_png(tmp_path / split / "masks" / name, mask)
    config = tiny_config(tmp_path / "train", tmp_path / "runs", epochs=2)
    config.data.val = str(tmp_path / "val")
    result = train(config, progress=False)
    assert "val_dice_class2" in result.history[-1]
    ckpt = load_checkpoint(result.best_checkpoint)
    assert ckpt.num_classes == 3 and ckpt.model_config["num_classes"] == 3  # softmax head with 3 outputs
    written = predict(result.best_checkpoint, [tmp_path / "val" / "images"], tmp_path / "pred", device="cpu")
    assert len(written) == 2
    for path in written:
        assert set(np.unique(read_image(path))) <= {0, 1, 2}
