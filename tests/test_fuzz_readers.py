"""Fuzzing the image and mask readers: whatever bytes a file holds (random, a valid PNG/TIFF/JPEG/BMP truncated or
with flipped bytes or random header fields, random arrays of any dtype, shape and page count, NaN and infinities, a
huge declared size), reading it raises a DataError or returns an array, never another exception; so does loading
and inspecting a small dataset with it as an image or as a mask.

Deterministic by default (a fixed number of examples from a fixed seed, a few seconds in all); for a longer random
run set ``UNETSEG_FUZZ_EXAMPLES=2000 UNETSEG_FUZZ_RANDOM=1``."""

from __future__ import annotations

import io as bytes_io
import os
import struct
import tempfile
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from unetseg.data.inspect import inspect_dataset
from unetseg.data.io import IMAGE_SUFFIXES, DataError, read_image, read_stack, tiff_pages
from unetseg.data.layouts import load_dataset
from unetseg.data.masks import detect_num_classes, mask_to_labels, mask_values

EXAMPLES = int(os.environ.get("UNETSEG_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=not os.environ.get("UNETSEG_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------------------------------------- valid templates

def _encode(save: Callable[[bytes_io.BytesIO], None]) -> bytes:
    buffer = bytes_io.BytesIO()
    save(buffer)
    return buffer.getvalue()


def _pillow(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    return _encode(lambda b: image.save(b, format=fmt))


def _tiff(array: np.ndarray, **options) -> bytes:
    return _encode(lambda b: tifffile.imwrite(b, array, **options))


def _templates() -> dict[str, tuple[str, bytes]]:
    """Small valid files, by name: (suffix, bytes)."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (12, 10), dtype=np.uint8)
    rgb = rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)
    return {
        "png-grey": (".png", _pillow(grey, "PNG")),
        "png-rgba": (".png", _pillow(np.dstack([rgb, grey]), "PNG")),
        "png-16": (".png", _pillow(grey.astype(np.uint16) * 200, "PNG")),
        "png-palette": (".png", _pillow(rgb, "PNG", "P")),
        "png-bilevel": (".png", _pillow(grey, "PNG", "1")),
        "jpeg": (".jpg", _pillow(rgb, "JPEG")),
        "bmp": (".bmp", _pillow(rgb, "BMP")),
        "tiff-grey": (".tif", _tiff(grey)),
        "tiff-float": (".tif", _tiff(grey.astype(np.float32) / 7)),
        "tiff-zlib": (".tif", _tiff(rgb, photometric="rgb", compression="zlib")),
        "tiff-tiled": (".tif", _tiff(np.zeros((32, 32), np.uint16), tile=(16, 16))),
        "tiff-stack": (".tif", _tiff(np.stack([grey] * 3), photometric="minisblack")),
        "tiff-imagej": (".tif", _tiff(np.stack([grey] * 2), imagej=True, metadata={"axes": "CYX"})),
    }


TEMPLATES = _templates()


def png_header(width: int, height: int, depth: int = 8, colour: int = 0) -> bytes:
    """A PNG declaring ``width`` x ``height`` pixels with no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def tiff_header(width: int, height: int, bits: int = 8, samples: int = 1) -> bytes:
    """A TIFF declaring one ``width`` x ``height`` strip with no pixel data."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 1), (262, 3, 1), (273, 4, 8),
               (277, 3, samples), (278, 4, max(height, 1)), (279, 4, min(width * height * samples, 2**32 - 1))]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", t, k, 1, v) for t, k, v in entries)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


# --------------------------------------------------------------------------------------------------- strategies

@st.composite
def corrupted(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid template truncated, with flipped bytes, or with random values written over its header."""
    suffix, data = TEMPLATES[draw(st.sampled_from(sorted(TEMPLATES)))]
    data = bytearray(data)
    how = draw(st.sampled_from(["truncate", "flip", "header"]))
    if how == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    else:
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, min(len(data), 160) - 4))
            data[at: at + 4] = struct.pack("<I", draw(st.integers(0, 2**32 - 1)))
    return suffix, bytes(data)


@st.composite
def declared(draw: st.DrawFn) -> tuple[str, bytes]:
    """A header alone, declaring any size (from empty to a decompression bomb), depth and channels."""
    width, height = draw(st.integers(0, 2**20)), draw(st.integers(0, 2**20))
    if draw(st.booleans()):
        return ".png", png_header(width, height, draw(st.sampled_from([1, 8, 16])), draw(st.sampled_from([0, 2, 6])))
    return ".tif", tiff_header(width, height, draw(st.sampled_from([1, 8, 16, 32])), draw(st.integers(1, 5)))


DTYPES = ["uint8", "uint16", "int8", "int16", "int32", "uint32", "int64", "float16", "float32", "float64", "bool",
          "complex64"]


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    """A random array of any listed dtype: 0 to 3 pages of 0..20 x 0..20 pixels, 0 to 5 channels (none: grey)."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = (draw(st.integers(0, 20)), draw(st.integers(0, 20)))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4, 5]))
    pages = draw(st.sampled_from([None, 1, 2, 3]))
    shape = ((pages,) if pages else ()) + shape + ((channels,) if channels else ())
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype.kind in "fc":
        with np.errstate(over="ignore"):  # 1e30 overflows float16 to infinity: one more non-finite case
            array = rng.normal(0, draw(st.sampled_from([1.0, 1e3, 1e30])), shape).astype(dtype)
        if array.size and draw(st.booleans()):
            array.reshape(-1)[rng.integers(0, array.size, 3)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif dtype.kind == "b":
        array = rng.integers(0, 2, shape).astype(bool)
    else:
        info = np.iinfo(dtype)
        high = draw(st.sampled_from([2, 7, 256, int(info.max)]))
        array = rng.integers(max(int(info.min), -3), min(high, int(info.max)), shape, endpoint=True, dtype=dtype)
    return array


def written(array: np.ndarray, as_png: bool) -> tuple[str, bytes] | None:
    """``array`` as the bytes of a PNG (when asked and Pillow can store it) or a TIFF; None when neither can."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for suffix, write in ((".png", lambda: _pillow(array, "PNG")), (".tif", lambda: _tiff(array))):
            if suffix == ".png" and not as_png:
                continue
            try:
                return suffix, write()
            except Exception:  # the writer's own refusal (a dtype or shape it cannot store)
                continue
    return None


# ----------------------------------------------------------------------------------------------------- checks

def read_everything(path: Path) -> None:
    """Every reader on ``path``, and the mask functions on what it returns: a DataError or a result."""
    for reader in (read_image, read_stack, tiff_pages):
        try:
            result = reader(path)
        except DataError:
            continue
        if reader is read_image:
            try:
                classes = detect_num_classes({str(path): mask_values(result, path)})
                mask_to_labels(result, classes, path)
                mask_to_labels(result, 2, path, ignore_index=255)
            except DataError:
                pass


def load_with(path: Path, role: str) -> None:
    """Load and inspect a two-sample folder dataset whose sample b has the file ``path`` as its ``role`` ("image" or
    "mask"), its other file of the same size when ``path`` can be read (so the checks go past the sizes): a
    DataError or a dataset, nothing else."""
    try:
        shape = read_image(path).shape[:2]
    except DataError:
        shape = (12, 10)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        (root / "masks").mkdir()
        mask = np.zeros((12, 10), np.uint8)
        mask[2:6, 3:8] = 1
        Image.fromarray(np.full((12, 10), 100, np.uint8)).save(root / "images" / "a.png")
        Image.fromarray(mask).save(root / "masks" / "a.png")
        other = np.full(shape, 100 if role == "mask" else 1, np.uint8)
        Image.fromarray(other).save(root / ("images" if role == "mask" else "masks") / "b.png")
        (root / ("masks" if role == "mask" else "images") / f"b{path.suffix}").write_bytes(path.read_bytes())
        for load in (load_dataset, inspect_dataset):
            try:
                load(root)
            except DataError:
                pass


def check(suffix: str, data: bytes, role: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x{suffix}"
        path.write_bytes(data)
        read_everything(path)
        load_with(path, role)


ROLES = st.sampled_from(["image", "mask"])


# ------------------------------------------------------------------------------------------------------- tests

@FUZZ
@given(st.binary(max_size=300), st.sampled_from(IMAGE_SUFFIXES), ROLES)
def test_random_bytes(data, suffix, role):
    check(suffix, data, role)


@FUZZ
@given(corrupted(), ROLES)
def test_corrupted_valid_files(file, role):
    check(*file, role)


@FUZZ
@given(declared(), ROLES)
def test_any_declared_size(file, role):
    check(*file, role)


@FUZZ
@given(arrays(), st.booleans(), ROLES)
def test_random_arrays_written_as_files(array, as_png, role):
    file = written(array, as_png)
    if file is not None:
        check(*file, role)


@FUZZ
@given(arrays())
def test_mask_functions_on_random_arrays(array):
    try:
        classes = detect_num_classes({"m": mask_values(array, "m")})
        labels = mask_to_labels(array, classes, "m")
    except DataError:
        return
    assert labels.shape == array.shape[:2] and labels.dtype in (np.uint8, np.int32)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_templates_themselves_are_read(name):
    suffix, data = TEMPLATES[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x{suffix}"
        path.write_bytes(data)
        if name == "tiff-stack":
            assert read_stack(path).shape == (3, 12, 10)
        else:
            assert read_image(path).shape[:2] == ((32, 32) if name == "tiff-tiled" else (12, 10))
