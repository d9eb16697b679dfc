"""Prediction outputs (unetseg.inference.outputs): file names, stored dtypes and values, and what is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from unetseg.data.io import DataError, read_image
from unetseg.inference.files import OutputConflictError, check_outputs
from unetseg.inference.outputs import (PredictionWriter, atomic_directory, instance_image, label_image, output_path,
                                       overlay, planned_outputs, possible_outputs, probability_image,
                                       remove_stale_directories)


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
    assert output_path(folder, "a", "rois") == folder / "a_rois.zip"
    assert output_path(folder, "a", "labels", "tif") == folder / "a.tif"
    assert output_path(folder, "a", "instances", "tif") == folder / "a_instances.tif"
    assert output_path(folder, "a", "labels", "ome-zarr") == folder / "a.ome.zarr"
    assert output_path(folder, "a", "overlay", "ome-zarr") == folder / "a_overlay.png"
    with pytest.raises(ValueError, match="unknown output kind 'mask'.*labels"):
        output_path(folder, "a", "mask")
    with pytest.raises(ValueError, match="unknown output format 'jpg'; expected one of png, tif, ome-zarr"):
        output_path(folder, "a", "labels", "jpg")


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
    wide = instance_image(np.array([[0, 65536]], np.int64), "cells.png")  # beyond 16 bits: 32 bits, not an error
    assert wide.dtype == np.uint32 and wide.tolist() == [[0, 65536]]
    with pytest.raises(DataError, match=r"cells\.png: instance labels must be in 0\.\.4294967295, got -1\.\.2"):
        instance_image(np.array([[-1, 2]], np.int32), "cells.png")
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


def test_more_objects_than_a_png_holds_go_to_a_32_bit_tiff(tmp_path, caplog):
    objects = np.arange(1, 70001, dtype=np.int32).reshape(280, 250)  # 70000 one-pixel objects
    objects[0, :3] = 0
    labels = (objects > 0).astype(np.uint8)
    writer = PredictionWriter(tmp_path, 2)
    assert possible_outputs(tmp_path, "data/big.tif", instances=True) == [tmp_path / "big_instances.tif"]
    with caplog.at_level("INFO", logger="unetseg"):
        writer.write(Path("data/big.tif"), labels, _probs(labels, 2), labels, objects)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "big_instances.tif"]
    assert "70000 objects do not fit a 16-bit PNG" in caplog.text and "big_instances.tif" in caplog.text
    stored = tifffile.imread(tmp_path / "big_instances.tif")
    assert stored.dtype == np.uint32 and int(stored.max()) == 70000
    np.testing.assert_array_equal(stored, objects)


def test_tif_format_writes_zlib_tiffs_of_unsigned_integers(tmp_path):
    labels = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    objects = np.array([[0, 1, 2], [2, 1, 0]], np.int32)
    writer = PredictionWriter(tmp_path, 3, format="tif")
    target = writer.write("in/a.png", np.zeros((2, 3), np.uint8), _probs(labels, 3), labels, objects)
    assert target == tmp_path / "a.tif"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "a_instances.tif"]
    for name, dtype, values in (("a.tif", np.uint8, labels), ("a_instances.tif", np.uint16, objects)):
        with tifffile.TiffFile(tmp_path / name) as tif:
            page = tif.pages[0]
            assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE  # zlib
            assert page.dtype == dtype and np.issubdtype(page.dtype, np.unsignedinteger)
            np.testing.assert_array_equal(page.asarray(), values)
    binary = PredictionWriter(tmp_path / "binary", 2, format="tif")
    binary.write("a.png", labels, _probs(labels > 0, 2), (labels > 0).astype(np.uint8))
    assert tifffile.imread(tmp_path / "binary" / "a.tif").tolist() == [[0, 255, 255], [255, 255, 0]]


def test_png_labels_are_unsigned_integers(tmp_path):
    labels = np.array([[0, 1], [1, 0]], np.uint8)
    writer = PredictionWriter(tmp_path, 2)
    writer.write("a.png", labels, _probs(labels, 2), labels, np.array([[0, 1], [2, 0]], np.int32))
    for name in ("a.png", "a_instances.png"):
        with Image.open(tmp_path / name) as picture:
            assert picture.mode in ("L", "I;16")  # 8-bit grey, 16-bit unsigned grey
        assert np.issubdtype(read_image(tmp_path / name).dtype, np.unsignedinteger)


def test_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown output format 'jpeg'"):
        PredictionWriter(tmp_path, 2, format="jpeg")


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
    assert [p.name for p in planned_outputs("o", "x.png", True, True, True, format="ome-zarr", rois=True)] == \
        ["x_prob.tif", "x.ome.zarr", "x_rois.zip", "x_overlay.png"]
    assert [p.name for p in planned_outputs("o", "x.png", instances=True, format="tif", rois=True)] == \
        ["x_instances.tif", "x.tif", "x_rois.zip"]
    assert planned_outputs("o", "x.tif", instances=True, blocks=True, format="ome-zarr", rois=True) == \
        [Path("o") / "x.tif"]  # block mode: the tiled TIFF only, whatever the format
    rois_only = PredictionWriter(tmp_path / "rois", 2, rois=True, instance_images=False)
    assert [p.name for p in rois_only.outputs("cells.tif", instances=True)] == ["cells.png", "cells_rois.zip"]
    rois_only.write("cells.tif", labels, _probs(labels, 2), labels, labels.astype(np.int32))
    assert sorted(p.name for p in (tmp_path / "rois").iterdir()) == ["cells.png", "cells_rois.zip"]


def test_writer_names_an_output_folder_it_cannot_create(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(DataError, match=r"file/out: cannot create the output folder .*choose another --output"):
        PredictionWriter(tmp_path / "file" / "out", 2)
    assert (tmp_path / "file").read_text() == "in the way"


def test_atomic_directory_replaces_a_folder_whole_or_not_at_all(tmp_path):
    target = tmp_path / "a.ome.zarr"
    with atomic_directory(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.ome.zarr.") and tmp.name.endswith(".tmp")
        (tmp / "zarr.json").write_text("first")
    assert (target / "zarr.json").read_text() == "first"
    with pytest.raises(RuntimeError, match="disk"):
        with atomic_directory(target) as tmp:
            (tmp / "zarr.json").write_text("second")
            raise RuntimeError("disk went away")
    assert (target / "zarr.json").read_text() == "first"  # the old folder is untouched
    with atomic_directory(target) as tmp:
        (tmp / "other").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["other"]  # replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ome.zarr"]  # no temporary folder left
    assert (target.stat().st_mode & 0o777) == 0o777 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_stale_temporary_ome_zarr_folders_are_removed(tmp_path):
    (tmp_path / ".a.ome.zarr.ab12_x9.tmp").mkdir()
    (tmp_path / ".a.ome.zarr.ab12_x9.tmp" / "zarr.json").write_text("half")
    (tmp_path / ".notes.ab12.tmp").mkdir()  # not an OME-Zarr temporary: kept
    (tmp_path / "b.ome.zarr").mkdir()  # an output: kept
    assert remove_stale_directories(tmp_path) == [tmp_path / ".a.ome.zarr.ab12_x9.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.ab12.tmp", "b.ome.zarr"]


def test_existing_outputs_are_checked_in_every_format(tmp_path):
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(image)
    out = tmp_path / "out"
    out.mkdir()
    assert check_outputs([image], [image], out, format="ome-zarr", rois=True) == [out / "a.ome.zarr",
                                                                                  out / "a_rois.zip"]
    (out / "a.ome.zarr").mkdir()  # a folder that is not a Zarr group: never replaced
    with pytest.raises(OutputConflictError, match=r"a\.ome\.zarr exists and is not an OME-Zarr folder"):
        check_outputs([image], [image], out, format="ome-zarr", overwrite=True)
    (out / "a.ome.zarr" / "zarr.json").write_text("{}")
    with pytest.raises(OutputConflictError, match=r"1 output file\(s\) exist already .*a\.ome\.zarr; pass --overwrite"):
        check_outputs([image], [image], out, format="ome-zarr")
    check_outputs([image], [image], out, format="ome-zarr", overwrite=True)
    (out / "a_instances.tif").write_bytes(b"an earlier 32-bit instance image")
    with pytest.raises(OutputConflictError, match=r"a_instances\.tif; pass --overwrite"):
        check_outputs([image], [image], out, instances=True)  # the PNG format may write it for many objects
    check_outputs([image], [image], out)  # without instances it is not written
    (out / "a_rois.zip").mkdir()
    with pytest.raises(OutputConflictError, match=r"a_rois\.zip is a folder where an output file would go"):
        check_outputs([image], [image], out, rois=True, overwrite=True)


def test_ome_inputs_give_outputs_of_the_plain_name(tmp_path):
    """`cells.ome.tif` predicts to `cells.png` (the name its mask has), not `cells.ome.png`; `a.ome.tif` and `a.png`
    would write the same files and are refused."""
    from unetseg.data.io import DataError
    from unetseg.inference.files import collect_inputs
    from unetseg.inference.outputs import PredictionWriter

    writer = PredictionWriter(tmp_path / "out", num_classes=2)
    assert [p.name for p in writer.outputs("x/cells.ome.tif")][0] == "cells.png"
    (tmp_path / "a.ome.tif").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="share the stem 'a'"):
        collect_inputs([tmp_path / "a.ome.tif", tmp_path / "a.png"])
