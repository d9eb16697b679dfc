"""The border weight map through the pipeline: instance labels read, maps cropped and flipped with the masks,
weighted loss in training, and the options on the command line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from unetseg import train
from unetseg.cli.main import main
from unetseg.data.layouts import load_folder
from unetseg.data.io import DataError
from unetseg.data.patches import PatchDataset
from unetseg.data.prepared import border_weight_map
from unetseg.data.weightmap import unet_weight_map
from unetseg.engine.setup import border_weight_maps

from conftest import tiny_config


def test_instances_are_read_and_checked(tiny_data, tmp_path):
    data = load_folder(tiny_data, instances=True)
    for sample in data.samples:
        assert sample.instances.shape == sample.labels.shape
        np.testing.assert_array_equal(sample.instances > 0, sample.labels == 1)
    copy = shutil.copytree(tiny_data, tmp_path / "d")
    shutil.rmtree(copy / "labels")
    with pytest.raises(DataError, match="labels"):
        load_folder(copy, instances=True)
    assert load_folder(copy).samples[0].instances is None  # not asked for: not needed


def test_weights_move_with_the_labels():
    h, w = 30, 40
    yy, xx = np.mgrid[0:h, 0:w]
    code = (yy * 100 + xx).astype(np.int64)
    ds = PatchDataset([code.astype(np.float32)[None]], [code], 20, 12, samples_per_epoch=10, seed=3,
                      weights=[code.astype(np.float32) + 0.5], foreground_fraction=0.5,
                      augmentation={"elastic": False, "gamma": False, "brightness_contrast": False})
    for i in range(10):
        tile, target, weight = ds[i]
        np.testing.assert_array_equal(tile[0, 4:16, 4:16].numpy().astype(np.int64), target.numpy())
        np.testing.assert_array_equal(weight.numpy(), target.numpy() + 0.5)
        assert weight.dtype == torch.float32


def test_border_weight_maps_combine_balance_and_border(tiny_data):
    config = tiny_config(tiny_data, tiny_data)
    config.train.weight_map = True
    samples = load_folder(tiny_data, instances=True).samples
    maps = border_weight_maps(samples, 2, config)
    for sample, weight in zip(samples, maps):
        assert weight.shape == sample.labels.shape and weight.dtype == np.float32
        inside = weight[sample.labels == 1]
        assert np.allclose(inside, inside[0])  # inside objects: the class weight alone
        assert weight.min() > 0
    touching = [m for m, s in zip(maps, samples) if m[s.labels == 0].max() > 2.0]
    assert touching, "no high border weight between close nuclei in any image"


def test_weight_map_without_class_balance():
    labels = np.zeros((20, 30), np.int64)
    instances = np.zeros_like(labels)
    instances[4:12, 3:11], instances[4:12, 13:21] = 1, 2  # two squares 2 px apart
    labels[instances > 0] = 1
    labels[0, 0] = 255
    with_balance = border_weight_map(labels, instances, 2, 10.0, 5.0, ignore_index=255)
    plain = border_weight_map(labels, instances, 2, 10.0, 5.0, ignore_index=255, balance=False)
    border = unet_weight_map(instances, 10.0, 5.0, class_weights=None) - 1.0
    counted = labels != 255
    np.testing.assert_allclose(plain[counted], 1.0 + border[counted], rtol=1e-6)
    assert plain[0, 0] == 0.0 and with_balance[0, 0] == 0.0
    # with balance the rarer foreground (128 of 599 counted pixels) weighs more than background inside
    assert with_balance[8, 6] > with_balance[19, 29] and plain[8, 6] == pytest.approx(plain[19, 29] - border[19, 29])
    assert plain[8, 12] > 1.0 + 0.5 * 10.0  # the gap between the squares keeps its border weight


def test_training_with_the_weight_map_and_loss_options(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    code = main(["train", "--data", str(tiny_data), "--base-channels", "4", "--depth", "2", "--epochs", "1",
                 "--batch-size", "2", "--patch-size", "24", "--samples-per-epoch", "4", "--output", str(runs),
                 "--name", "w", "--device", "cpu", "--no-progress", "--weight-map", "--w0", "8", "--sigma", "3",
                 "--no-weight-map-balance",
                 "--loss", "bce_dice", "--model-opt", "up_mode=bilinear"])
    assert code == 0
    from unetseg.config import load_config

    config = load_config(runs / "w" / "config.yaml")
    assert config.train.weight_map and config.train.weight_map_w0 == 8.0 and config.train.weight_map_sigma == 3.0
    assert not config.train.weight_map_balance


def test_weight_map_changes_training(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path / "a", epochs=1)
    config.train.weight_map = False
    plain = train(config, progress=False)
    config = tiny_config(tiny_data, tmp_path / "b", epochs=1)
    config.train.weight_map = True
    weighted = train(config, progress=False)
    assert plain.history[0]["train_loss"] != weighted.history[0]["train_loss"]


def test_model_options_cannot_override_what_the_data_decides(tiny_data, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_data), "--epochs", "1", "--output", str(tmp_path), "--no-progress",
                 "--model-opt", "num_classes=3"])
    assert code == 2 and "num_classes" in capsys.readouterr().err


def test_touching_borders_by_hand():
    from unetseg.data.masks import touching_borders

    instances = np.array([
        [1, 1, 2, 2, 0],
        [1, 1, 2, 2, 0],
        [0, 0, 0, 0, 3],
    ])
    expected = np.array([
        [0, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],  # (1, 3) touches object 3 diagonally
        [0, 0, 0, 0, 1],
    ], bool)
    np.testing.assert_array_equal(touching_borders(instances), expected)
    assert not touching_borders(np.array([[0, 1, 1], [0, 1, 1]])).any()  # one object: nothing to separate


def test_bad_loss_options_exit_2_naming_the_key(tiny_data, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_data), "--epochs", "1", "--output", str(tmp_path), "--no-progress",
                 "--loss", "focal", "--loss-opt", "gama=2"])
    assert code == 2 and "loss_options" in capsys.readouterr().err


def test_data_facts_give_the_foreground_share_of_instance_data(tiny_data, tmp_path):
    from unetseg.data.layouts import load_dataset
    from unetseg.engine.setup import data_facts

    eager = load_folder(tiny_data, instances=True)
    labels = np.stack([s.labels for s in eager.samples])
    expected = float((labels > 0).sum() / labels.size)  # counted by hand from the arrays
    lazy = load_dataset(tiny_data, instances=True, lazy=True)  # from the loading pass's pixel counts
    assert data_facts(eager, None).foreground_share == pytest.approx(expected)
    assert data_facts(lazy, None).foreground_share == pytest.approx(expected)
    marked = shutil.copytree(tiny_data, tmp_path / "m")  # 'not annotated' pixels are left out of the share
    from PIL import Image
    for i, path in enumerate(sorted((marked / "masks").iterdir())):
        mask = (np.array(Image.open(path)) > 0).astype(np.uint8)  # 0/1 classes, 255 = not annotated
        if i == 0:
            mask[:24] = 255
        Image.fromarray(mask).save(path)
    data = load_dataset(marked, instances=True, ignore_index=255, lazy=True)
    kept = np.concatenate([labels[0, 24:].ravel(), labels[1:].ravel()])
    assert data_facts(data, None).foreground_share == pytest.approx(float((kept > 0).mean()))
    shutil.rmtree(marked / "labels")
    assert data_facts(load_dataset(marked, ignore_index=255, lazy=True), None).foreground_share is None


def test_wrong_weight_map_values_are_refused(tiny_data, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  weight_map_balance: 'yes'\n")
    before = sorted(tmp_path.iterdir())
    assert main(["train", "--config", str(bad), "--data", str(tiny_data), "--output", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"unetseg train: error: {bad}: train.weight_map_balance: expected bool, got 'yes'")
    assert sorted(tmp_path.iterdir()) == before  # no run folder started
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", str(tiny_data), "--weight-map-balance=3"])
    assert info.value.code == 2
    assert "--weight-map-balance" in capsys.readouterr().err
