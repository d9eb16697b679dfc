"""Block-wise prediction of images larger than one machine as Dask tasks (``unetseg predict --dask``).

The image (a TIFF or an OME-Zarr image, read by regions) becomes a Dask array mirrored by the context width
(``halo``) on every side and chunked into the blocks of single-process block prediction
(:func:`~unetseg.inference.bigimage.predict_big_tiff`): the first and last chunks of each axis also hold the mirrored
border. :func:`dask.array.map_overlap` with ``depth=halo`` hands every task its block with ``halo`` pixels of context
from its neighbours; the task predicts it with a :class:`~unetseg.inference.predictor.Predictor` built once per
worker process from the checkpoint (the path is shipped, not the network) and returns the block without its context.
Every task therefore sees exactly the array single-process block prediction gives the network, and the labels are
identical to it, bit for bit.

The labels are written as a tiled TIFF (blocks gathered as they finish and written by this process) or, with
``--format ome-zarr``, as the label image ``labels/classes`` of an OME-Zarr image holding the input (written by the
workers: with a cluster of several machines the output folder must be on a file system they share, as must the
checkpoint and the inputs).

Dask runs on a ``distributed.LocalCluster`` of this machine (worker processes with one thread each; Dask gives each
worker process one OpenMP thread, so PyTorch in every worker uses one core) or on an existing cluster
(``scheduler``). Instances across blocks are not computed: block-wise prediction writes class labels only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.errors import DataError
from ..data.io import check_finite
from ..data.ome import Channel, select_channels
from .bigimage import TiledTiffWriter, open_region_reader, read_mirrored
from .outputs import CLASS_LABELS, label_dtype, label_image, write_ome_zarr
from .predictor import Predictor

__all__ = ["BlockTask", "PaddedSource", "block_chunks", "dask_client", "label_blocks", "predict_file_dask",
           "region_labels"]

DASK_INSTALL_HINT = "pip install unetseg[dask]"
#: the TIFF tile of the label images (blocks are multiples of it)
TIFF_TILE = 256

_PREDICTORS: dict[tuple[Any, ...], Predictor] = {}
_PREDICTORS_LOCK = threading.Lock()


def region_labels(predictor: Predictor, region: np.ndarray, source: str | os.PathLike, fill: bool = False,
                  channel: Channel = None) -> np.ndarray:
    """Class indices (h, w) of an image region (h, w[, C]) read with its context: ``channel`` chosen, checked for
    NaN and infinite pixels, predicted as a whole image (normalised on its own), holes filled with ``fill``, small
    objects removed (the predictor's ``min_size``). Both block-wise engines (this module and
    :func:`unetseg.inference.files.predict` with ``block``) predict every block with this function.

    Raises:
        DataError: naming ``source``: a channel out of range, or non-finite pixels.
    """
    region = select_channels(region, channel, source)
    check_finite(source, region)
    return predictor.labels(predictor.predict_proba(region, source), fill)


def cached_predictor(checkpoint: str, device: str, options: tuple[tuple[str, Any], ...]) -> Predictor:
    """The :class:`Predictor` of ``checkpoint`` with ``options``, built once per process (worker) and kept until
    another one is asked for (a long-lived worker keeps one network, not one per command it served)."""
    key = (checkpoint, device, options)
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            _PREDICTORS.clear()
            _PREDICTORS[key] = Predictor.from_checkpoint(checkpoint, device=device, **dict(options))
        return _PREDICTORS[key]


@dataclass(frozen=True)
class BlockTask:
    """The labels of one block, given the block with ``halo`` pixels of context on every side: a small, picklable
    callable that Dask ships to the workers.

    Attributes:
        checkpoint: the checkpoint file (an absolute path, readable by the workers).
        device: where the workers predict (``"auto"``: each worker's default).
        options: the :class:`Predictor` options, as sorted ``(name, value)`` pairs.
        source: the input image, for messages.
        halo: context pixels on every side of the block.
        fill, channel: as in :func:`region_labels`.
        classes: store class indices (as OME-Zarr labels); False: the label image's values (0/255 for a binary
            model, :func:`~unetseg.inference.outputs.label_image`).
        num_classes: classes of the model.
    """

    checkpoint: str
    device: str
    options: tuple[tuple[str, Any], ...]
    source: str
    halo: int
    num_classes: int
    fill: bool = False
    channel: Channel = None
    classes: bool = False

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the labels returned."""
        return label_dtype(self.num_classes)

    def __call__(self, padded: np.ndarray) -> np.ndarray:
        predictor = cached_predictor(self.checkpoint, self.device, self.options)
        labels = region_labels(predictor, padded, self.source, self.fill, self.channel)
        height, width = labels.shape[0] - 2 * self.halo, labels.shape[1] - 2 * self.halo
        labels = labels[self.halo:self.halo + height, self.halo:self.halo + width]
        return labels.astype(self.dtype) if self.classes else label_image(labels, self.num_classes)


@dataclass(frozen=True)
class PaddedSource:
    """The image at ``path`` mirrored by ``halo`` pixels on every side, as an array-like that reads only the
    regions asked for (the source of :func:`dask.array.from_array`); picklable, it opens the file at every read.

    Attributes:
        path: a TIFF or an OME-Zarr image.
        plane: the plane of an OME-Zarr image with several (see
            :func:`~unetseg.inference.bigimage.open_region_reader`).
        halo: mirrored pixels on every side.
        image_shape: (H, W[, C]) of the image.
        dtype: its dtype.
    """

    path: str
    plane: int | None
    halo: int
    image_shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """(H + 2 halo, W + 2 halo[, C])."""
        height, width = self.image_shape[:2]
        return (height + 2 * self.halo, width + 2 * self.halo, *self.image_shape[2:])

    @property
    def ndim(self) -> int:
        return len(self.image_shape)

    def __getitem__(self, index: tuple[slice, ...]) -> np.ndarray:
        rows, cols = (range(*s.indices(n)) for s, n in zip(index[:2], self.shape))
        with open_region_reader(self.path, self.plane) as reader:
            region = read_mirrored(reader, rows.start - self.halo, rows.stop - self.halo,
                                   cols.start - self.halo, cols.stop - self.halo)
        return region[(slice(None), slice(None), *index[2:])]


def block_chunks(size: int, block: int) -> tuple[int, ...]:
    """The blocks along an axis of ``size`` pixels: ``block`` each, the last one what is left."""
    return (block,) * (size // block) + ((size % block,) if size % block else ())


def _with_border(chunks: tuple[int, ...], halo: int) -> tuple[int, ...]:
    """``chunks`` of the image as chunks of the image mirrored by ``halo``: the first and last grow by it."""
    widened = list(chunks)
    widened[0] += halo
    widened[-1] += halo
    return tuple(widened)


def _dask_array() -> Any:
    """The ``dask.array`` module; DataError naming the extra to install when Dask is missing."""
    try:
        import dask.array as da
    except ImportError as err:
        raise DataError(f"block-wise prediction with Dask needs dask: {DASK_INSTALL_HINT} ({err})") from err
    return da


def source_array(path: str | os.PathLike, block: int, halo: int = 0, plane: int | None = None) -> Any:
    """The image at ``path`` (TIFF or OME-Zarr), mirrored by ``halo`` on every side, as a lazy Dask array whose
    chunks are the blocks of ``block`` pixels (the first and last of each axis widened by ``halo``)."""
    da = _dask_array()
    with open_region_reader(path, plane) as reader:
        shape, dtype = tuple(reader.shape), reader.dtype
    source = PaddedSource(str(Path(path).absolute()), plane, halo, shape, dtype)
    chunks = (_with_border(block_chunks(shape[0], block), halo), _with_border(block_chunks(shape[1], block), halo),
              *shape[2:])
    return da.from_array(source, chunks=chunks, asarray=False, fancy=False, name=False,
                         meta=np.empty((0,) * len(shape), dtype))


def label_blocks(path: str | os.PathLike, task: BlockTask, block: int, plane: int | None = None) -> Any:
    """The labels of the image at ``path`` as a lazy Dask array (H, W) chunked into ``block`` x ``block`` blocks,
    each computed by ``task`` from its block with ``task.halo`` pixels of context (``dask.array.map_overlap``).

    Raises:
        ValueError: ``task.halo`` larger than ``block`` (a task's context comes from its neighbours only).
    """
    da = _dask_array()
    halo = task.halo
    if not 0 <= halo <= block:
        raise ValueError(f"halo must be in [0, block] for Dask block prediction, got halo={halo}, block={block}")
    image = source_array(path, block, halo, plane)
    height, width = image.shape[0] - 2 * halo, image.shape[1] - 2 * halo
    depth = {0: halo, 1: halo, **({2: 0} if image.ndim == 3 else {})}
    extra = {"drop_axis": [2]} if image.ndim == 3 else {}
    return da.map_overlap(task, image, depth=depth, boundary="none", trim=False, allow_rechunk=False,
                          chunks=(block_chunks(height, block), block_chunks(width, block)), dtype=task.dtype,
                          meta=np.empty((0, 0), task.dtype), **extra)


def _image_for_ome_zarr(path: str | os.PathLike, block: int, plane: int | None, channel: Channel) -> Any:
    """The input image with ``channel`` chosen, as a lazy Dask array, for the OME-Zarr output."""
    image = source_array(path, block, 0, plane)
    if channel is None or image.ndim == 2:
        return image
    picks = [channel] if isinstance(channel, (int, np.integer)) else list(channel)
    return image[:, :, picks[0]] if len(picks) == 1 else image[:, :, [int(c) for c in picks]]


def _distributed() -> Any:
    """The ``distributed`` module; DataError naming the extra to install when it is missing."""
    try:
        import distributed
    except ImportError as err:
        raise DataError(f"--dask needs the distributed package (Dask's cluster): {DASK_INSTALL_HINT} ({err})") from err
    return distributed


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for the time of the ``with`` block: connected to the scheduler at ``scheduler``
    (e.g. ``tcp://host:8786``), or to a new ``LocalCluster`` of ``workers`` processes with one thread each (None:
    one per core) that is shut down at the end. The client is Dask's default scheduler meanwhile.

    Raises:
        DataError: distributed is not installed, or no scheduler answers at ``scheduler``.
    """
    distributed = _distributed()
    with _log_levels({"distributed": logging.WARNING}):  # Dask's own start-up and shut-down messages
        if scheduler:
            try:
                client = distributed.Client(scheduler)  # waits distributed.comm.timeouts.connect (30 s) at most
            except (OSError, TimeoutError, ValueError) as err:
                raise DataError(f"--scheduler {scheduler}: no Dask scheduler answers there ({type(err).__name__}: "
                                f"{err}); expected the address of a running scheduler, e.g. tcp://HOST:8786 (what "
                                "`dask scheduler` prints)") from err
            with client:
                yield client
            return
        count = workers or os.cpu_count() or 1
        with distributed.LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            with distributed.Client(cluster) as client:
                yield client
            # shutting down, a worker slow to exit is killed after a few seconds: nothing the user must act on
            logging.getLogger("distributed.nanny").setLevel(logging.ERROR)


@contextlib.contextmanager
def _log_levels(levels: dict[str, int]) -> Iterator[None]:
    """The loggers named in ``levels`` at least at those levels for the time of the ``with`` block (any level set
    on them meanwhile is undone too)."""
    names = [*levels, "distributed.nanny"]
    saved = {name: logging.getLogger(name).level for name in names}
    for name, level in levels.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), level))
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def write_tiff_blocks(client: Any, labels: Any, target: str | os.PathLike,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Compute the blocks of ``labels`` (a Dask array (H, W) chunked into multiples of 256 pixels) on ``client``'s
    cluster and write them, as they finish, into the tiled TIFF ``target`` (atomically: nothing is left at
    ``target`` on an error). ``progress(done, total)`` is called after each block. Returns ``target``."""
    distributed = _distributed()
    blocks = labels.to_delayed()
    places = list(np.ndindex(*blocks.shape))
    futures = client.compute([blocks[place] for place in places])
    where = {future.key: place for future, place in zip(futures, places)}
    starts = [np.cumsum((0,) + chunks[:-1]) for chunks in labels.chunks]
    try:
        with TiledTiffWriter(target, labels.shape, labels.dtype, (TIFF_TILE, TIFF_TILE)) as writer:
            for done, future in enumerate(distributed.as_completed(futures), start=1):
                row, col = where[future.key]
                writer.write(int(starts[0][row]), int(starts[1][col]), future.result())
                future.release()
                if progress is not None:
                    progress(done, len(futures))
    finally:
        client.cancel(futures)
    return Path(target)


def predict_file_dask(client: Any, path: str | os.PathLike, target: str | os.PathLike, task: BlockTask, block: int,
                      format: str = "tif", plane: int | None = None, class_names: Sequence[str] = (),
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Predict the image at ``path`` block by block on ``client``'s cluster and write its labels to ``target``.

    Args:
        client: a ``distributed.Client`` (:func:`dask_client`).
        path: a TIFF of one 2-D image or an OME-Zarr image.
        target: a tiled TIFF (``format`` ``"png"`` or ``"tif"``: values of the label image, 0/255 for a binary
            model) or, for ``"ome-zarr"``, an OME-Zarr image folder holding the input image and the class indices
            as the label image ``labels/classes`` (napari, ome-zarr-py), with their resolution pyramids.
        task: how a block is predicted; ``task.classes`` must be True for ``"ome-zarr"`` and False otherwise.
        block: block side (a multiple of 256).
        plane: the plane of an OME-Zarr image with several.
        class_names: the name of each class (OME-Zarr label properties).
        progress: with a TIFF target, called as ``progress(blocks_done, blocks_total)``.

    Returns:
        ``target``.

    Raises:
        DataError: the image cannot be read (naming it), or a block's pixels are not finite.
    """
    labels = label_blocks(path, task, block, plane)
    if format != "ome-zarr":
        return write_tiff_blocks(client, labels, target, progress)
    image = _image_for_ome_zarr(path, block, plane, task.channel)
    return write_ome_zarr(target, image, {CLASS_LABELS: labels}, class_names)
