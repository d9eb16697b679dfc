"""Bounded memory by default (unetseg.inference.memory): memory sizes, the estimate's parts, the block side for a
budget, and ``predict`` switching to block-wise prediction for images whose whole-image prediction exceeds the
budget, for the formats that can be read by regions (and saying so for the others)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from unetseg.checkpoint import Checkpoint, save_checkpoint
from unetseg.data.io import DataError
from unetseg.inference.bigimage import region_read_problem
from unetseg.inference.files import predict
from unetseg.inference.memory import (PredictionCost, choose_block, parse_memory, prediction_cost,
                                      widest_activation, workers_for_budget)
from unetseg.inference.outputs import write_ome_zarr
from unetseg.models import create_model

H, W = 300, 280


@pytest.mark.parametrize("text, size", [("800MiB", 800 * 2**20), ("4GiB", 4 * 2**30), ("1.5G", 3 * 2**29),
                                        ("512", 512 * 2**20), (256, 256 * 2**20), ("2GB", 2 * 10**9),
                                        ("64 kib", 64 * 1024), (".5TiB", 2**39)])
def test_memory_sizes(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1G", "4XB", "GiB", "1e3M", "1,5G"])
def test_bad_memory_sizes_are_named(text):
    with pytest.raises(ValueError, match=f"memory size {text!r}: expected a positive number with a unit"):
        parse_memory(text)


def test_widest_activation_of_a_unet_is_its_last_concatenation():
    # unet_bn base 4, depth 2: at full resolution the last decoder level concatenates 4 skip + 4 upsampled channels
    assert widest_activation(create_model("unet_bn", base_channels=4, depth=2)) == 8.0
    assert widest_activation(create_model("unet_bn", base_channels=8, depth=3)) == 16.0


def test_cost_parts_by_hand():
    model = create_model("unet_bn", base_channels=4, depth=2, num_classes=2)
    # bf16: 2 bytes x 3.6 x 8 elements for the network; 4 bytes x 1 channel, 12 x 2 classes and 16 per pixel
    assert prediction_cost(model, "bf16", 2, 1).per_pixel == pytest.approx(2 * 3.6 * 8 + 4 + 24 + 16)
    tiled = prediction_cost(model, "fp32", 2, 3, tile=60, batch_size=2, tta="flips")
    window = model.input_size_for(60)
    assert tiled.per_pixel == 12 + 24 + 16 + 8 and tiled.constant == pytest.approx(4 * 3.6 * 8 * 2 * window**2)
    assert PredictionCost(10.0, 5.0).with_outputs(overlays=True, probabilities=2).bytes(2, 3) == 6 * 54 + 5


def test_block_for_a_budget():
    cost = PredictionCost(1.0)  # one byte per pixel
    assert choose_block(cost, (2048 + 128) ** 2, 64, 10000, 9000) == 2048  # the default block fits
    assert choose_block(cost, (1024 + 128) ** 2, 64, 10000, 9000) == 1024
    assert choose_block(cost, (1024 + 128) ** 2 - 1, 64, 10000, 9000) == 768
    assert choose_block(cost, 10**12, 64, 700, 300) == 768  # not beyond the image
    assert choose_block(cost, 1, 64, 10000, 9000) == 256  # nothing fits: the smallest
    assert choose_block(cost, 1, 300, 10000, 9000) == 512  # ... which holds the halo
    assert workers_for_budget(100.0, 350.0, cpus=8) == 3 and workers_for_budget(100.0, 50.0, cpus=8) == 1
    assert workers_for_budget(1.0, 10**6, cpus=4) == 4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    model = create_model("unet_bn", base_channels=4, depth=2, num_classes=1)
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_checkpoint(path, Checkpoint(model_config=model.config, num_classes=2, class_names=["background", "cells"],
                                     normalization={"mode": "percentile", "low": 1.0, "high": 99.8},
                                     model_state=model.state_dict()))
    return str(path)


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W), dtype=np.uint8)


def test_image_over_the_budget_is_predicted_by_blocks(checkpoint, pixels, tmp_path, caplog):
    tifffile.imwrite(tmp_path / "big.tif", pixels, tile=(64, 64))
    with caplog.at_level(logging.INFO, logger="unetseg"):
        (auto,) = predict(checkpoint, [tmp_path / "big.tif"], tmp_path / "auto", device="cpu", memory_budget="1MiB",
                          halo=16)
    assert auto == tmp_path / "auto" / "big.tif" and tifffile.TiffFile(auto).pages[0].is_tiled
    assert "more than the memory budget of 1 MiB: it is read, predicted and written block by block (blocks of " \
           "256x256 pixels with 16 pixels of context" in caplog.text
    (explicit,) = predict(checkpoint, [tmp_path / "big.tif"], tmp_path / "blocks", device="cpu", block=256, halo=16)
    np.testing.assert_array_equal(tifffile.imread(auto), tifffile.imread(explicit))
    # the same image within the budget: whole, as a PNG
    (whole,) = predict(checkpoint, [tmp_path / "big.tif"], tmp_path / "whole", device="cpu", memory_budget="1GiB")
    assert whole == tmp_path / "whole" / "big.png"
    # an OME-Zarr image is read by regions too, and gives the TIFF's blocks
    write_ome_zarr(tmp_path / "big.ome.zarr", pixels, {})
    (zarr_out,) = predict(checkpoint, [tmp_path / "big.ome.zarr"], tmp_path / "zarr", device="cpu",
                          memory_budget="1MiB", halo=16)
    np.testing.assert_array_equal(tifffile.imread(zarr_out), tifffile.imread(explicit))


def test_formats_that_cannot_be_read_by_regions_are_named(checkpoint, pixels, tmp_path, caplog):
    Image.fromarray(pixels).save(tmp_path / "a.png")
    # one compressed strip of 82 KiB: decoding it for any region would exceed a budget of 64 KiB
    tifffile.imwrite(tmp_path / "strip.tif", pixels, compression="zlib", rowsperstrip=H)
    with caplog.at_level(logging.WARNING, logger="unetseg"):
        written = predict(checkpoint, [tmp_path / "a.png", tmp_path / "strip.tif"], tmp_path / "out", device="cpu",
                          memory_budget="64KiB")
    assert [p.name for p in written] == ["a.png", "strip.png"]  # predicted whole
    assert f"{tmp_path / 'a.png'}: PNG images cannot be read by regions" in caplog.text
    assert f"{tmp_path / 'strip.tif'}: its compressed strips of {H} rows hold" in caplog.text
    assert caplog.text.count("convert it to a tiled TIFF or OME-Zarr") == 2
    assert caplog.text.count("it is predicted whole") == 2
    tifffile.imwrite(tmp_path / "tiled.tif", pixels, tile=(32, 32), compression="zlib")
    assert region_read_problem(tmp_path / "tiled.tif", limit=32 * 32) is None
    assert "its tiles hold" in region_read_problem(tmp_path / "tiled.tif", limit=100)


def test_outputs_needing_the_whole_image_are_refused_over_the_budget(checkpoint, pixels, tmp_path, cli, capsys):
    tifffile.imwrite(tmp_path / "big.tif", pixels, tile=(64, 64))
    with pytest.raises(DataError, match=r"big.tif: predicting it whole needs about .* more than the memory budget "
                                        r"of 1 MiB, and --overlay, --instances need\(s\) the whole image"):
        predict(checkpoint, [tmp_path / "big.tif"], tmp_path / "out", device="cpu", memory_budget="1MiB",
                overlays=True, instances="components")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    assert cli(["predict", "--checkpoint", checkpoint, "--input", str(tmp_path / "big.tif"), "--output",
                str(tmp_path / "o"), "--memory-budget", "12XB"]) == 2
    assert "--memory-budget: memory size '12XB': expected a positive number with a unit" in capsys.readouterr().err
