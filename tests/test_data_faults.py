"""Faults in the data a user gives, each ending in one clear DataError (file, what was expected, what to do):
non-finite pixels, decompression bombs, TIFF stacks read as one image, stray mask values, no foreground at all,
half a folder layout, images too small to segment. Each is checked through the readers, `load_dataset` /
`scan_dataset`, and the command line (`train` exits 2 with the message and writes nothing; `inspect` lists the
problem and exits 0, or 2 when nothing can be read)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from unetseg import train
from unetseg.cli.main import main
from unetseg.data import io
from unetseg.data.inspect import inspect_dataset
from unetseg.data.io import MAX_PIXELS, DataError, read_image, read_stack, tiff_pages
from unetseg.data.layouts import load_dataset, scan_dataset
from unetseg.inference.bigimage import open_region_reader

from conftest import tiny_config

SIZE = 16


# ------------------------------------------------------------------------------------------------------ file makers

def png_header(path: Path, width: int, height: int) -> None:
    """A PNG that declares ``width`` x ``height`` grey pixels and holds none (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def tiff_header(path: Path, width: int, height: int) -> None:
    """A TIFF that declares one ``width`` x ``height`` 8-bit strip and holds none."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8), (277, 3, 1),
               (278, 4, height), (279, 4, width * height)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", t, k, 1, v) for t, k, v in entries)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0))


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (SIZE, SIZE), dtype=np.uint8)


def mask(value: int = 1) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[4:10, 5:12] = value
    return m


def good_folder(root: Path, masks: dict[str, np.ndarray] | None = None) -> Path:
    """``root/images`` + ``root/masks`` with samples a and b (binary {0,1} masks unless given)."""
    masks = masks or {"a": mask(), "b": mask()}
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (name, m) in enumerate(masks.items()):
        Image.fromarray(image(i)).save(root / "images" / f"{name}.png")
        Image.fromarray(m).save(root / "masks" / f"{name}.png")
    return root


def nan_tiff(root: Path) -> None:
    good_folder(root)
    x = image(5).astype(np.float32)
    x[0, 0], x[3, 4] = np.nan, np.inf
    tifffile.imwrite(root / "images" / "c.tif", x)
    Image.fromarray(mask()).save(root / "masks" / "c.png")


def bomb_png(root: Path) -> None:
    good_folder(root)
    png_header(root / "images" / "c.png", 100_000, 100_000)
    Image.fromarray(mask()).save(root / "masks" / "c.png")


def bomb_tiff(root: Path) -> None:
    good_folder(root)
    tiff_header(root / "images" / "c.tif", 60_000, 60_000)
    Image.fromarray(mask()).save(root / "masks" / "c.png")


def stack_image(root: Path) -> None:
    good_folder(root)
    tifffile.imwrite(root / "images" / "c.tif", np.stack([image(k) for k in range(3)]), photometric="minisblack")
    Image.fromarray(mask()).save(root / "masks" / "c.png")


def stray_value(root: Path) -> None:
    stray = mask()
    stray[0, 0] = 5
    good_folder(root, {"a": mask(), "b": stray})


def all_empty(root: Path) -> None:
    good_folder(root, {"a": mask(0), "b": mask(0)})


def no_masks_folder(root: Path) -> None:
    good_folder(root)
    for f in (root / "masks").iterdir():
        f.unlink()
    (root / "masks").rmdir()


def tiny_image(root: Path) -> None:
    good_folder(root)
    Image.fromarray(np.full((1, 1), 9, np.uint8)).save(root / "images" / "c.png")
    Image.fromarray(np.ones((1, 1), np.uint8)).save(root / "masks" / "c.png")


@dataclass(frozen=True)
class Fault:
    name: str
    make: Callable[[Path], None]
    words: tuple[str, ...]  # in the message of load_dataset, train and inspect
    fatal: bool = False  # nothing can be read: scan_dataset and inspect raise too (inspect exits 2)


FAULTS = [
    Fault("nan", nan_tiff, ("images/c.tif: 1 NaN and 1 +inf pixel(s)", "replace them (e.g. with 0) or mask them out")),
    Fault("bomb-png", bomb_png, ("images/c.png: image of 100000x100000 pixels", "limit of 268,435,456 pixels",
                                 "UNETSEG_MAX_PIXELS", "unetseg predict --block 2048")),
    Fault("bomb-tiff", bomb_tiff, ("images/c.tif: image of 60000x60000 pixels", "limit of 268,435,456 pixels",
                                   "UNETSEG_MAX_PIXELS", "unetseg predict --block 2048")),
    Fault("stack", stack_image, ("images/c.tif: a stack of 3 pages of 16x16 pixels", "expected one 2-D image",
                                 "mask stack of as many pages", "one file per page")),
    Fault("stray", stray_value, ("mask value 5 in", "masks/b.png (1 pixel)", "class(es) 2..4 never occur",
                                 "fix the masks, or pass --num-classes 6 if 6 classes are meant")),
    Fault("empty", all_empty, ("has a foreground pixel", "nothing to learn")),
    Fault("no-masks", no_masks_folder, ("masks: missing; the folder layout needs", "images/* and",
                                        "(one mask per image, same name)"), fatal=True),
    Fault("tiny", tiny_image, ("images/c.png: too small to segment: 1x1 pixels; at least 8x8",)),
]
IDS = [f.name for f in FAULTS]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: relative name -> (size, modification time)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file()}


def assert_words(message: str, fault: Fault) -> None:
    for words in fault.words:
        assert words in message, f"{words!r} not in {message!r}"
    assert "Traceback" not in message


# -------------------------------------------------------------------------------------------- through the Python API

@pytest.mark.parametrize("fault", FAULTS, ids=IDS)
def test_load_dataset_raises_one_clear_error(fault, tmp_path):
    fault.make(tmp_path / "d")
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path / "d")
    assert_words(str(err.value), fault)


@pytest.mark.parametrize("fault", FAULTS, ids=IDS)
def test_scan_dataset_and_inspect_list_the_problem(fault, tmp_path):
    fault.make(tmp_path / "d")
    if fault.fatal:
        with pytest.raises(DataError) as err:
            scan_dataset(tmp_path / "d")
        assert_words(str(err.value), fault)
        return
    data, problems, layout = scan_dataset(tmp_path / "d")
    assert layout == "folder" and data is not None
    assert_words(" | ".join(problems), fault)
    assert_words(" | ".join(inspect_dataset(tmp_path / "d")["problems"]), fault)


# ------------------------------------------------------------------------------------------- through the command line

@pytest.mark.parametrize("fault", FAULTS, ids=IDS)
def test_train_exits_2_with_the_message_and_writes_nothing(fault, tmp_path, capsys):
    fault.make(tmp_path / "d")
    before = snapshot(tmp_path)
    code = main(["train", "--data", str(tmp_path / "d"), "--epochs", "1", "--output", str(tmp_path / "runs"),
                 "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.splitlines()[-1].startswith("unetseg train: error: ")
    assert_words(err, fault)
    assert snapshot(tmp_path) == before  # the data untouched, no file written anywhere
    assert not (tmp_path / "runs").exists()  # not even an empty run folder


@pytest.mark.parametrize("fault", FAULTS, ids=IDS)
def test_inspect_prints_the_problem(fault, tmp_path, capsys):
    fault.make(tmp_path / "d")
    before = snapshot(tmp_path)
    code = main(["inspect", str(tmp_path / "d")])
    out, err = capsys.readouterr()
    if fault.fatal:
        assert code == 2 and err.splitlines()[-1].startswith("unetseg inspect: error: ")
        assert_words(err, fault)
    else:
        assert code == 0 and "problems  " in out and "(none found)" not in out
        assert_words(" ".join(out.split()), fault)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------- the readers' rules

def test_non_finite_pixels_are_counted_per_pixel(tmp_path):
    x = np.zeros((SIZE, SIZE, 3), np.float32)
    x[0, 0] = np.nan  # one pixel, three channels
    x[1, 1, 0], x[2, 2, 1], x[3, 3, 2] = np.inf, -np.inf, -np.inf
    tifffile.imwrite(tmp_path / "x.tif", x, photometric="rgb")
    with pytest.raises(DataError, match=r"x\.tif: 1 NaN and 1 \+inf and 2 -inf pixel\(s\) in a float32 image"):
        read_image(tmp_path / "x.tif")
    stack = np.zeros((2, SIZE, SIZE), np.float64)
    stack[1, 5, 5] = np.nan
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    with pytest.raises(DataError, match=r"s\.tif: 1 NaN pixel\(s\)"):
        read_stack(tmp_path / "s.tif")
    tifffile.imwrite(tmp_path / "ok.tif", np.ones((SIZE, SIZE), np.float32))
    assert read_image(tmp_path / "ok.tif").dtype == np.float32


def test_pixel_limit_from_the_environment(tmp_path, monkeypatch):
    Image.fromarray(image()).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", image())
    monkeypatch.setenv("UNETSEG_MAX_PIXELS", str(SIZE * SIZE))
    assert read_image(tmp_path / "a.png").shape == (SIZE, SIZE)  # at the limit: read
    monkeypatch.setenv("UNETSEG_MAX_PIXELS", str(SIZE * SIZE - 1))
    for name in ("a.png", "a.tif"):
        with pytest.raises(DataError, match=rf"{name}: image of 16x16 pixels \(256 pixels\), more than the limit of 255"):
            read_image(tmp_path / name)
    assert Image.MAX_IMAGE_PIXELS == SIZE * SIZE - 1  # Pillow's own limit is the same
    monkeypatch.setenv("UNETSEG_MAX_PIXELS", "lots")
    with pytest.raises(DataError, match="UNETSEG_MAX_PIXELS='lots': expected a positive whole number of pixels"):
        read_image(tmp_path / "a.png")
    monkeypatch.delenv("UNETSEG_MAX_PIXELS")
    assert io.max_pixels() == MAX_PIXELS == 2**28


def test_pillow_never_warns_about_a_big_image(tmp_path, recwarn):
    png_header(tmp_path / "big.png", 20_000, 20_000)  # above the limit, below twice Pillow's default: a warning there
    with pytest.raises(DataError, match="image of 20000x20000 pixels"):
        read_image(tmp_path / "big.png")
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_the_limit_does_not_apply_to_region_reads(tmp_path, monkeypatch):
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    tifffile.imwrite(tmp_path / "big.tif", data, tile=(16, 16))
    monkeypatch.setenv("UNETSEG_MAX_PIXELS", "100")
    with pytest.raises(DataError, match="more than the limit of 100 pixels"):
        read_image(tmp_path / "big.tif")
    with open_region_reader(tmp_path / "big.tif") as reader:
        np.testing.assert_array_equal(reader.read(8, 24, 30, 40), data[8:24, 30:40])


@pytest.mark.parametrize("pages", [2, 8])
def test_a_stack_is_not_read_as_channels(tmp_path, pages):
    stack = np.stack([image(k) for k in range(pages)])
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    with pytest.raises(DataError, match=rf"s\.tif: a stack of {pages} pages of 16x16 pixels; expected one 2-D image"):
        read_image(tmp_path / "s.tif")
    assert tiff_pages(tmp_path / "s.tif") == pages
    np.testing.assert_array_equal(read_stack(tmp_path / "s.tif"), stack)


def test_pages_written_one_at_a_time_are_a_stack(tmp_path):
    with tifffile.TiffWriter(tmp_path / "s.tif") as tif:
        for k in range(3):
            tif.write(image(k))
    with pytest.raises(DataError, match="a stack of 3 pages"):
        read_image(tmp_path / "s.tif")
    assert read_stack(tmp_path / "s.tif").shape == (3, SIZE, SIZE)


def test_explicit_channels_are_read_as_channels(tmp_path):
    planes = np.stack([image(k) for k in range(3)])
    tifffile.imwrite(tmp_path / "ij.tif", planes, imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "ome.ome.tif", planes[:2], ome=True, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "planar.tif", planes, photometric="rgb", planarconfig="separate")
    tifffile.imwrite(tmp_path / "rgb.tif", np.moveaxis(planes, 0, -1), photometric="rgb")
    for name, channels in (("ij.tif", 3), ("ome.ome.tif", 2), ("planar.tif", 3), ("rgb.tif", 3)):
        array = read_image(tmp_path / name)
        assert array.shape == (SIZE, SIZE, channels), name
        np.testing.assert_array_equal(array[..., 1], planes[1])
        assert tiff_pages(tmp_path / name) == 1
    hyper = np.stack([planes[:2]] * 4)  # 4 slices of 2 channels
    tifffile.imwrite(tmp_path / "zc.tif", hyper, imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(DataError, match="a stack of 4 pages of 16x16 pixels with 2 channels"):
        read_image(tmp_path / "zc.tif")
    assert read_stack(tmp_path / "zc.tif").shape == (4, SIZE, SIZE, 2)


def test_stack_with_a_mask_stack_still_pairs(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    tifffile.imwrite(tmp_path / "images" / "v.tif", np.stack([image(k) for k in range(3)]), photometric="minisblack")
    tifffile.imwrite(tmp_path / "masks" / "v.tif", np.stack([mask(255)] * 3), photometric="minisblack")
    data = load_dataset(tmp_path)
    assert [s.name for s in data.samples] == ["v_000", "v_001", "v_002"] and data.channels == 1


def test_gaps_are_accepted_with_num_classes_and_values_above_are_refused(tmp_path):
    stray = mask()
    stray[0, 0] = 5
    good_folder(tmp_path / "d", {"a": mask(), "b": stray})
    assert load_dataset(tmp_path / "d", num_classes=6).num_classes == 6
    with pytest.raises(DataError, match=r"masks/b\.png: mask values \[5\] are outside the 3 declared classes .*"
                                        r"pass --num-classes 6 if there are more classes"):
        load_dataset(tmp_path / "d", num_classes=3)


def test_stray_values_in_several_masks_and_the_ignore_value(tmp_path):
    a, b = mask(), mask()
    a[0, :3], b[0, 0], b[1, 1] = 7, 7, 4
    good_folder(tmp_path / "d", {"a": a, "b": b})
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path / "d")
    message = str(err.value)
    assert "mask value 4 in " in message and "masks/b.png (1 pixel)" in message
    assert "mask value 7 in " in message and "masks/a.png (3 pixels)" in message
    assert "class(es) 2..3, 5..6 never occur" in message and "--num-classes 8 if 8 classes are meant" in message
    ignored = mask()
    ignored[0, 0] = 255
    good_folder(tmp_path / "e", {"a": mask(2), "b": ignored})  # {0, 1, 2} and 255 = not annotated: no gap
    assert load_dataset(tmp_path / "e", ignore_index=255).num_classes == 3


def test_empty_masks_are_fine_unless_every_mask_is(tmp_path):
    good_folder(tmp_path / "d", {"a": mask(0), "b": mask(1)})
    assert load_dataset(tmp_path / "d").num_classes == 2
    ignored = mask(255)
    good_folder(tmp_path / "e", {"a": mask(0), "b": ignored})  # only ignore pixels: still nothing to learn
    with pytest.raises(DataError, match=r"no mask of .*/e has a foreground pixel \(every pixel of its 2 mask\(s\) "
                                        r"is 0 or 255 \(ignore\)\): nothing to learn"):
        load_dataset(tmp_path / "e", ignore_index=255)


def test_masks_without_images_folder(tmp_path):
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match=r"/images: missing; the folder layout needs"):
        load_dataset(tmp_path)
    (tmp_path / "masks").rmdir()
    with pytest.raises(DataError, match="cannot tell the dataset layout; looked for"):
        load_dataset(tmp_path)


def test_float_masks_must_hold_whole_numbers(tmp_path):
    good_folder(tmp_path / "d")
    tifffile.imwrite(tmp_path / "d" / "masks" / "b.tif", mask().astype(np.float32) * 0.5)
    (tmp_path / "d" / "masks" / "b.png").unlink()
    with pytest.raises(DataError, match=r"masks/b\.tif: mask values \[0\.5\] are not whole numbers"):
        load_dataset(tmp_path / "d")
    tifffile.imwrite(tmp_path / "d" / "masks" / "b.tif", mask().astype(np.float32))
    assert load_dataset(tmp_path / "d").num_classes == 2


# --------------------------------------------------------------------------------------------------- prediction

def test_predict_refuses_non_finite_and_huge_images(tiny_data, tmp_path, capsys):
    checkpoint = train(tiny_config(tiny_data, tmp_path / "runs", epochs=1), progress=False).best_checkpoint
    (tmp_path / "in").mkdir()
    x = np.ones((SIZE * 2, SIZE * 2), np.float32)
    x[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "in" / "nan.tif", x)
    png_header(tmp_path / "in" / "big.png", 100_000, 100_000)
    capsys.readouterr()
    for name, words in (("nan.tif", "1 NaN pixel(s)"), ("big.png", "image of 100000x100000 pixels")):
        code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "in" / name),
                     "--output", str(tmp_path / "out"), "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2 and words in err and "Traceback" not in err
        assert not list((tmp_path / "out").glob(f"{Path(name).stem}*"))


def test_evaluation_data_may_be_small_or_all_background(tmp_path):
    from unetseg.data.layouts import load_folder

    tiny_image(tmp_path / "d")
    all_empty(tmp_path / "e")
    for root in (tmp_path / "d", tmp_path / "e"):
        assert load_folder(root, 2).num_classes == 2  # what `unetseg evaluate` reads: the training checks are off
        assert load_dataset(root, training=False).num_classes == 2
        with pytest.raises(DataError):
            load_dataset(root)
