"""Prediction outputs (unetseg.inference.outputs): file names, stored dtypes and values, and what is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from unetseg.data.io import DataError, read_image
from unetseg.inference.outputs import (PredictionWriter, instance_image, label_image, output_path, overlay,
                                       planned_outputs, probability_image)


def _probs(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot probabilities (K, H, W) of ``labels``, with 0.75 on the chosen class and the rest shared."""
    probs = np.full((num_classes, *labels.shape), 0.25 / (num_classes - 1), np.float32)
    np.put_along_axis(probs, labels[None].astype(np.int64), 0.75, axis=0)
    return probs


def test_output_names():
    folder = Path("out")
    assert output_path(folder, "a.b", "labels") == folder / "a.b.png"
    assert output_path(folder, "a", "instances") == folder / "a_instances.png"
    assert output_path(folder, "a", "probabilities") == folder / "a_prob.tif"
    assert output_path(folder, "a", "overlay") == folder / "a_overlay.png"
    assert output_path(folder, "a", "blocks") == folder / "a.tif"
    with pytest.raises(ValueError, match="unknown output kind 'mask'.*labels"):
        output_path(folder, "a", "mask")


def test_label_image_storage():
    labels = np.array([[0, 1], [1, 0]], np.uint8)
    binary = label_image(labels, 2)
    assert binary.dtype == np.uint8 and binary.tolist() == [[0, 255], [255, 0]]
    three = label_image(np.array([[0, 1], [2, 0]], np.uint8), 3)
    assert three.dtype == np.uint8 and three.tolist() == [[0, 1], [2, 0]]
    many = label_image(np.array([[0, 299]], np.int32), 300)
    assert many.dtype == np.uint16 and many.tolist() == [[0, 299]]


def test_instance_and_probability_storage():
    objects = np.array([[0, 3], [65535, 0]], np.int32)
    stored = instance_image(objects, "cells.png")
    assert stored.dtype == np.uint16 and stored.tolist() == [[0, 3], [65535, 0]]
    with pytest.raises(DataError, match=r"cells\.png: 65536 objects do not fit a 16-bit"):
        instance_image(np.array([[0, 65536]], np.int32), "cells.png")
    probs = probability_image(np.array([[[0.25]], [[0.75]]], np.float32))
    assert probs.dtype == np.float16 and probs[:, 0, 0].tolist() == [0.25, 0.75]


def test_overlay_colours_hand_computed():
    image = np.array([[0, 100], [100, 0]], np.uint8)  # stretched to 0 and 255
    labels = np.array([[0, 2], [0, 0]], np.uint8)
    rgb = overlay(image, labels)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[1, 0].tolist() == [255, 255, 255]
    # class 2 has the second palette colour (60, 180, 75): 0.55 * 255 + 0.45 * colour
    assert rgb[0, 1].tolist() == [167, 221, 174]


def test_writer_writes_the_requested_files_with_their_formats(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (6, 5), dtype=np.uint8)
    labels = (image > 127).astype(np.uint8)
    objects = labels.astype(np.int32) * 7
    writer = PredictionWriter(tmp_path / "new" / "out", 2, overlays=True, probabilities=True)
    target = writer.write(Path("in/cells.tif"), image, _probs(labels, 2), labels, objects)
    out = tmp_path / "new" / "out"
    assert target == out / "cells.png"
    assert sorted(p.name for p in out.iterdir()) == ["cells.png", "cells_instances.png", "cells_overlay.png",
                                                     "cells_prob.tif"]
    stored = read_image(target)
    assert stored.dtype == np.uint8 and set(np.unique(stored).tolist()) == {0, 255}
    np.testing.assert_array_equal(stored, labels * 255)
    instances = read_image(out / "cells_instances.png")
    assert instances.dtype == np.uint16 and set(np.unique(instances).tolist()) == {0, 7}
    probs = tifffile.imread(out / "cells_prob.tif")
    assert probs.dtype == np.float16 and probs.shape == (2, 6, 5)
    assert len(tifffile.TiffFile(out / "cells_prob.tif").pages) == 2  # a page per class
    np.testing.assert_array_equal(probs[1], np.where(labels == 1, 0.75, 0.25).astype(np.float16))
    with Image.open(out / "cells_overlay.png") as picture:
        assert picture.mode == "RGB" and picture.size == (5, 6)


def test_writer_multiclass_labels_and_only_the_label_file_by_default(tmp_path):
    labels = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    writer = PredictionWriter(tmp_path, 3)
    writer.write("a.png", np.zeros((2, 3), np.uint8), _probs(labels, 3), labels)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    stored = read_image(tmp_path / "a.png")
    assert stored.dtype == np.uint8 and stored.tolist() == labels.tolist()


def test_too_many_objects_name_the_file_and_write_nothing(tmp_path):
    labels = np.ones((2, 2), np.uint8)
    objects = np.array([[1, 2], [3, 70000]], np.int32)
    writer = PredictionWriter(tmp_path, 2, overlays=True, probabilities=True)
    with pytest.raises(DataError, match=r"big\.tif: 70000 objects do not fit a 16-bit"):
        writer.write(Path("data/big.tif"), labels, _probs(labels, 2), labels, objects)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("num_classes,predicted,stored", [(2, 1, 255), (3, 2, 2)])
def test_block_mode_writes_a_tiled_tiff_of_stored_labels(tmp_path, num_classes, predicted, stored):
    image = np.random.default_rng(1).integers(0, 255, (300, 270), dtype=np.uint8)
    source = tmp_path / "big.tif"
    tifffile.imwrite(source, image)
    calls = []
    writer = PredictionWriter(tmp_path / "out", num_classes)
    target = writer.write_blocks(source, lambda region: (region > 127).astype(np.uint8) * predicted, 256, halo=4,
                                 progress=lambda done, total: calls.append((done, total)))
    assert target == tmp_path / "out" / "big.tif"
    labels = tifffile.imread(target)
    assert labels.dtype == np.uint8 and tifffile.TiffFile(target).pages[0].is_tiled
    np.testing.assert_array_equal(labels, (image > 127).astype(np.uint8) * stored)
    assert calls[-1] == (4, 4)  # 300 x 270 in 256-pixel blocks: 2 x 2


def test_planned_outputs_list_what_the_writer_writes(tmp_path):
    labels = np.array([[0, 1], [1, 0]], np.uint8)
    writer = PredictionWriter(tmp_path / "out", 2, overlays=True, probabilities=True)
    planned = writer.outputs("in/cells.tif", instances=True)
    assert [p.name for p in planned] == ["cells_instances.png", "cells_prob.tif", "cells.png", "cells_overlay.png"]
    writer.write("in/cells.tif", labels, _probs(labels, 2), labels, labels.astype(np.int32))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in planned)
    assert writer.outputs("in/cells.tif", instances=True, blocks=True) == [tmp_path / "out" / "cells.tif"]
    assert planned_outputs("o", "x.png") == [Path("o") / "x.png"]


def test_writer_names_an_output_folder_it_cannot_create(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(DataError, match=r"file/out: cannot create the output folder .*choose another --output"):
        PredictionWriter(tmp_path / "file" / "out", 2)
    assert (tmp_path / "file").read_text() == "in the way"
