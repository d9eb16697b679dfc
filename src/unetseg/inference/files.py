"""``unetseg predict``: segment image files with a checkpoint."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from ..data.io import (DataError, IMAGE_SUFFIXES, check_one_image, image_stem, is_image, list_images, read_image)
from ..data.ome import Channel, is_zarr
from ..distributed import local_rank, rank_and_world
from ..fileio import remove_stale_temporaries
from .dask_blocks import BlockTask, dask_client, predict_file_dask, region_labels
from .memory import BlockPlanner, budget_text, region_readable, resolve_budget
from .outputs import (PredictionWriter, is_directory_output, planned_outputs, possible_outputs,
                      remove_stale_directories)
from .predictor import Predictor

log = logging.getLogger("unetseg")

TIFF_SUFFIXES = (".tif", ".tiff")
#: failures named one by one in the summary of :class:`PredictionFailures` (all of them are logged)
MAX_LISTED = 5
#: existing output files named in the message of :func:`check_outputs`
MAX_EXAMPLES = 3


class OutputConflictError(DataError):
    """The output folder cannot take the predictions: it is an input image or holds some, two inputs would write
    the same file, or earlier outputs would be replaced without ``overwrite``."""


class PredictionFailures(DataError):
    """Some input images could not be predicted (a :class:`~unetseg.data.io.DataError` each); every other one was.

    Attributes:
        failures: ``(input file, message)`` of each image that failed, in input order.
        written: the label files written for the other images, in input order.
        total: the number of input images.
        folder: the output folder.
    """

    def __init__(self, failures: Sequence[tuple[Path, str]], written: Sequence[Path], total: int,
                 folder: str | os.PathLike) -> None:
        self.failures, self.written, self.total, self.folder = list(failures), list(written), total, Path(folder)
        listed = "; ".join(message for _, message in self.failures[:MAX_LISTED])
        if len(self.failures) > MAX_LISTED:
            listed += f"; and {len(self.failures) - MAX_LISTED} more (each is in the log above)"
        done = (f"The other {len(self.written)} label image(s) are in {self.folder}" if self.written
                else "No label image was written")
        super().__init__(f"{len(self.failures)} of {total} image(s) could not be predicted: {listed}. {done}; fix "
                         "or remove the failed image(s) and predict them again.")


def _progress_bar(name: str, unit: str) -> Callable[[int, int], None]:
    """A progress callback ``(done, total)`` showing the units done and the time left for one image."""
    bar: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=name, unit=unit, leave=False, disable=None)
        bar["bar"].update(done - bar["bar"].n)
        if done >= total:
            bar["bar"].close()
            bar.clear()
    return update


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (their image files, not recursive) into a list of image files.

    Raises:
        DataError: a path that does not exist, a file that is not an image, a folder without images, or two
            inputs with the same file stem (their outputs would overwrite each other).
    """
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir() and not is_image(item):  # a folder of images (an OME-Zarr folder is one image)
            found = list_images(item)
            if not found:
                raise DataError(f"{item}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif item.is_file() or item.is_dir():
            if not is_image(item):
                raise DataError(f"{item}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    seen: dict[str, Path] = {}
    for f in files:
        stem = image_stem(f)  # cells.ome.tif -> cells, as the outputs are named
        if stem in seen:
            raise DataError(f"{f} and {seen[stem]} share the stem {stem!r}; their outputs would collide")
        seen[stem] = f
    return files


def _same_place(a: Path, b: Path) -> bool:
    """Whether the paths ``a`` and ``b`` name the same existing file or folder."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _another_folder(out: Path) -> Path:
    """A folder to suggest instead of ``out``: ``<out>_predictions`` beside it."""
    out = out.resolve()
    return out.parent / f"{out.name or 'output'}_predictions"


def _check_not_inputs(inputs: Sequence[str | os.PathLike], files: Sequence[Path], out: Path) -> None:
    """OutputConflictError when ``out`` is an input image or a file, an input folder, or holds input images."""
    if not out.exists():
        return
    if not out.is_dir():
        same = next((f for f in files if _same_place(f, out)), None)
        what = f"is the input image {same}" if same is not None else "is a file"
        raise OutputConflictError(f"--output {out} {what}; expected a folder for the label images (it is created "
                                  f"if missing): choose another --output, e.g. {_another_folder(out)}")
    for item in map(Path, inputs):
        if item.is_dir() and _same_place(item, out):
            raise OutputConflictError(
                f"--input {item} and --output {out} are the same folder; the label images would be written among "
                f"the input images and could replace them: choose another --output, e.g. {_another_folder(out)}")
    parents = {folder for f in files for folder in (f.parent, f.resolve().parent)}
    holding = {folder for folder in parents if _same_place(folder, out)}
    inside = [f for f in files if f.parent in holding or f.resolve().parent in holding]
    if inside:
        raise OutputConflictError(
            f"--output {out} holds {len(inside)} of the input images (e.g. {inside[0]}); the label images would be "
            f"written among them and could replace them: choose another --output, e.g. {_another_folder(out)}")


def _block_mode(path: Path, block: int | None, dask: bool = False) -> bool:
    """Whether ``path`` is predicted block by block (a TIFF or OME-Zarr image, with ``block`` set or with Dask)."""
    return (block is not None or dask) and region_readable(path)


def _block_outputs(out: Path, source: Path, format: str, dask: bool) -> list[Path]:
    """The file a block-wise prediction of ``source`` writes: the tiled TIFF ``<stem>.tif``, or with Dask and
    ``format`` ome-zarr the OME-Zarr image ``<stem>.ome.zarr``."""
    if dask and format == "ome-zarr":
        return planned_outputs(out, source, format=format)
    return planned_outputs(out, source, blocks=True, format=format)


def check_outputs(inputs: Sequence[str | os.PathLike], files: Sequence[Path], output: str | os.PathLike,
                  overlays: bool = False, probabilities: bool = False, instances: bool = False,
                  block: int | None = None, overwrite: bool = False, format: str = "png",
                  rois: bool = False, dask: bool = False,
                  block_files: Mapping[Path, int | None] | None = None) -> list[Path]:
    """Check, before anything is written, that predicting ``files`` into ``output`` loses nothing.

    Args:
        inputs: the inputs as given (files and folders); ``files``: the image files they hold
            (:func:`collect_inputs`).
        output: the output folder.
        overlays, probabilities, instances, block, format, rois, dask: the outputs asked for, as in :func:`predict`
            (``instances``: whether an instance label image is written).
        overwrite: allow replacing output files (and OME-Zarr output folders) that exist already.
        block_files: the block side of every file (None: predicted whole), as
            :meth:`~unetseg.inference.memory.BlockPlanner.plan` chose it; by default TIFF and OME-Zarr files are
            predicted by blocks with ``block`` or ``dask``, others whole.

    Returns:
        Every file (or OME-Zarr folder) the prediction would write, in input order.

    Raises:
        OutputConflictError: ``output`` is a file or an input image, is an input folder or holds input images, two
            inputs would write the same file, an output file exists already (without ``overwrite``), a folder
            stands where an output file would go, or something other than an OME-Zarr folder where one would go.
    """
    out = Path(output)
    _check_not_inputs(inputs, files, out)
    planned: dict[Path, Path] = {}
    possible: list[Path] = []  # written in some cases only (a PNG instance image too large for 16 bits)
    for source in files:
        blocks = (block_files.get(source) is not None if block_files is not None
                  else _block_mode(source, block, dask))
        targets = (_block_outputs(out, source, format, dask) if blocks
                   else planned_outputs(out, source, overlays, probabilities, instances, False, format, rois))
        for target in targets:
            if target in planned:
                raise OutputConflictError(f"{planned[target]} and {source} would both write {target}: rename one of "
                                          "them, or predict them into different --output folders")
            planned[target] = source
        possible += possible_outputs(out, source, instances, format, blocks)
    _check_existing(out, [*planned, *possible], overwrite)
    return list(planned)


def _is_zarr_group(path: Path) -> bool:
    """Whether the folder ``path`` is a Zarr group (v3 ``zarr.json`` or v2 ``.zgroup``)."""
    return (path / "zarr.json").is_file() or (path / ".zgroup").is_file()


def _check_existing(out: Path, targets: Sequence[Path], overwrite: bool) -> None:
    """OutputConflictError for a folder where an output file would go, something other than an OME-Zarr folder
    where one would go, or (without ``overwrite``) output files or folders that exist already."""
    existing = [target for target in targets if os.path.lexists(target)]
    for target in existing:
        folder = target.is_dir() and not target.is_symlink()
        if is_directory_output(target) and not (folder and _is_zarr_group(target)):
            raise OutputConflictError(f"{target} exists and is not an OME-Zarr folder, where the OME-Zarr output "
                                      "would go: move it away, or choose another --output")
        if folder and not is_directory_output(target):
            raise OutputConflictError(f"{target} is a folder where an output file would go: move it away, or "
                                      "choose another --output")
    if existing and not overwrite:
        examples = ", ".join(target.name for target in existing[:MAX_EXAMPLES])
        raise OutputConflictError(f"{len(existing)} output file(s) exist already in {out}, e.g. {examples}; pass "
                                  "--overwrite to replace them, or choose another --output")


def _predict_image(predictor: Predictor, writer: PredictionWriter, path: Path, fill: bool, instances: str | None,
                   progress: bool, channel: Channel = None, plane: int | None = None) -> Path:
    """Predict one image file whole (or tiled) and write its outputs; returns the label file. ``channel`` and
    ``plane``: as in :func:`~unetseg.data.io.read_image`."""
    image = read_image(path, channel, plane, channels=predictor.model.in_channels)
    if predictor.tile is not None and progress:
        predictor.progress = _progress_bar(path.name, "tile")
    probs = predictor.predict_proba(image, path)
    labels = predictor.labels(probs, fill)
    objects = None
    if instances is not None or writer.rois:  # the ROI zip needs objects too: by the checkpoint's method by default
        method = instances or "auto"
        objects = predictor.objects(probs, labels, None if method == "auto" else method)
    return writer.write(path, image, probs, labels, objects)


@dataclass
class _Job:
    """What the images of one :func:`predict` call share: the predictor and writer, the block side of each file
    (None: whole), the settings, and for Dask its client and what a worker needs to build the predictor."""

    predictor: Predictor
    writer: PredictionWriter
    blocks: Mapping[Path, int | None]
    halo: int = 64
    fill: bool = False
    instances: str | None = None
    progress: bool = False
    channel: Channel = None
    plane: int | None = None
    client: Any = None  # a distributed.Client: block-wise prediction runs on its cluster
    checkpoint: str = ""
    device: str = "auto"
    options: tuple[tuple[str, Any], ...] = ()

    def bar(self, path: Path, unit: str) -> Callable[[int, int], None] | None:
        """A progress bar for ``path`` when progress is shown."""
        return _progress_bar(path.name, unit) if self.progress else None


def _predict_blocks(job: _Job, path: Path, block: int) -> Path:
    """Bounded-memory prediction of one TIFF or OME-Zarr image, block by block (see :func:`predict`), in this
    process or on Dask; returns the label file."""
    if not is_zarr(path):
        check_one_image(path)  # DataError for a file that is not a readable TIFF, or not one 2-D image
    if job.client is not None:
        writer = job.writer
        channel = tuple(job.channel) if isinstance(job.channel, Sequence) else job.channel
        task = BlockTask(job.checkpoint, job.device, job.options, str(path), job.halo,
                         job.predictor.num_classes, job.fill, channel, classes=writer.format == "ome-zarr")
        target = writer.path(path, "labels" if writer.format == "ome-zarr" else "blocks")
        predict_file_dask(job.client, path.absolute(), target.absolute(), task, block, writer.format, job.plane,
                          job.predictor.class_names, progress=job.bar(path, "block"))  # absolute: for the workers
        return target

    def labels(region: np.ndarray) -> np.ndarray:
        return region_labels(job.predictor, region, path, job.fill, job.channel)

    return job.writer.write_blocks(path, labels, block, job.halo, progress=job.bar(path, "block"), plane=job.plane)


def _naming(path: Path, err: DataError) -> str:
    """The message of ``err``, starting with ``path`` unless it names it already."""
    message = str(err)
    return message if str(path) in message or path.name in message else f"{path}: {message}"


def _predict_files(job: _Job, files: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Predict every file; returns (label files written, (file, message) of each image that raised a DataError).
    Any other error (the disk, an interruption, a fault of the program) stops at once."""
    written: list[Path] = []
    failures: list[tuple[Path, str]] = []
    for path in tqdm(files, desc="predict", unit="image", disable=None if job.progress else True):
        try:
            block = job.blocks.get(path)
            if block is not None:
                written.append(_predict_blocks(job, path, block))
            else:
                written.append(_predict_image(job.predictor, job.writer, path, job.fill, job.instances,
                                              job.progress, job.channel, job.plane))
        except DataError as err:
            failures.append((path, _naming(path, err)))
            log.warning("not predicted: %s", failures[-1][1])
    return written, failures


def files_for_rank(files: Sequence[Path], rank: int, world: int) -> list[Path]:
    """The files process ``rank`` of ``world`` predicts: those whose index in ``files`` is ``rank`` modulo
    ``world``, so that every file is predicted by exactly one process."""
    return list(files[rank::world])


@contextlib.contextmanager
def _process_group(world: int) -> Iterator[None]:
    """With several processes (torchrun), a process group for :func:`_barrier`: a gloo group made here (from the
    variables torchrun sets) and destroyed at the end, unless one exists."""
    import torch.distributed as dist

    made = world > 1 and dist.is_available() and not dist.is_initialized()
    if made:
        dist.init_process_group("gloo")
    try:
        yield
    finally:
        if made:
            dist.destroy_process_group()


def _barrier(world: int) -> None:
    """Wait for every process of the group (nothing to wait for alone)."""
    import torch.distributed as dist

    if world > 1 and dist.is_available() and dist.is_initialized():
        dist.barrier()


def _rank_device(device: str, world: int) -> str:
    """``device`` for this process: with several processes and a GPU per local rank, "auto" is that GPU."""
    import torch

    if world > 1 and device == "auto" and torch.cuda.is_available():
        return f"cuda:{local_rank() % torch.cuda.device_count()}"
    return device


def _whole_outputs(overlays: bool, probabilities: bool, instances: str | None, rois: bool) -> list[str]:
    """The options asked for that need the whole image (block-wise prediction writes labels only)."""
    return [flag for flag, wanted in (("--overlay", overlays), ("--probabilities", probabilities),
                                      ("--instances", instances is not None), ("--rois", rois)) if wanted]


def _planner(predictor: Predictor, memory_budget: str | int | None, block: int | None, halo: int, dask: bool,
             whole: Sequence[str], rank: int) -> BlockPlanner:
    """What chooses whole or block-wise prediction for each image, with the memory budget (logged by rank 0);
    ``whole``: the options asked for that need the whole image."""
    budget = resolve_budget(memory_budget)
    if rank == 0:
        log.debug("memory budget: %s", budget_text(budget, memory_budget is not None))  # stated where it matters
    return BlockPlanner(predictor, budget, block, halo, dask, () if block is not None or dask else whole,
                        verbose=rank == 0)


def _dask_engine(scheduler: str | None, workers: int) -> contextlib.AbstractContextManager[Any]:
    """The Dask client of the run (:func:`~unetseg.inference.dask_blocks.dask_client`), its choice logged."""
    if scheduler:
        log.info("Dask: block-wise prediction on the cluster of the scheduler at %s", scheduler)
    else:
        log.info("Dask: block-wise prediction on a local cluster of %d worker process(es), one thread each "
                 "(--dask-workers)", workers)
    return dask_client(scheduler, workers)


def predict(
    checkpoint: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    overlays: bool = False,
    device: str = "auto",
    progress: bool = False,
    probabilities: bool = False,
    min_size: int | None = None,
    fill: bool = False,
    instances: str | None = None,
    block: int | None = None,
    halo: int = 64,
    overwrite: bool = False,
    format: str = "png",
    rois: bool = False,
    channel: Channel = None,
    plane: int | None = None,
    memory_budget: str | int | None = None,
    dask: bool = False,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    **options: Any,
) -> list[Path]:
    """Write one label PNG per input image into ``output`` (same stem; 0/255 for binary models, class indices
    otherwise) and, with ``overlays``, ``<stem>_overlay.png``; with ``probabilities``, ``<stem>_prob.tif`` (float16,
    one page per class). Output size == input size. File names and formats: :mod:`unetseg.inference.outputs`.
    ``options`` go to :class:`Predictor` (``tile``, ``overlap``, ``blending``, ``tta``, ``batch_size``,
    ``precision``, ``backend``, ``compile``, and the objects' ``instance_threshold`` and ``seed_threshold``; None
    values take the checkpoint's choice).

    ``tta`` and ``min_size`` left at None take the values training chose on its validation set (stored in the
    checkpoint), else ``"none"`` and 0. Post-processing, in this order: ``fill`` fills holes in every class,
    ``min_size`` removes objects smaller than that many pixels (they become background), and ``instances`` writes
    ``<stem>_instances.png``, a 16-bit instance label image of the foreground (all non-background classes):
    ``"components"``, ``"watershed"`` (splits touching objects from the peaks of the distance transform),
    ``"seeded"`` (splits them along valleys of the foreground probability) or ``"auto"`` (the method training
    chose on its validation set).

    ``block``: TIFF and OME-Zarr inputs are predicted block by block with bounded memory, whatever their size: each
    block of ``block`` x ``block`` output pixels is read with ``halo`` pixels of context (mirrored at the image
    border), predicted, and written into a tiled TIFF ``<stem>.tif`` (0/255 for binary models); peak memory depends
    on the block, not on the image. Probability maps, overlays, instances and ROIs are not written in this mode,
    whatever ``format``.

    ``memory_budget`` (e.g. ``"4GiB"``, ``"800MiB"``; None: 2 GiB, or a quarter of the machine's memory if less;
    logged): without
    ``block``, an image whose whole-image prediction would need more (estimated from its size and the network:
    :mod:`unetseg.inference.memory`) is predicted block by block as with ``block`` (blocks up to 2048 pixels that
    fit the budget), if it can be read by regions (a TIFF of one 2-D image that is tiled, striped or uncompressed,
    or an OME-Zarr image); other formats are predicted whole, with a warning that says what to convert them to.
    Such an image with ``overlays``, ``probabilities``, ``instances`` or ``rois``, which need the whole image, is
    refused before anything is predicted.

    ``dask``: every TIFF and OME-Zarr input is predicted block by block as Dask tasks
    (:mod:`unetseg.inference.dask_blocks`; needs ``pip install unetseg[dask]``), with labels identical to
    ``block``'s (``block`` or, by default, blocks up to 2048 pixels that fit ``memory_budget``): on a local cluster
    of ``dask_workers`` processes (None: one per core, fewer when their blocks would not fit in half of the
    machine's memory together), or on the running cluster whose scheduler is at ``scheduler`` (e.g.
    ``"tcp://host:8786"``; implies ``dask``). The labels are written as with ``block`` or, with ``format``
    ``"ome-zarr"``, as the label image ``labels/classes`` of ``<stem>.ome.zarr``. Other inputs are predicted in this
    process.

    Under ``torchrun`` with several processes, each process predicts the images whose index in the input order is
    its rank modulo the number of processes, and the outputs are those of one process. Every process checks the
    outputs of all images first, and they wait for each other before predicting and before returning.

    ``format``: the label images are ``"png"`` (the default), ``"tif"`` (``<stem>.tif`` and
    ``<stem>_instances.tif``, zlib-compressed) or ``"ome-zarr"`` (``<stem>.ome.zarr``: the input image with the
    label images ``labels/classes`` (class indices) and ``labels/instances``, for napari; needs
    ``pip install unetseg[ome]``). An instance image of more than 65535 objects is uint32, as
    ``<stem>_instances.tif`` in the png format. ``rois``: also ``<stem>_rois.zip``, an ImageJ/Fiji ROI set with one
    polygon per object (objects separated by ``instances``' method, the checkpoint's choice by default).

    Nothing is lost: before anything is predicted, the output folder is refused if it is an input image, an input
    folder or holds input images, and so are output files that exist already unless ``overwrite``
    (:func:`check_outputs`). Temporary files an interrupted earlier run left in ``output`` are removed. An image
    that cannot be predicted (unreadable, wrong channels, ...) does not stop the others: they are all predicted,
    then :class:`PredictionFailures` names the ones that failed. Every file is written atomically.

    Inputs may be PNG, JPEG, BMP, TIFF (any compression imagecodecs decodes), OME-TIFF and OME-Zarr folders
    (``NAME.ome.zarr``). ``plane`` chooses the plane of images with several (Z slices, time points; None: the only
    one), ``channel`` the channel(s) of multi-channel images (None: all; an OME channel axis with more channels
    than the network takes needs it): see :func:`~unetseg.data.io.read_image`.

    Returns:
        The label files written (by this process), in input order.

    Raises:
        ValueError: ``memory_budget`` is not a memory size, or ``dask`` under torchrun with several processes.
        OutputConflictError: (a DataError) ``output`` would replace an input image or, without ``overwrite``, an
            earlier output; nothing is written then.
        PredictionFailures: (a DataError) some images could not be predicted; every other one was written (its
            ``written`` attribute lists their label files, ``failures`` the images and messages).
        DataError: missing inputs, files that are not images, inputs sharing a file stem, an output folder that
            cannot be created, an image too large for the memory budget with outputs that need it whole, or Dask
            that is not installed or whose scheduler does not answer.
        CheckpointError: a missing or invalid checkpoint.
    """
    files = collect_inputs(inputs)
    dask = dask or bool(scheduler)
    check_outputs(inputs, files, output, overlays, probabilities, instances is not None, block, overwrite, format,
                  rois, dask)
    rank, world = _processes(dask)
    device = _rank_device(device, world)
    predictor = Predictor.from_checkpoint(checkpoint, device=device, min_size=min_size, **options)
    whole = _whole_outputs(overlays, probabilities, instances, rois)
    planner = _planner(predictor, memory_budget, block, halo, dask, whole, rank)
    blocks = planner.plan(files)
    if any((size is not None) != _block_mode(path, block, dask) for path, size in blocks.items()):
        check_outputs(inputs, files, output, overlays, probabilities, instances is not None, block, overwrite,
                      format, rois, dask, block_files=blocks)
    if whole and rank == 0 and any(size is not None for size in blocks.values()):
        log.warning("%s: not written for the images predicted block by block (labels only)", ", ".join(whole))
    writer = PredictionWriter(output, predictor.num_classes, overlays=overlays, probabilities=probabilities,
                              format=format, rois=rois, instance_images=instances is not None,
                              class_names=predictor.class_names)
    if rank == 0:  # before any process writes: the others' temporary files are not stale
        _remove_stale(writer.folder)
    job = _Job(predictor, writer, blocks, halo, fill, instances, progress and rank == 0, channel, plane,
               checkpoint=str(Path(checkpoint).absolute()), device=device,
               options=tuple(sorted({"min_size": min_size, **options}.items())))
    mine = files_for_rank(files, rank, world)
    engine = _engine(dask and any(blocks[path] is not None for path in mine), scheduler, dask_workers, planner, blocks)
    with _process_group(world):
        _barrier(world)
        with engine as job.client:
            written, failures = _predict_files(job, mine)
        _barrier(world)
    if failures:
        raise PredictionFailures(failures, written, len(mine), writer.folder)
    log.info("wrote %d label image(s) to %s%s", len(written), writer.folder,
             f" (process {rank} of {world}: {len(mine)} of the {len(files)} images)" if world > 1 else "")
    return written


def _processes(dask: bool) -> tuple[int, int]:
    """This process's rank and the number of processes (torchrun), which Dask does not go with."""
    rank, world = rank_and_world()
    if world > 1 and dask:
        raise ValueError("Dask (dask, scheduler) and several processes (torchrun) do not go together: launch one "
                         "process, which hands the blocks to the Dask workers")
    return rank, world


def _engine(use_dask: bool, scheduler: str | None, workers: int | None, planner: Any, blocks: dict) -> Any:
    """The Dask client's context (a local cluster of ``workers`` or the one at ``scheduler``), or a null one."""
    if not use_dask:
        return contextlib.nullcontext()
    return _dask_engine(scheduler, workers or planner.workers(blocks))


def _remove_stale(folder: Path) -> None:
    """Remove the temporary files and folders an interrupted earlier write left in ``folder`` (logged)."""
    removed = remove_stale_temporaries(folder) + remove_stale_directories(folder)
    if removed:
        log.info("removed %d temporary file(s) an interrupted earlier write left in %s: %s", len(removed), folder,
                 ", ".join(p.name for p in removed))
