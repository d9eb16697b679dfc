"""Tests for unetseg.inference.bigimage: region reads, tiled atomic writes, block-wise prediction."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from unetseg.inference.bigimage import TiledTiffWriter, open_region_reader, predict_big_tiff

H, W = 1000, 1300


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W), dtype=np.uint8)


LAYOUTS = {
    "tiled": {"tile": (256, 256)},
    "tiled_zlib": {"tile": (128, 256), "compression": "zlib"},
    "strips": {"rowsperstrip": 64},
    "strips_zlib": {"rowsperstrip": 50, "compression": "zlib"},
    "one_strip": {},
}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def tiff(request: pytest.FixtureRequest, image: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / f"{request.param}.tif"
    tifffile.imwrite(path, image, **LAYOUTS[request.param])
    return path


def test_region_reads_equal_full_image(tiff: Path, image: np.ndarray) -> None:
    with open_region_reader(tiff) as reader:
        assert reader.shape == (H, W) and reader.dtype == np.uint8
        for y0, y1, x0, x1 in [(0, H, 0, W), (0, 1, 0, 1), (123, 517, 255, 1299), (999, 1000, 1000, 1300)]:
            np.testing.assert_array_equal(reader.read(y0, y1, x0, x1), image[y0:y1, x0:x1])
        pieces = [[reader.read(y, y + 300, x, x + 400) for x in range(0, W, 400)] for y in range(0, H, 300)]
    np.testing.assert_array_equal(np.block(pieces), image)


def test_region_reader_rgb(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    layouts = {"c.tif": {"tile": (32, 32)}, "s.tif": {"planarconfig": "separate"},
               "t.tif": {"planarconfig": "separate", "tile": (32, 32)}}
    for name, kwargs in layouts.items():
        data = np.moveaxis(rgb, -1, 0) if name != "c.tif" else rgb
        tifffile.imwrite(tmp_path / name, data, photometric="rgb", **kwargs)
        with open_region_reader(tmp_path / name) as reader:
            assert reader.shape == (70, 90, 3)
            np.testing.assert_array_equal(reader.read(5, 40, 17, 90), rgb[5:40, 17:90])


def _threshold(a: np.ndarray) -> np.ndarray:
    return (a > 127).astype(np.uint8)


def _mean5(a: np.ndarray) -> np.ndarray:
    return ndimage.uniform_filter(a.astype(np.float64), 5, mode="mirror").round().astype(np.uint16)


@pytest.mark.parametrize("block", [256, 512])
def test_pointwise_prediction_matches_full_image(tiff: Path, image: np.ndarray, tmp_path: Path, block: int) -> None:
    calls: list[tuple[int, int]] = []
    out = predict_big_tiff(
        _threshold, tiff, tmp_path / "out.tif", block, halo=0, progress=lambda d, t: calls.append((d, t))
    )
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.is_tiled and page.tilewidth == 256 and page.dtype == np.uint8
        np.testing.assert_array_equal(tif.asarray(), _threshold(image))
    n = -(-H // block) * -(-W // block)
    assert calls == [(i, n) for i in range(1, n + 1)]


@pytest.mark.parametrize("halo", [2, 7])
def test_neighbourhood_prediction_matches_full_image(image: np.ndarray, tmp_path: Path, halo: int) -> None:
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, image, tile=(64, 64))
    out = predict_big_tiff(_mean5, src, tmp_path / "out.tif", 256, halo=halo, tile=128)
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].is_tiled and tif.pages[0].dtype == np.uint16
        np.testing.assert_array_equal(tif.asarray(), _mean5(image))


def test_too_small_halo_differs(image: np.ndarray, tmp_path: Path) -> None:
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, image)
    out = predict_big_tiff(_mean5, src, tmp_path / "out.tif", 256, halo=1)
    assert not np.array_equal(tifffile.imread(out), _mean5(image))


def test_requested_dtype(image: np.ndarray, tmp_path: Path) -> None:
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, image[:300, :200])
    out = predict_big_tiff(_threshold, src, tmp_path / "o.tif", 256, halo=3, dtype=np.uint16)
    result = tifffile.imread(out)
    assert result.dtype == np.uint16
    np.testing.assert_array_equal(result, _threshold(image[:300, :200]))


def test_failing_prediction_leaves_nothing(image: np.ndarray, tmp_path: Path) -> None:
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, image)
    count = 0

    def flaky(a: np.ndarray) -> np.ndarray:
        nonlocal count
        count += 1
        if count == 3:
            raise RuntimeError("boom")
        return _threshold(a)

    with pytest.raises(RuntimeError, match="boom"):
        predict_big_tiff(flaky, src, tmp_path / "out.tif", 256, halo=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]
    # an existing output is left untouched
    (tmp_path / "out.tif").write_bytes(b"old")
    count = 0
    with pytest.raises(RuntimeError):
        predict_big_tiff(flaky, src, tmp_path / "out.tif", 256, halo=4)
    assert (tmp_path / "out.tif").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif"]
    with pytest.raises(ValueError):
        predict_big_tiff(lambda a: a[1:], src, tmp_path / "x.tif", 256, halo=0)
    with pytest.raises(ValueError):
        predict_big_tiff(_threshold, src, tmp_path / "x.tif", 300, halo=0)
    assert not (tmp_path / "x.tif").exists()


def test_writer_any_order_and_validation(tmp_path: Path) -> None:
    data = np.arange(100 * 70 * 2, dtype=np.uint16).reshape(100, 70, 2)
    with TiledTiffWriter(tmp_path / "w.tif", data.shape, np.uint16, tile=(32, 48)) as writer:
        writer.write(64, 48, data[64:, 48:])
        writer.write(0, 0, data[:64, :48])
        writer.write(64, 0, data[64:, :48])
        writer.write(0, 48, data[:64, 48:])
        with pytest.raises(ValueError):
            writer.write(10, 0, data[10:42, :48])
        with pytest.raises(ValueError):
            writer.write(0, 0, data[:40, :48])
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "w.tif"), data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.tif"]


MAKE_INPUTS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tifffile

    tiled, striped, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def rows(y0, y1, x0, x1):
        return ((np.arange(y0, y1)[:, None] + np.arange(x0, x1)[None, :]) % 251).astype(np.uint8)

    tiles = (rows(y, y + 512, x, x + 512) for y in range(0, n, 512) for x in range(0, n, 512))
    tifffile.imwrite(tiled, shape=(n, n), dtype=np.uint8, data=tiles, tile=(512, 512), compression="zlib")
    mapped = tifffile.memmap(striped, shape=(n, n), dtype=np.uint8)  # one uncompressed strip
    for y in range(0, n, 512):
        mapped[y : y + 512] = rows(y, y + 512, 0, n)
    mapped.flush()
    """
)

MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import tifffile

    # the package's public API loads lazily: this imports numpy, tifffile and zarr, not torch (which would blur
    # the baseline)
    from unetseg.inference.bigimage import predict_big_tiff
    assert "torch" not in sys.modules

    def status(key):  # MiB
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024

    # VmHWM is this process image's peak RSS. ru_maxrss is not used for the check: on Linux it carries over
    # the forking parent's peak (here the pytest process, torch included) through fork + exec.
    peak = lambda: status("VmHWM")
    fn = lambda a: (a > 100).astype(np.uint8)
    report = {"baseline_mib": status("VmRSS"), "baseline_peak_mib": peak()}
    predict_big_tiff(fn, sys.argv[1], sys.argv[3], 1024, halo=32)
    report["after_tiled_mib"] = peak()
    predict_big_tiff(fn, sys.argv[2], sys.argv[4], 1024, halo=32)
    report["after_striped_mib"] = peak()
    image = tifffile.imread(sys.argv[1])  # control: loading the whole image does show up
    report["after_full_read_mib"] = peak()
    report["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(report))
    """
)


def test_peak_memory_bounded(tmp_path: Path) -> None:
    """Peak RSS growth while predicting an 8192 x 8192 uint8 image (64 MiB) stays far below the image size."""
    n = 8192
    tiled, striped, out1, out2 = (str(tmp_path / f) for f in ("t.tif", "s.tif", "o1.tif", "o2.tif"))
    subprocess.run([sys.executable, "-c", MAKE_INPUTS, tiled, striped, str(n)], check=True, timeout=120)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, tiled, striped, out1, out2],
        capture_output=True, text=True, timeout=120, check=True,
    )
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    growth = max(rss["after_tiled_mib"], rss["after_striped_mib"]) - rss["baseline_mib"]
    print(f"\npeak RSS {rss} -> growth {growth:.1f} MiB for a {n * n / 2**20:.0f} MiB image")
    assert growth < n * n / 2**20 / 4
    assert rss["after_full_read_mib"] - rss["baseline_mib"] > n * n / 2**20 / 2  # the measurement is sensitive
    for out in (out1, out2):
        with tifffile.TiffFile(out) as tif:
            assert tif.pages[0].is_tiled and tif.pages[0].shape == (n, n)
        with open_region_reader(out) as reader:
            y, x = np.mgrid[4000:4100, 8000:8192]
            np.testing.assert_array_equal(reader.read(4000, 4100, 8000, 8192), ((y + x) % 251 > 100).astype(np.uint8))
