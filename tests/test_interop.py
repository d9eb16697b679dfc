"""Prediction outputs for other tools, read back with those tools' own readers: ImageJ/Fiji ROI zips (roifile) and
OME-Zarr images with label images (ome-zarr-py's reader, what napari-ome-zarr uses)."""

from __future__ import annotations

import sys
import zipfile

import numpy as np
import pytest
import roifile
import torch
from PIL import Image
from skimage.draw import disk, polygon2mask

from unetseg.checkpoint import Checkpoint, save_checkpoint
from unetseg.data.io import DataError, read_image
from unetseg.data.normalize import Normalization
from unetseg.inference.outputs import PredictionWriter, object_outline, write_ome_zarr, write_rois
from unetseg.models import create_model

ome_zarr = pytest.importorskip("ome_zarr", reason="the ome extra (pip install unetseg[ome]) is not installed")
from ome_zarr.io import parse_url  # noqa: E402
from ome_zarr.reader import Label, Multiscales, Reader  # noqa: E402


def _shapes() -> np.ndarray:
    """A hand-made 60 x 80 instance label image: a rectangle, a disk, a concave U, an L touching the image border,
    a 2 x 3 speck, and a diagonal staircase (pixels touching at corners only)."""
    objects = np.zeros((60, 80), np.int32)
    objects[5:15, 5:25] = 1  # rectangle, 200 pixels
    objects[disk((35, 15), 8, shape=objects.shape)] = 2
    objects[20:45, 35:60] = 3  # U: a square with a notch cut from the top
    objects[20:38, 42:53] = 0
    objects[50:60, 0:30] = 4  # L along the bottom-left border
    objects[40:60, 0:6] = 4
    objects[3:5, 70:73] = 5  # a speck
    for i in range(8):  # staircase of 2x2 blocks touching at corners
        objects[48 + i: 50 + i, 62 + 2 * i: 64 + 2 * i] = 6
    return objects


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _rasterise(roi: roifile.ImagejRoi, shape: tuple[int, int]) -> np.ndarray:
    """The pixels whose centres lie inside the ROI's polygon. ImageJ puts pixel (row i, column j) at
    [j, j + 1) x [i, i + 1), skimage's polygon2mask puts its centre at (i, j): shift by half a pixel."""
    xy = roi.coordinates()
    return polygon2mask(shape, np.stack([xy[:, 1] - 0.5, xy[:, 0] - 0.5], axis=1))


def test_roi_zip_has_one_polygon_per_object_matching_it(tmp_path):
    objects = _shapes()
    path = tmp_path / "cells_rois.zip"
    assert write_rois(path, objects) == 6
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [f"{label}.roi" for label in range(1, 7)]
    rois = roifile.roiread(path)
    assert len(rois) == int(objects.max()) == len(np.unique(objects)) - 1
    for label, roi in enumerate(rois, start=1):
        assert roi.name == str(label) and roi.roitype == roifile.ROI_TYPE.POLYGON
        mask = objects == label
        iou = _iou(_rasterise(roi, objects.shape), mask)
        assert iou >= 0.9, (label, iou)
    # the outline runs half a pixel outside the rectangle's pixel centres: ImageJ's box is [5, 25) x [5, 15)
    xy = rois[0].coordinates()
    assert (xy[:, 0].min(), xy[:, 0].max(), xy[:, 1].min(), xy[:, 1].max()) == (5.0, 25.0, 5.0, 15.0)


def test_the_outline_of_a_concave_object_keeps_its_notch():
    u_shape = np.zeros((10, 9), bool)
    u_shape[1:9, 1:8] = True
    u_shape[1:6, 3:6] = False  # notch, 5 rows deep
    outline = object_outline(u_shape)
    inside = polygon2mask(u_shape.shape, np.stack([outline[:, 1] - 0.5, outline[:, 0] - 0.5], axis=1))
    np.testing.assert_array_equal(inside, u_shape)  # exactly the object's pixels: the notch stays out


def test_an_object_with_a_hole_and_no_objects(tmp_path):
    ring = np.zeros((20, 20), np.int32)
    ring[2:18, 2:18] = 1
    ring[8:12, 8:12] = 0  # 16 of 256 pixels: the outer contour covers them (IoU 240/256)
    (roi,) = roifile.roiread(_written(tmp_path / "ring_rois.zip", ring))
    assert _iou(_rasterise(roi, ring.shape), ring == 1) == pytest.approx(240 / 256)
    empty = _written(tmp_path / "empty_rois.zip", np.zeros((5, 5), np.int32))
    with zipfile.ZipFile(empty) as archive:
        assert archive.namelist() == []


def _written(path, objects):
    write_rois(path, objects)
    return path


def _nodes(path) -> dict[str, object]:
    """The nodes ome-zarr-py's reader finds in ``path``, by their path below it ('' for the image)."""
    nodes = {}
    for node in Reader(parse_url(str(path)))():
        key = str(node.zarr.path).rstrip("/").split(path.name, 1)[1].strip("/")
        nodes[key] = node
    return nodes


@pytest.mark.parametrize("channels", [None, 3])
def test_ome_zarr_holds_the_image_and_its_label_images(tmp_path, channels):
    rng = np.random.default_rng(0)
    shape = (40, 50) if channels is None else (40, 50, channels)
    image = rng.integers(0, 4000, shape, dtype=np.uint16)
    labels = (image if channels is None else image[..., 0]) > 2000
    objects = _shapes()[:40, :50].astype(np.uint16)
    path = write_ome_zarr(tmp_path / "a.ome.zarr", image, {"classes": labels.astype(np.uint8), "instances": objects},
                          ["background", "nucleus"])
    nodes = _nodes(path)
    assert set(nodes) == {"", "labels", "labels/classes", "labels/instances"}
    picture = nodes[""]
    assert any(isinstance(spec, Multiscales) for spec in picture.specs)
    expected = image if channels is None else np.moveaxis(image, -1, 0)
    np.testing.assert_array_equal(np.asarray(picture.data[0]), expected)
    axes = [axis["name"] for axis in picture.metadata["axes"]]
    assert axes == (["y", "x"] if channels is None else ["c", "y", "x"])
    for name, values in (("classes", labels.astype(np.uint8)), ("instances", objects)):
        node = nodes[f"labels/{name}"]
        assert any(isinstance(spec, Label) for spec in node.specs)
        data = np.asarray(node.data[0])
        assert np.issubdtype(data.dtype, np.unsignedinteger)  # napari makes integer images labels layers
        np.testing.assert_array_equal(data, values)
    properties = nodes["labels/classes"].metadata["properties"]
    assert properties == {1: {"class": "nucleus"}}


def test_large_images_get_a_resolution_pyramid(tmp_path):
    image = np.zeros((600, 520), np.uint8)
    image[100:300, 50:400] = 200
    path = write_ome_zarr(tmp_path / "big.ome.zarr", image, {"classes": (image > 0).astype(np.uint8)})
    nodes = _nodes(path)
    assert [d.shape for d in nodes[""].data] == [(600, 520), (300, 260)]  # down to a 256-pixel smaller side
    assert [d.shape for d in nodes["labels/classes"].data] == [(600, 520), (300, 260)]
    assert np.asarray(nodes["labels/classes"].data[1]).max() == 1  # labels downsampled by picking, not averaging


def test_writer_in_the_ome_zarr_format(tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (30, 40), dtype=np.uint8)
    labels = (image > 127).astype(np.uint8)
    objects = _shapes()[:30, :40]
    writer = PredictionWriter(tmp_path, 2, overlays=True, format="ome-zarr", rois=True, class_names=["bg", "cell"])
    probs = np.stack([1.0 - labels, labels]).astype(np.float32)
    target = writer.write("in/cells.png", image, probs, labels, objects)
    assert target == tmp_path / "cells.ome.zarr"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.ome.zarr", "cells_overlay.png", "cells_rois.zip"]
    nodes = _nodes(target)
    np.testing.assert_array_equal(np.asarray(nodes["labels/classes"].data[0]), labels)  # class indices, not 0/255
    np.testing.assert_array_equal(np.asarray(nodes["labels/instances"].data[0]), objects)
    assert len(roifile.roiread(tmp_path / "cells_rois.zip")) == int(objects.max())


def test_missing_ome_zarr_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ome_zarr", None)  # as if the package were not installed
    monkeypatch.setitem(sys.modules, "ome_zarr.writer", None)
    with pytest.raises(DataError, match=r"--format ome-zarr needs the ome-zarr package: pip install unetseg\[ome\]"):
        PredictionWriter(tmp_path / "out", 2, format="ome-zarr")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained 2-class unet_bn (zscore normalisation), its head shifted so that about half of a noise image is
    foreground."""
    torch.manual_seed(0)
    model = create_model("unet_bn", base_channels=2, depth=2).eval()
    with torch.no_grad():  # half of a noise image foreground: the outputs have objects to write
        logits = model(torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1)))
        model.head.bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    path = tmp_path_factory.mktemp("ckpt") / "c.safetensors"
    save_checkpoint(path, Checkpoint(model_config=model.config, num_classes=2, class_names=["background", "cell"],
                                     normalization=Normalization("zscore").to_dict(), model_state=model.state_dict()))
    return path


def test_cli_predict_writes_ome_zarr_and_rois_that_agree(checkpoint, tmp_path, cli):
    rng = np.random.default_rng(2)
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (36, 44), dtype=np.uint8)).save(images / f"{name}.png")
    out = tmp_path / "out"
    assert cli(["predict", "--checkpoint", str(checkpoint), "--input", str(images), "--output", str(out),
                "--format", "ome-zarr", "--rois", "--instances", "components", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.ome.zarr", "a_rois.zip", "b.ome.zarr", "b_rois.zip"]
    for name in ("a", "b"):
        nodes = _nodes(out / f"{name}.ome.zarr")
        np.testing.assert_array_equal(np.asarray(nodes[""].data[0]), read_image(images / f"{name}.png"))
        objects = np.asarray(nodes["labels/instances"].data[0])
        classes = np.asarray(nodes["labels/classes"].data[0])
        assert objects.max() > 0 and set(np.unique(classes).tolist()) == {0, 1}
        np.testing.assert_array_equal(objects > 0, classes > 0)  # objects cover the foreground
        assert len(roifile.roiread(out / f"{name}_rois.zip")) == int(objects.max())
    # again without --overwrite: refused before anything is predicted
    assert cli(["predict", "--checkpoint", str(checkpoint), "--input", str(images), "--output", str(out),
                "--format", "ome-zarr", "--device", "cpu"]) == 2


def test_cli_predict_rois_alone_use_the_checkpoints_instance_method(checkpoint, tmp_path, cli):
    image = tmp_path / "c.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (32, 32), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    assert cli(["predict", "--checkpoint", str(checkpoint), "--input", str(image), "--output", str(out),
                "--rois", "--format", "tif", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["c.tif", "c_rois.zip"]  # no instance image without --instances
    labels = read_image(out / "c.tif")
    assert labels.dtype == np.uint8 and set(np.unique(labels).tolist()) <= {0, 255}
    from skimage.measure import label as components

    assert len(roifile.roiread(out / "c_rois.zip")) == int(components(labels > 0, connectivity=1).max())


def test_the_new_flags_parse_to_their_fields(capsys):
    from unetseg.cli.main import build_parser
    from unetseg.cli.options import options_from_args
    from unetseg.config import ExportConfig, PredictConfig

    parse = build_parser().parse_args
    args = parse(["predict", "--checkpoint", "c", "--input", "a.png", "--output", "o", "--format", "ome-zarr",
                  "--rois"])
    assert options_from_args(args, PredictConfig) == PredictConfig("c", ["a.png"], "o", format="ome-zarr", rois=True)
    assert options_from_args(parse(["predict", "--checkpoint", "c", "--input", "a", "--output", "o"]),
                             PredictConfig).format == "png"
    args = parse(["export", "c", "m.zip", "--format", "bioimageio", "--image", "i.png", "--name", "Nuclei model",
                  "--description", "D", "--author", "A B", "C D", "--license", "MIT", "--cite", "T=10.1/x",
                  "--cite", "U et al.=https://u.org"])
    assert options_from_args(args, ExportConfig) == ExportConfig(
        "c", "m.zip", format="bioimageio", image="i.png", name="Nuclei model", description="D",
        authors=["A B", "C D"], license="MIT", cite={"T": "10.1/x", "U et al.": "https://u.org"})
    with pytest.raises(SystemExit) as info:
        parse(["predict", "--checkpoint", "c", "--input", "a", "--output", "o", "--format", "jpeg"])
    assert info.value.code == 2 and "jpeg" in capsys.readouterr().err
