"""``unetseg predict``: segment image files with a checkpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tqdm.auto import tqdm

from .data.io import DataError, IMAGE_SUFFIXES, list_images, read_image, write_png, write_tiff
from .inference.outputs import overlay, write_prediction
from .inference.predictor import Predictor

log = logging.getLogger("unetseg")


def _tile_bar(name: str) -> Callable[[int, int], None]:
    """A progress callback showing tiles done and time left for one image."""
    bar: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=name, unit="tile", leave=False)
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


def predict(
    checkpoint: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    overlays: bool = False,
    device: str = "auto",
    progress: bool = False,
    probabilities: bool = False,
    **options: Any,
) -> list[Path]:
    """Write one label PNG per input image into ``output`` (same stem; 0/255 for binary models, class indices
    otherwise) and, with ``overlays``, ``<stem>_overlay.png``; with ``probabilities``, ``<stem>_prob.tif`` (float16,
    one page per class). Output size == input size. ``options`` go to :class:`Predictor` (``tile``, ``overlap``,
    ``blending``, ``tta``, ``batch_size``).

    Returns:
        The label files written, in input order.
    """
    predictor = Predictor.from_checkpoint(checkpoint, device=device, **options)
    files = collect_inputs(inputs)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(files, desc="predict", unit="image", disable=None if progress else True):
        image = read_image(path)
        if predictor.tile is not None and progress:
            predictor.progress = _tile_bar(path.name)
        probs = predictor.predict_proba(image, path)
        labels = probs.argmax(axis=0).astype(np.uint8 if predictor.num_classes <= 256 else np.int32)
        if probabilities:
            write_tiff(out / f"{path.stem}_prob.tif", probs.astype(np.float16))
        target = out / f"{path.stem}.png"
        write_prediction(target, labels, predictor.num_classes)
        if overlays:
            write_png(out / f"{path.stem}_overlay.png", overlay(image, labels))
        written.append(target)
    log.info("wrote %d label image(s) to %s", len(written), out)
    return written
