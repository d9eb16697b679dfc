"""``unetseg predict``: segment image files with a checkpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from ..data.io import DataError, IMAGE_SUFFIXES, list_images, read_image
from .outputs import PredictionWriter
from .predictor import Predictor

log = logging.getLogger("unetseg")

TIFF_SUFFIXES = (".tif", ".tiff")


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
        if item.is_dir():
            found = list_images(item)
            if not found:
                raise DataError(f"{item}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{item}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise DataError(f"{f} and {seen[f.stem]} share the stem {f.stem!r}; their outputs would collide")
        seen[f.stem] = f
    return files


def _predict_image(predictor: Predictor, writer: PredictionWriter, path: Path, fill: bool, instances: str | None,
                   progress: bool) -> Path:
    """Predict one image file whole (or tiled) and write its outputs; returns the label file."""
    image = read_image(path)
    if predictor.tile is not None and progress:
        predictor.progress = _progress_bar(path.name, "tile")
    probs = predictor.predict_proba(image, path)
    labels = predictor.labels(probs, fill)
    objects = None
    if instances is not None:
        objects = predictor.objects(probs, labels, None if instances == "auto" else instances)
    return writer.write(path, image, probs, labels, objects)


def _predict_blocks(predictor: Predictor, writer: PredictionWriter, path: Path, block: int, halo: int, fill: bool,
                    progress: bool) -> Path:
    """Bounded-memory prediction of one TIFF, block by block (see :func:`predict`); returns the label file."""
    def region_labels(region: np.ndarray) -> np.ndarray:
        return predictor.labels(predictor.predict_proba(region, path), fill)

    return writer.write_blocks(path, region_labels, block, halo,
                               progress=_progress_bar(path.name, "block") if progress else None)


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
    block, not on the image. Probability maps, overlays and instances are not written in this mode.

    Returns:
        The label files written, in input order.

    Raises:
        DataError: missing or unreadable inputs, inputs sharing a file stem, or more than 65535 objects in an
            instance image.
        CheckpointError: a missing or invalid checkpoint.
    """
    predictor = Predictor.from_checkpoint(checkpoint, device=device, min_size=min_size, **options)
    files = collect_inputs(inputs)
    writer = PredictionWriter(output, predictor.num_classes, overlays=overlays, probabilities=probabilities)
    written = []
    for path in tqdm(files, desc="predict", unit="image", disable=None if progress else True):
        if block is not None and path.suffix.lower() in TIFF_SUFFIXES:
            written.append(_predict_blocks(predictor, writer, path, block, halo, fill, progress))
        else:
            written.append(_predict_image(predictor, writer, path, fill, instances, progress))
    log.info("wrote %d label image(s) to %s", len(written), writer.folder)
    return written
