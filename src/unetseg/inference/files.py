"""``unetseg predict``: segment image files with a checkpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from ..data.io import (DataError, IMAGE_SUFFIXES, check_finite, check_one_image, image_stem, is_image, list_images,
                      read_image)
from ..data.ome import Channel
from ..fileio import remove_stale_temporaries
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


def _block_mode(path: Path, block: int | None) -> bool:
    """Whether ``path`` is predicted block by block (a TIFF, with ``block`` set)."""
    return block is not None and path.suffix.lower() in TIFF_SUFFIXES


def check_outputs(inputs: Sequence[str | os.PathLike], files: Sequence[Path], output: str | os.PathLike,
                  overlays: bool = False, probabilities: bool = False, instances: bool = False,
                  block: int | None = None, overwrite: bool = False, format: str = "png",
                  rois: bool = False) -> list[Path]:
    """Check, before anything is written, that predicting ``files`` into ``output`` loses nothing.

    Args:
        inputs: the inputs as given (files and folders); ``files``: the image files they hold
            (:func:`collect_inputs`).
        output: the output folder.
        overlays, probabilities, instances, block, format, rois: the outputs asked for, as in :func:`predict`
            (``instances``: whether an instance label image is written).
        overwrite: allow replacing output files (and OME-Zarr output folders) that exist already.

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
        blocks = _block_mode(source, block)
        for target in planned_outputs(out, source, overlays, probabilities, instances, blocks, format, rois):
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


def _predict_blocks(predictor: Predictor, writer: PredictionWriter, path: Path, block: int, halo: int, fill: bool,
                    progress: bool) -> Path:
    """Bounded-memory prediction of one TIFF, block by block (see :func:`predict`); returns the label file."""
    def region_labels(region: np.ndarray) -> np.ndarray:
        check_finite(path, region)
        return predictor.labels(predictor.predict_proba(region, path), fill)

    check_one_image(path)  # DataError for a file that is not a readable TIFF, or not one 2-D image
    return writer.write_blocks(path, region_labels, block, halo,
                               progress=_progress_bar(path.name, "block") if progress else None)


def _naming(path: Path, err: DataError) -> str:
    """The message of ``err``, starting with ``path`` unless it names it already."""
    message = str(err)
    return message if str(path) in message or path.name in message else f"{path}: {message}"


def _predict_files(predictor: Predictor, writer: PredictionWriter, files: Sequence[Path], block: int | None,
                   halo: int, fill: bool, instances: str | None, progress: bool, channel: Channel = None,
                   plane: int | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Predict every file; returns (label files written, (file, message) of each image that raised a DataError).
    Any other error (the disk, an interruption, a fault of the program) stops at once."""
    written: list[Path] = []
    failures: list[tuple[Path, str]] = []
    for path in tqdm(files, desc="predict", unit="image", disable=None if progress else True):
        try:
            if block is not None and _block_mode(path, block):
                written.append(_predict_blocks(predictor, writer, path, block, halo, fill, progress))
            else:
                written.append(_predict_image(predictor, writer, path, fill, instances, progress, channel, plane))
        except DataError as err:
            failures.append((path, _naming(path, err)))
            log.warning("not predicted: %s", failures[-1][1])
    return written, failures


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
    **options: Any,
) -> list[Path]:
    """Write one label PNG per input image into ``output`` (same stem; 0/255 for binary models, class indices
    otherwise) and, with ``overlays``, ``<stem>_overlay.png``; with ``probabilities``, ``<stem>_prob.tif`` (float16,
    one page per class). Output size == input size. File names and formats: :mod:`unetseg.inference.outputs`.
    ``options`` go to :class:`Predictor` (``tile``, ``overlap``, ``blending``, ``tta``, ``batch_size``,
    ``precision``, ``backend``, ``compile``).

    ``tta`` and ``min_size`` left at None take the values training chose on its validation set (stored in the
    checkpoint), else ``"none"`` and 0. Post-processing, in this order: ``fill`` fills holes in every class,
    ``min_size`` removes objects smaller than that many pixels (they become background), and ``instances`` writes
    ``<stem>_instances.png``, a 16-bit instance label image of the foreground (all non-background classes):
    ``"components"``, ``"watershed"`` (splits touching objects from the peaks of the distance transform),
    ``"seeded"`` (splits them along valleys of the foreground probability) or ``"auto"`` (the method training
    chose on its validation set).

    ``block``: TIFF inputs are predicted block by block with bounded memory, whatever their size: each block of
    ``block`` x ``block`` output pixels is read with ``halo`` pixels of context (mirrored at the image border),
    predicted, and written into a tiled TIFF ``<stem>.tif`` (0/255 for binary models); peak memory depends on the
    block, not on the image. Probability maps, overlays, instances and ROIs are not written in this mode, whatever
    ``format``.

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
        The label files written, in input order.

    Raises:
        OutputConflictError: (a DataError) ``output`` would replace an input image or, without ``overwrite``, an
            earlier output; nothing is written then.
        PredictionFailures: (a DataError) some images could not be predicted; every other one was written (its
            ``written`` attribute lists their label files, ``failures`` the images and messages).
        DataError: missing inputs, files that are not images, inputs sharing a file stem, or an output folder that
            cannot be created.
        CheckpointError: a missing or invalid checkpoint.
    """
    files = collect_inputs(inputs)
    check_outputs(inputs, files, output, overlays, probabilities, instances is not None, block, overwrite, format,
                  rois)
    predictor = Predictor.from_checkpoint(checkpoint, device=device, min_size=min_size, **options)
    writer = PredictionWriter(output, predictor.num_classes, overlays=overlays, probabilities=probabilities,
                              format=format, rois=rois, instance_images=instances is not None,
                              class_names=predictor.class_names)
    removed = remove_stale_temporaries(writer.folder) + remove_stale_directories(writer.folder)
    if removed:
        log.info("removed %d temporary file(s) an interrupted earlier write left in %s: %s", len(removed),
                 writer.folder, ", ".join(p.name for p in removed))
    written, failures = _predict_files(predictor, writer, files, block, halo, fill, instances, progress, channel,
                                       plane)
    if failures:
        raise PredictionFailures(failures, written, len(files), writer.folder)
    log.info("wrote %d label image(s) to %s", len(written), writer.folder)
    return written
