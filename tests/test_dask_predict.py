"""Block-wise prediction as Dask tasks (unetseg.inference.dask_blocks): every task sees exactly the array that
single-process block prediction (unetseg.inference.bigimage.predict_big_tiff) gives the network, so the labels are
identical, bit for bit; the OME-Zarr output opens with ome-zarr-py's reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage

from conftest import randomize_weights
from unetseg.checkpoint import Checkpoint, save_checkpoint
from unetseg.data.synthetic import make_nuclei_image
from unetseg.inference.bigimage import predict_big_tiff
from unetseg.inference.dask_blocks import label_blocks
from unetseg.inference.files import predict
from unetseg.inference.predictor import Predictor
from unetseg.models import create_model

distributed = pytest.importorskip("distributed", reason="the dask extra (pip install unetseg[dask]) is not installed")

# 2 x 2 blocks of 256 with a halo of 16: the last block row is 44 pixels high, the last block column 10 pixels wide,
# narrower than the halo (its neighbour's context then runs into the mirrored border)
H, W, BLOCK, HALO = 300, 266, 256, 16


def nuclei() -> np.ndarray:
    """Synthetic nuclei, H x W, uint8."""
    return make_nuclei_image(np.random.default_rng(4), H, W, n_nuclei=(15, 20))[0]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`nuclei` as a tiled TIFF."""
    path = tmp_path_factory.mktemp("in") / "nuclei.tif"
    tifffile.imwrite(path, nuclei(), tile=(64, 64))
    return path


@pytest.fixture(scope="module")
def checkpoint(image: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained unet_bn (base 4, depth 2) with weights that make every layer matter and a head bias that puts
    about half of the image into the foreground; it normalises each block by its own percentiles (so that the
    block grid shows in the labels)."""
    model = randomize_weights(create_model("unet_bn", base_channels=4, depth=2, num_classes=2), seed=3)
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    ckpt = Checkpoint(model_config=model.config, num_classes=2, class_names=["background", "cells"],
                      normalization={"mode": "percentile", "low": 1.0, "high": 99.8}, model_state=model.state_dict())
    save_checkpoint(path, ckpt)
    probs = Predictor.from_checkpoint(path, device="cpu").predict_proba(tifffile.imread(image))[1]
    with torch.no_grad():
        model.head.bias[1] -= float(np.median(np.log(probs / (1 - probs))))
    ckpt.model_state = model.state_dict()
    save_checkpoint(path, ckpt)
    return str(path)


@pytest.fixture(scope="module")
def cluster():
    """A local Dask cluster in this process (threads: it starts in a fraction of a second)."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as local:
        yield local


@pytest.fixture(scope="module")
def single(checkpoint: str, image: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The labels of single-process block prediction (``--block``)."""
    (written,) = predict(checkpoint, [image], tmp_path_factory.mktemp("single"), device="cpu", block=BLOCK,
                         halo=HALO)
    return tifffile.imread(written)


def test_dask_tiff_equals_single_process_blocks(checkpoint, image, cluster, single, tmp_path):
    (written,) = predict(checkpoint, [image], tmp_path, device="cpu", block=BLOCK, halo=HALO,
                         scheduler=cluster.scheduler_address)
    assert written == tmp_path / "nuclei.tif"
    with tifffile.TiffFile(written) as tif:
        assert tif.pages[0].is_tiled and tif.pages[0].dtype == np.uint8
        labels = tif.asarray()
    np.testing.assert_array_equal(labels, single)
    assert set(np.unique(labels)) == {0, 255} and 0.2 < (labels > 0).mean() < 0.8
    # the block grid matters: whole-image prediction differs, so a Dask grid other than the blocks' would show
    (whole,) = predict(checkpoint, [image], tmp_path / "whole", device="cpu", format="tif")
    assert (tifffile.imread(whole) != labels).any()


def test_dask_ome_zarr_opens_with_ome_zarr_py(checkpoint, image, cluster, single, tmp_path, cli):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    assert cli(["predict", "--checkpoint", checkpoint, "--input", str(image), "--output", str(tmp_path),
                "--device", "cpu", "--block", str(BLOCK), "--halo", str(HALO), "--format", "ome-zarr",
                "--scheduler", cluster.scheduler_address]) == 0
    nodes = {str(node.zarr.path).rstrip("/").split("nuclei.ome.zarr", 1)[1].strip("/"): node
             for node in Reader(parse_url(str(tmp_path / "nuclei.ome.zarr")))()}
    assert {"", "labels/classes"} <= set(nodes)
    np.testing.assert_array_equal(np.asarray(nodes[""].data[0]), tifffile.imread(image))
    classes = nodes["labels/classes"]
    assert any(isinstance(spec, Label) for spec in classes.specs)
    np.testing.assert_array_equal(np.asarray(classes.data[0]), single // 255)  # class indices, not 0/255


class Mean5:
    """An analytic block predictor: the 5 x 5 mean of the (channel-averaged) block, rounded, cropped by ``halo``."""

    dtype = np.dtype(np.uint16)

    def __init__(self, halo: int) -> None:
        self.halo = halo

    def __call__(self, padded: np.ndarray) -> np.ndarray:
        h = self.halo
        return mean5(padded)[h:padded.shape[0] - h, h:padded.shape[1] - h]


def mean5(array: np.ndarray) -> np.ndarray:
    grey = array.mean(axis=2) if array.ndim == 3 else array.astype(np.float64)
    return ndimage.uniform_filter(grey, 5, mode="mirror").round().astype(np.uint16)


@pytest.mark.parametrize("shape, block, halo", [((H, W), BLOCK, HALO), ((70, 300, 3), 256, 20), ((10, 12), 256, 16),
                                                ((300, 300), 256, 0)])
def test_map_overlap_gives_every_block_the_single_process_input(tmp_path, shape, block, halo):
    pixels = np.random.default_rng(5).integers(0, 256, shape, dtype=np.uint8)
    tifffile.imwrite(tmp_path / "in.tif", pixels, tile=(32, 32), photometric="rgb" if len(shape) == 3 else None)
    lazy = label_blocks(tmp_path / "in.tif", Mean5(halo), block)
    assert lazy.chunks == tuple(tuple(min(block, n - s) for s in range(0, n, block)) for n in shape[:2])
    labels = lazy.compute(scheduler="synchronous")
    reference = predict_big_tiff(mean5, tmp_path / "in.tif", tmp_path / "ref.tif", block, halo=halo)
    np.testing.assert_array_equal(labels, tifffile.imread(reference))
    if halo >= 2:  # enough context for a 5 x 5 filter: the whole-image result, seamless
        np.testing.assert_array_equal(labels, mean5(pixels))


def test_unreachable_scheduler_is_named(checkpoint, image, tmp_path, cli, capsys):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "0.2s"}):
            assert cli(["predict", "--checkpoint", checkpoint, "--input", str(image), "--output", str(tmp_path / "o"),
                    "--scheduler", "tcp://127.0.0.1:9", "--device", "cpu"]) == 2
    assert "--scheduler tcp://127.0.0.1:9: no Dask scheduler answers there" in capsys.readouterr().err
