"""What a TIFF file holds, read from its structure before any pixel is decoded: how many 2-D images (pages), of what
size, with how many channels; the pixels of all of them as (N, H, W[, C]), or of one of them.

Pages and channels are told apart by tifffile's series axes: ``Y`` and ``X`` are the image, ``S`` (samples, e.g.
RGB) and ``C`` (an ImageJ/OME hyperstack's channel axis) are channels, every other axis (``I`` pages, ``Q``
unknown, ``Z`` slices, ``T`` time, ...) counts pages. Series after the first with the same image size and channels
(e.g. pages written one at a time, each its own series) are further pages; others (thumbnails) are left out. An
OME-TIFF is its first image only, at full resolution (level 0 of a pyramid: ``series[0].levels[0]``), its axes
from the OME metadata.

Compressed TIFFs (LZW, Deflate, ZSTD, JPEG, PackBits, ...) are decoded by imagecodecs; a compression that cannot be
decoded here is named, before any decoding, with what to install.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from .errors import DataError
from .ome import CHANNEL_AXES, Axes, check_axes, plane_index, plane_to_yxc

Geometry = tuple[int, int, int, int]  # (pages, height, width, channels)

TIFFFILE_LOG = logging.getLogger("tifffile")


@dataclass(frozen=True)
class TiffLayout:
    """The 2-D images of a TIFF file: ``pages`` images of ``height`` x ``width`` with ``channels`` channels."""

    pages: int
    height: int
    width: int
    channels: int
    axes: str  # the first series' axes, as tifffile names them
    shape: tuple[int, ...] = ()  # the first series' shape
    ome: bool = False  # an OME-TIFF (its first image only)

    def series_axes(self) -> Axes | None:
        """The first series' axes and shape, when the file's pages are that series alone (None when further
        series add pages, or the shape is unknown)."""
        if not self.shape:
            return None
        axes = Axes(self.axes, self.shape)
        return axes if axes.planes == self.pages else None


def tiff_layout(path: str | os.PathLike) -> TiffLayout:
    """The layout of the TIFF file ``path`` (its structure only; no pixel data is decoded).

    Raises:
        DataError: the file is missing, not a readable TIFF, or holds no 2-D image.
    """
    path = Path(path)
    with _opened(path) as tif:
        images = _images(tif, path)
        ome = _is_ome(tif)
    pages = sum(geometry[0] for _, geometry in images)
    first, (_, height, width, channels) = images[0]
    return TiffLayout(pages, height, width, channels, str(first.axes), tuple(int(n) for n in first.shape), ome)


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """Every 2-D image of the TIFF file ``path`` (see :func:`tiff_layout`) as (N, H, W) or (N, H, W, C), in the
    file's dtype. Check the size with :func:`tiff_layout` first: this decodes everything.

    Raises:
        DataError: the file is missing or its data cannot be decoded (truncated, unknown compression, ...).
    """
    path = Path(path)
    with _opened(path) as tif:
        images = _images(tif, path)
        for series, _ in images:
            check_codec(series, path)
        try:
            arrays = [_pages_first(series.asarray(), str(series.axes), geometry) for series, geometry in images]
        except Exception as err:  # any decoder failure on this file (truncated data, bad codec, ...) is the file's
            raise DataError(f"{path}: cannot decode the TIFF image data ({type(err).__name__}: {err}); "
                            "re-save the file, or replace it") from err
    array = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return array[..., 0] if images[0][1][3] == 1 else array


def read_tiff_plane(path: str | os.PathLike, plane: int) -> np.ndarray:
    """The 2-D image number ``plane`` of the TIFF file ``path`` (counted as :func:`read_tiff` orders them) as
    (H, W, C), decoding only its pages where the file allows (tifffile's zarr view of the series).

    Raises:
        DataError: the file is missing or unreadable, ``plane`` is out of range, or its data cannot be decoded.
    """
    path = Path(path)
    with _opened(path) as tif:
        images = _images(tif, path)
        for series, (pages, *_) in images:
            if plane < pages:
                break
            plane -= pages
        else:
            total = sum(geometry[0] for _, geometry in images)
            raise DataError(f"{path}: plane {plane} is out of range 0..{total - 1}")
        check_codec(series, path)
        axes = check_axes(str(series.axes), series.shape, path)
        index = plane_index(axes, plane, path)
        try:
            return plane_to_yxc(_decode_plane(series, index), axes)
        except Exception as err:  # any decoder failure on this file is the file's
            raise DataError(f"{path}: cannot decode the TIFF image data ({type(err).__name__}: {err}); "
                            "re-save the file, or replace it") from err


def _decode_plane(series: tifffile.TiffPageSeries, index: tuple[int | slice, ...]) -> np.ndarray:
    """``series[index]`` decoded: through tifffile's zarr store of level 0 (only the pages of the plane), or the
    whole series where the store cannot be built."""
    try:
        import zarr

        store = series.aszarr(level=0)
        lazy = zarr.open_array(store, mode="r")
    except Exception:  # a series layout tifffile's zarr store does not cover: decode it whole
        return np.asarray(series.asarray()[index])
    try:
        return np.asarray(lazy[index])
    finally:
        store.close()


def check_codec(series: tifffile.TiffPageSeries, path: str | os.PathLike) -> None:
    """Refuse, before decoding, a series whose compression or predictor cannot be decoded here.

    Raises:
        DataError: naming ``path`` and the compression, and ``pip install imagecodecs`` when that package would
            decode it (LZW, JPEG, ZSTD, PackBits, ...).
    """
    try:
        page = series.keyframe
        compression, predictor = page.compression, page.predictor
    except Exception:  # damaged tags: decoding names the problem
        return
    for codecs, value, what in ((tifffile.TIFF.DECOMPRESSORS, compression, "compression"),
                                (tifffile.TIFF.UNPREDICTORS, predictor, "predictor")):
        if value == 1:  # none
            continue
        try:
            codecs[value]
        except KeyError as err:
            name = getattr(value, "name", str(value))
            if "imagecodecs" in str(err):
                raise DataError(f"{path}: the TIFF uses {name} {what}, which needs the imagecodecs package: "
                                "pip install imagecodecs (or re-save the image uncompressed)") from err
            raise DataError(f"{path}: the TIFF's {what} {name} cannot be decoded here; re-save the image "
                            "uncompressed or with LZW, Deflate or ZSTD compression") from err


@contextmanager
def _opened(path: Path) -> Iterator[tifffile.TiffFile]:
    """``tifffile.TiffFile(path)``, its failure a DataError naming the file. While it is open, tifffile's log
    messages and warnings about a damaged file are silenced: the error raised says what is wrong (and a file read
    despite them is usable)."""
    level = TIFFFILE_LOG.level
    TIFFFILE_LOG.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                tif = tifffile.TiffFile(path)
            except FileNotFoundError as err:
                raise DataError(f"{path}: file not found") from err
            except Exception as err:  # tifffile raises many types on a damaged or foreign file: "not readable"
                raise DataError(f"{path}: cannot read the TIFF ({type(err).__name__}: {err}); expected a TIFF "
                                "image: re-save the file, or replace it") from err
            with tif:
                yield tif
    finally:
        TIFFFILE_LOG.setLevel(level)


def _images(tif: tifffile.TiffFile, path: Path) -> list[tuple[tifffile.TiffPageSeries, Geometry]]:
    """The first series and the further series of the same image size and channels, with their geometry.

    Raises:
        DataError: the file has no series, its page structure cannot be parsed, or the first series is not made of
            2-D images.
    """
    try:
        series = list(tif.series)
    except Exception as err:  # damaged page structure
        raise DataError(f"{path}: cannot read the TIFF's page structure ({type(err).__name__}: {err}); "
                        "re-save the file, or replace it") from err
    if not series:
        raise DataError(f"{path}: the TIFF holds no image; expected a 2-D image (grey or RGB)")
    first = _geometry(series[0], path)
    images = [(series[0], first)]
    if _is_ome(tif):  # an OME-TIFF is its first image (other series are further images, not pages)
        return images
    for more in series[1:]:
        geometry = _same_geometry(more)
        if geometry is not None and geometry[1:] == first[1:]:
            images.append((more, geometry))
    return images


def _is_ome(tif: tifffile.TiffFile) -> bool:
    """Whether ``tif`` is an OME-TIFF (False when its description cannot be read)."""
    try:
        return bool(tif.is_ome)
    except Exception:  # a damaged first page: not read as OME
        return False


def _geometry(series: tifffile.TiffPageSeries, path: Path) -> Geometry:
    """(pages, height, width, channels) of one series from its axes; DataError when it is not made of 2-D images."""
    try:
        axes, shape = str(series.axes), tuple(int(n) for n in series.shape)
    except Exception as err:  # damaged tags
        raise DataError(f"{path}: cannot read the TIFF's image shape ({type(err).__name__}: {err})") from err
    if 0 in shape:
        raise DataError(f"{path}: the TIFF holds an empty image (shape {shape}, axes {axes!r}); expected a 2-D image "
                        "with pixels")
    if "Y" not in axes or "X" not in axes or len(axes) != len(shape) or len(set(axes)) != len(axes):
        raise DataError(f"{path}: the TIFF holds an array of shape {shape} (axes {axes!r}), not 2-D images; "
                        "expected a 2-D image (grey or RGB)")
    size = dict(zip(axes, shape))
    channels = math.prod(size[a] for a in axes if a in CHANNEL_AXES)
    pages = math.prod(size[a] for a in axes if a not in CHANNEL_AXES + "YX")
    return pages, size["Y"], size["X"], channels


def _same_geometry(series: tifffile.TiffPageSeries) -> Geometry | None:
    """:func:`_geometry` of a further series, or None when it cannot be read (it is then left out)."""
    try:
        return _geometry(series, Path(""))
    except DataError:
        return None


def _pages_first(array: np.ndarray, axes: str, geometry: Geometry) -> np.ndarray:
    """``array`` (laid out by ``axes``) as (pages, H, W, channels)."""
    pages_axes = [i for i, a in enumerate(axes) if a not in CHANNEL_AXES + "YX"]
    channel_axes = [i for i, a in enumerate(axes) if a in CHANNEL_AXES]
    order = [*pages_axes, axes.index("Y"), axes.index("X"), *channel_axes]
    return np.ascontiguousarray(np.transpose(array, order)).reshape(geometry)
