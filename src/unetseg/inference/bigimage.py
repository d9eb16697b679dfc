"""Bounded-memory prediction of TIFF and OME-Zarr images larger than memory.

* :func:`open_region_reader` reads rectangular regions of a (tiled or striped) TIFF, or of one plane of an
  OME-Zarr image, without loading the image; :func:`region_read_problem` says why an image cannot be read so;
* :class:`TiledTiffWriter` writes an uncompressed, tiled TIFF region by region, atomically;
* :func:`predict_big_tiff` runs a region predictor block by block with mirrored context (a *halo*) around
  every block, so that the result equals the prediction of the whole image for any operation whose reach
  is at most ``halo`` pixels.

Memory use is bounded by the block size (plus halo), not by the image size.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import tifffile
import zarr
from numpy.typing import DTypeLike

from ..data.errors import DataError
from ..data.ome import CHANNEL_AXES, is_zarr, open_zarr, plane_index
from ..data.sampling import mirror_indices

__all__ = ["RegionReader", "TiledTiffWriter", "ZarrRegionReader", "open_region_reader", "predict_big_tiff",
           "read_mirrored", "region_read_problem"]

#: what to convert an image to that cannot be read by regions
CONVERT_HINT = ("convert it to a tiled TIFF or OME-Zarr with a tool that does not load it whole (e.g. `vips tiffsave "
                "IN OUT.tif --tile`, or bioformats2raw for OME-Zarr)")


class RegionReader:
    """Random access to rectangular regions of the first image of a TIFF file (see :func:`open_region_reader`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tif = tifffile.TiffFile(self.path)
        try:
            page = self._tif.pages.first
            self._stored: tuple[int, ...] = tuple(page.shape)  # (C, H, W) for planar-separate samples
            self._separate = len(page.shape) == 3 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
            self.shape: tuple[int, ...] = (*self._stored[1:], self._stored[0]) if self._separate else self._stored
            if len(self.shape) not in (2, 3):
                raise DataError(f"{self.path}: expected a (H, W) or (H, W, C) image, got shape {page.shape}")
            self.dtype = np.dtype(page.dtype).newbyteorder("=")
            self._file_dtype = self.dtype.newbyteorder(self._tif.byteorder)
            # Contiguous uncompressed data is read row by row straight from the file (a single-strip image would
            # otherwise be one zarr chunk); tiles and strips go through zarr, which decodes only the chunks a
            # region touches.
            self._offset = page.dataoffsets[0] if page.is_memmappable and not page.is_tiled else None
            self._array: Any = None if self._offset is not None else zarr.open_array(page.aszarr(), mode="r")
        except Exception:
            self._tif.close()
            raise

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` (clipped to the image like numpy slicing), shape (h, w[, C])."""
        if self._array is None:
            return self._read_contiguous(y0, y1, x0, x1)
        if self._separate:
            return np.ascontiguousarray(np.moveaxis(np.asarray(self._array[:, y0:y1, x0:x1]), 0, -1), self.dtype)
        return np.array(self._array[y0:y1, x0:x1], dtype=self.dtype, copy=True)

    def _read_contiguous(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        height, width = self.shape[:2]
        rows = range(*slice(y0, y1).indices(height))
        start, stop, _ = slice(x0, x1).indices(width)
        planes = self.shape[2] if self._separate else 1
        samples = self.shape[2] if len(self.shape) == 3 and not self._separate else 1
        out = np.empty((planes, len(rows), max(stop - start, 0), samples), self._file_dtype)
        fh = self._tif.filehandle
        assert self._offset is not None
        for plane in range(planes):
            for i, y in enumerate(rows):
                fh.seek(self._offset + ((plane * height + y) * width + start) * samples * out.itemsize)
                if out.shape[2] and fh.readinto(out[plane, i]) != out[plane, i].nbytes:  # type: ignore[attr-defined]
                    raise DataError(f"{self.path}: truncated image data (the file ends before the pixels of row "
                                    f"{y}); the file is damaged: copy or export it again")
        if self._separate:
            result = np.moveaxis(out[..., 0], 0, -1)
        else:
            result = out[0] if len(self.shape) == 3 else out[0, ..., 0]
        return np.ascontiguousarray(result, self.dtype)

    def close(self) -> None:
        self._tif.close()

    def __enter__(self) -> RegionReader:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ZarrRegionReader:
    """Random access to rectangular regions of one plane of an OME-Zarr image's level 0 (see
    :func:`open_region_reader`); only the chunks a region overlaps are read."""

    def __init__(self, path: str | os.PathLike[str], plane: int | None = None) -> None:
        self.path = Path(path)
        image = open_zarr(self.path)
        axes = image.axes
        self._array, self._axes = image.array, axes
        self._index = plane_index(axes, plane if axes.planes > 1 else None, self.path)
        self.shape: tuple[int, ...] = (axes.height, axes.width, *([axes.channels] if axes.channels > 1 else []))
        self.dtype = np.dtype(image.array.dtype)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of the plane (clipped to the image like numpy slicing), shape (h, w[, C]).

        Raises:
            DataError: chunks that cannot be read or decoded.
        """
        names = self._axes.names
        index = tuple(slice(y0, y1) if a == "Y" else slice(x0, x1) if a == "X" else i
                      for a, i in zip(names, self._index))
        try:
            region = np.asarray(self._array[index])
        except Exception as err:  # missing or damaged chunks, a codec this zarr lacks, ...
            raise DataError(f"{self.path}: cannot read the OME-Zarr pixel data ({type(err).__name__}: {err}); the "
                            "image is incomplete or damaged: re-save it, or replace it") from err
        rest = [a for a, i in zip(names, self._index) if isinstance(i, slice)]
        order = [rest.index("Y"), rest.index("X"), *(k for k, a in enumerate(rest) if a in CHANNEL_AXES)]
        region = np.transpose(region, order)
        region = region.reshape(region.shape[0], region.shape[1], self._axes.channels)
        return np.ascontiguousarray(region[..., 0] if region.shape[2] == 1 else region, self.dtype)

    def close(self) -> None:
        """Nothing to release (zarr opens chunk files per read); for symmetry with :class:`RegionReader`."""

    def __enter__(self) -> ZarrRegionReader:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_region_reader(path: str | os.PathLike[str], plane: int | None = None) -> RegionReader | ZarrRegionReader:
    """Open a TIFF or an OME-Zarr image for region reads: ``.shape`` is (H, W) or (H, W, C), ``.read(y0, y1, x0,
    x1)`` an array.

    Only the tiles (or strips, or zarr chunks) that overlap the region are read and decoded; for a compressed
    striped image a region read decodes whole strips (temporary memory: strip height x image width). Uncompressed
    contiguous data (e.g. one strip) is read row segment by row segment, so only the region itself is loaded. Planar
    (C, H, W) storage is returned as (H, W, C). A TIFF is read from its first page; of an OME-Zarr image, level 0
    at ``plane`` (None: the only plane; see :func:`~unetseg.data.ome.plane_index`) with every channel. Use as a
    context manager or call ``close()``.
    """
    return ZarrRegionReader(path, plane) if is_zarr(path) else RegionReader(path)


def read_mirrored(reader: RegionReader | ZarrRegionReader, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Pixels ``[y0:y1, x0:x1]`` of the image of ``reader``, which may reach beyond its borders: the image is
    mirror-extrapolated there (no edge repeat, as ``numpy.pad`` mode ``"reflect"``, repeated for any width). Only
    the pixels inside the image that the region mirrors are read."""
    height, width = reader.shape[:2]
    ys, xs = mirror_indices(y0, y1 - y0, height), mirror_indices(x0, x1 - x0, width)
    top, left = int(ys.min()), int(xs.min())
    region = reader.read(top, int(ys.max()) + 1, left, int(xs.max()) + 1)
    return np.ascontiguousarray(region[np.ix_(ys - top, xs - left)])


def region_read_problem(path: str | os.PathLike[str], limit: float | None = None) -> str | None:
    """Why the image ``path`` cannot be predicted region by region with bounded memory, or None when it can.

    Region reads work for an OME-Zarr image and for a TIFF holding one 2-D image (grey or RGB) that is tiled,
    uncompressed, or stored in strips; with ``limit`` (bytes), also the largest tile, strip or chunk that a region
    read decodes whole must fit within it. PNG, JPEG and BMP files are decoded whole. The reason ends with what to
    convert the image to.
    """
    from ..data.io import check_one_image  # the --block rule for TIFFs

    path = Path(path)
    try:
        if is_zarr(path):
            array = open_zarr(path).array
            unit, what = float(np.prod(array.chunks)) * np.dtype(array.dtype).itemsize, "its zarr chunks"
        elif path.suffix.lower() in (".tif", ".tiff"):
            check_one_image(path)
            unit, what = _tiff_read_unit(path)
        else:
            return (f"{path}: {path.suffix.lstrip('.').upper() or 'such'} images cannot be read by regions (they are "
                    f"decoded whole); {CONVERT_HINT}")
    except DataError as err:
        return f"{err}; or {CONVERT_HINT}"
    if limit is not None and unit > limit:
        return (f"{path}: {what} hold {unit / 2**20:.0f} MiB each, more than the memory budget, and a region read "
                f"decodes them whole; {CONVERT_HINT}")
    return None


def _tiff_read_unit(path: Path) -> tuple[float, str]:
    """(bytes a region read of the TIFF's first page decodes at least, what they are)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        itemsize = np.dtype(page.dtype).itemsize * (page.samplesperpixel if page.planarconfig == 1 else 1)
        if page.is_tiled:
            return page.tilelength * page.tilewidth * itemsize, "its tiles"
        if page.is_memmappable:
            return page.imagewidth * itemsize, "its rows"
        rows = min(page.rowsperstrip or page.imagelength, page.imagelength)
        return rows * page.imagewidth * itemsize, f"its compressed strips of {rows} rows"


class TiledTiffWriter:
    """Write an uncompressed tiled TIFF of a known shape region by region, with memory bounded by a region.

    An empty tiled TIFF is first created in a temporary file next to ``path`` (tifffile writes zero tiles one
    at a time); :meth:`write` then stores each tile's bytes at its offset in the file, in any order.
    :meth:`close` renames the temporary file to ``path`` (``os.replace``, atomic); :meth:`abort` (or an
    exception inside a ``with`` block) deletes it, leaving ``path`` untouched.

    Regions must start on the tile grid and span whole tiles, except at the right and bottom image edges.
    """

    def __init__(
        self, path: str | os.PathLike[str], shape: tuple[int, ...], dtype: DTypeLike, tile: tuple[int, int] = (256, 256)
    ) -> None:
        if len(shape) not in (2, 3) or any(int(s) <= 0 for s in shape):
            raise ValueError(f"shape must be (H, W) or (H, W, C) with positive sizes, got {shape}")
        if len(tile) != 2 or any(t <= 0 or t % 16 for t in tile):
            raise ValueError(f"tile sizes must be positive multiples of 16 (TIFF rule), got {tile}")
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.tile = (int(tile[0]), int(tile[1]))
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent or ".")
        os.close(fd)
        self._tmp: Path | None = Path(tmp)
        try:
            extra = {"planarconfig": "contig"} if len(self.shape) == 3 else {}
            with tifffile.TiffWriter(self._tmp, bigtiff=np.prod(self.shape) * np.dtype(dtype).itemsize > 2**31) as tw:
                tw.write(shape=self.shape, dtype=dtype, tile=self.tile, photometric="minisblack", metadata=None,
                         **extra)
            with tifffile.TiffFile(self._tmp) as tif:
                page = tif.pages.first
                self.dtype = np.dtype(page.dtype)  # includes the file's byte order
                self._offsets = list(page.dataoffsets)
            self._fh = open(self._tmp, "r+b")  # noqa: SIM115 - closed in close()/abort()
        except BaseException:
            self._remove_tmp()
            raise
        self._tiles_x = -(-self.shape[1] // self.tile[1])

    def write(self, y0: int, x0: int, data: np.ndarray) -> None:
        """Store ``data`` (h, w[, C]) at rows ``y0:y0+h``, columns ``x0:x0+w``."""
        if self._tmp is None:
            raise ValueError("writer is closed")
        th, tw = self.tile
        h, w = data.shape[:2]
        if data.shape[2:] != self.shape[2:] or y0 % th or x0 % tw or y0 + h > self.shape[0] or x0 + w > self.shape[1]:
            raise ValueError(f"region {data.shape} at ({y0}, {x0}) is off the tile grid {self.tile} or the image")
        if (h % th and y0 + h != self.shape[0]) or (w % tw and x0 + w != self.shape[1]):
            raise ValueError(f"region {data.shape} at ({y0}, {x0}) must span whole tiles {self.tile}")
        for ty in range(0, h, th):
            for tx in range(0, w, tw):
                chunk = np.zeros((th, tw, *self.shape[2:]), self.dtype)
                part = data[ty : ty + th, tx : tx + tw]
                chunk[: part.shape[0], : part.shape[1]] = part
                self._fh.seek(self._offsets[((y0 + ty) // th) * self._tiles_x + (x0 + tx) // tw])
                self._fh.write(chunk.tobytes())

    def close(self) -> None:
        """Finish: flush and atomically move the file to ``path``."""
        if self._tmp is None:
            return
        self._fh.close()
        os.replace(self._tmp, self.path)
        self._tmp = None

    def abort(self) -> None:
        """Discard everything written; ``path`` is not created or changed."""
        if self._tmp is None:
            return
        self._fh.close()
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> TiledTiffWriter:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def predict_big_tiff(
    predict_region: Callable[[np.ndarray], np.ndarray],
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    block: int = 1024,
    *,
    halo: int,
    tile: int = 256,
    dtype: DTypeLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    plane: int | None = None,
) -> Path:
    """Predict a TIFF (or OME-Zarr image) of any size block by block and write the result as a tiled TIFF at
    ``out_path``.

    The image is cut into ``block`` x ``block`` output blocks (smaller at the right and bottom edges). Each
    block is read with ``halo`` pixels of context on every side; where the context leaves the image it is
    mirror-extrapolated (``numpy.pad`` mode ``"reflect"``, i.e. ``scipy.ndimage`` mode ``"mirror"``).
    ``predict_region(array)`` receives the padded (h + 2*halo, w + 2*halo[, C]) array and must return
    labels (or any per-pixel output) of the same height and width, optionally with trailing channels; the
    halo is cropped off and the block is written. Any operation whose output at a pixel depends only on
    inputs within ``halo`` pixels then gives exactly the whole-image result.

    Args:
        block: output block size; a multiple of ``tile``. Memory is O((block + 2*halo)^2).
        halo: context width in pixels (>= 0), e.g. the network's receptive-field radius.
        tile: output TIFF tile size (square, multiple of 16); tiles align with the blocks.
        dtype: output dtype (e.g. ``np.uint8`` or ``np.uint16``); default: dtype of the first prediction.
        progress: called as ``progress(blocks_done, blocks_total)`` after each block.
        plane: of an OME-Zarr image with several planes, the one to predict (see :func:`open_region_reader`).

    Returns the output path. On any error nothing is left at ``out_path`` (an existing file is untouched)
    and no temporary file remains.
    """
    if halo < 0 or block <= 0 or tile <= 0 or block % tile:
        raise ValueError(f"need halo >= 0 and block a positive multiple of tile, got {halo=}, {block=}, {tile=}")
    out = Path(out_path)
    with open_region_reader(in_path, plane) as reader:
        height, width = reader.shape[:2]
        corners = [(y, x) for y in range(0, height, block) for x in range(0, width, block)]
        writer: TiledTiffWriter | None = None
        try:
            for done, (y0, x0) in enumerate(corners, start=1):
                y1, x1 = min(y0 + block, height), min(x0 + block, width)
                ry0, ry1, rx0, rx1 = max(y0 - halo, 0), min(y1 + halo, height), max(x0 - halo, 0), min(x1 + halo, width)
                region = reader.read(ry0, ry1, rx0, rx1)
                pad = [(ry0 - (y0 - halo), y1 + halo - ry1), (rx0 - (x0 - halo), x1 + halo - rx1)]
                padded = np.pad(region, pad + [(0, 0)] * (region.ndim - 2), mode="reflect")
                result = np.asarray(predict_region(padded))
                if result.shape[:2] != padded.shape[:2]:
                    raise ValueError(f"predict_region returned shape {result.shape} for input {padded.shape}")
                result = result[halo : halo + y1 - y0, halo : halo + x1 - x0]
                if writer is None:
                    out_dtype = np.dtype(dtype) if dtype is not None else result.dtype
                    writer = TiledTiffWriter(out, (height, width, *result.shape[2:]), out_dtype, (tile, tile))
                writer.write(y0, x0, result.astype(writer.dtype, copy=False))
                del region, padded, result
                if progress is not None:
                    progress(done, len(corners))
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if writer is not None:
            writer.close()
    return out
