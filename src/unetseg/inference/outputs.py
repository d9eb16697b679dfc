"""Prediction outputs: which files are written for an input image, their names, and how each array is stored.

Every file ``unetseg predict`` writes goes through :class:`PredictionWriter` (one call per input image):

====================  =========================  ==================================================================
output                file                       stored as
====================  =========================  ==================================================================
labels                ``<stem>.png``             0/255 for binary models, else class indices (uint8 up to 256
                                                 classes, uint16 beyond)
instances             ``<stem>_instances.png``   uint16 instance labels, 0 = background (at most 65535 objects)
probabilities         ``<stem>_prob.tif``        float16 class probabilities, a page per class, zlib-compressed
overlay               ``<stem>_overlay.png``     RGB uint8: the image with every class blended in its colour
labels, block mode    ``<stem>.tif``             tiled uncompressed TIFF, values as for the labels PNG
====================  =========================  ==================================================================

The encoders (:func:`~unetseg.data.io.write_png`, :func:`~unetseg.data.io.write_tiff`, and
:func:`~unetseg.inference.bigimage.predict_big_tiff` for block mode) write each file atomically.
:func:`planned_outputs` lists the files of one input before anything is written, so that a caller can refuse to
overwrite earlier outputs (see :func:`unetseg.inference.files.predict`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..data.io import DataError, to_channels, write_png, write_tiff
from .bigimage import predict_big_tiff

__all__ = ["OUTPUT_SUFFIXES", "PALETTE", "PredictionWriter", "instance_image", "label_dtype", "label_image",
           "output_path", "overlay", "planned_outputs", "probability_image"]

# File name of each output: <stem> + suffix.
OUTPUT_SUFFIXES = {
    "labels": ".png",
    "instances": "_instances.png",
    "probabilities": "_prob.tif",
    "overlay": "_overlay.png",
    "blocks": ".tif",
}
MAX_INSTANCES = int(np.iinfo(np.uint16).max)

# Distinct colours for classes 1, 2, ... (class 0 = background is left uncoloured).
PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], dtype=np.uint8
)


def output_path(folder: str | os.PathLike, stem: str, kind: str) -> Path:
    """The file of output ``kind`` (a key of :data:`OUTPUT_SUFFIXES`) for the input with file stem ``stem``.

    Raises:
        ValueError: an unknown ``kind`` (the message lists the known ones).
    """
    if kind not in OUTPUT_SUFFIXES:
        raise ValueError(f"unknown output kind {kind!r}; expected one of {', '.join(OUTPUT_SUFFIXES)}")
    return Path(folder) / f"{stem}{OUTPUT_SUFFIXES[kind]}"


def planned_outputs(folder: str | os.PathLike, source: str | os.PathLike, overlays: bool = False,
                    probabilities: bool = False, instances: bool = False, blocks: bool = False) -> list[Path]:
    """The files written into ``folder`` for the input file ``source``, in writing order.

    Args:
        folder: the output folder.
        source: the input file (its stem names the outputs).
        overlays, probabilities, instances: whether those outputs are written.
        blocks: ``source`` is predicted in block mode: only ``<stem>.tif`` is written then.
    """
    stem = Path(source).stem
    if blocks:
        return [output_path(folder, stem, "blocks")]
    kinds = [kind for kind, wanted in (("instances", instances), ("probabilities", probabilities),
                                       ("labels", True), ("overlay", overlays)) if wanted]
    return [output_path(folder, stem, kind) for kind in kinds]


def label_dtype(num_classes: int) -> np.dtype:
    """The stored dtype of a class-index image: uint8 up to 256 classes, uint16 beyond."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16)


def label_image(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The array stored for a class-index image: 0/255 (uint8) for a binary model, class indices
    (:func:`label_dtype`) otherwise."""
    if num_classes == 2:
        return (labels > 0).astype(np.uint8) * 255
    return labels.astype(label_dtype(num_classes))


def instance_image(objects: np.ndarray, source: str | os.PathLike = "<array>") -> np.ndarray:
    """The array stored for instance labels (0 = background): uint16.

    Raises:
        DataError: more than 65535 objects (names ``source``, the image they were found in).
    """
    count = int(objects.max(initial=0))
    if count > MAX_INSTANCES:
        raise DataError(f"{source}: {count} objects do not fit a 16-bit instance label image "
                        f"(at most {MAX_INSTANCES})")
    return objects.astype(np.uint16)


def probability_image(probs: np.ndarray) -> np.ndarray:
    """The array stored for class probabilities (K, H, W): float16, written as K TIFF pages."""
    return probs.astype(np.float16)


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB uint8 picture of ``image`` (contrast-stretched to its 1-99.8 percentiles) with every non-background
    class blended in its palette colour. ``image`` is (H, W) or (H, W, C); ``labels`` is (H, W)."""
    rgb = to_channels(image, 3).astype(np.float32)
    lo, hi = np.percentile(rgb, [1.0, 99.8])
    rgb = np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    colours = PALETTE[(np.maximum(labels, 1) - 1) % len(PALETTE)].astype(np.float32)
    mask = (labels > 0)[..., None]
    blended = np.where(mask, (1 - alpha) * rgb + alpha * colours, rgb)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


class PredictionWriter:
    """Writes the prediction files of input images into one folder (created here, with its parents).

    Existing files of the same names are replaced (atomically); callers that must not overwrite check
    :meth:`outputs` first.

    Args:
        folder: the output folder.
        num_classes: classes of the model (2 = binary: labels stored as 0/255).
        overlays: also write ``<stem>_overlay.png``.
        probabilities: also write ``<stem>_prob.tif``.

    Raises:
        DataError: the folder cannot be created (a file is in the way, no permission, ...).
    """

    def __init__(self, folder: str | os.PathLike, num_classes: int, overlays: bool = False,
                 probabilities: bool = False) -> None:
        self.folder = Path(folder)
        self.num_classes = num_classes
        self.overlays = overlays
        self.probabilities = probabilities
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(f"{self.folder}: cannot create the output folder ({err.strerror or err}); expected a "
                            "folder (or a new path) that can be written; choose another --output") from err

    def outputs(self, source: str | os.PathLike, instances: bool = False, blocks: bool = False) -> list[Path]:
        """The files :meth:`write` (``instances``: with objects) or, with ``blocks``, :meth:`write_blocks` writes
        for the input file ``source`` (see :func:`planned_outputs`)."""
        return planned_outputs(self.folder, source, self.overlays, self.probabilities, instances, blocks)

    def path(self, source: str | os.PathLike, kind: str) -> Path:
        """The output file of ``kind`` (see :data:`OUTPUT_SUFFIXES`) for the input file ``source``."""
        return output_path(self.folder, Path(source).stem, kind)

    def write(self, source: str | os.PathLike, image: np.ndarray, probs: np.ndarray, labels: np.ndarray,
              objects: np.ndarray | None = None) -> Path:
        """Write the outputs of one input image.

        Args:
            source: the input file (its stem names the outputs).
            image: the input image, (H, W) or (H, W, C) (for the overlay).
            probs: class probabilities (K, H, W) (written with ``probabilities``).
            labels: class indices (H, W).
            objects: instance labels (H, W), written as ``<stem>_instances.png`` when given.

        Returns:
            The label file ``<stem>.png``.

        Raises:
            DataError: more than 65535 objects (nothing of this image is written then).
        """
        if objects is not None:
            write_png(self.path(source, "instances"), instance_image(objects, source))
        if self.probabilities:
            write_tiff(self.path(source, "probabilities"), probability_image(probs))
        target = self.path(source, "labels")
        write_png(target, label_image(labels, self.num_classes))
        if self.overlays:
            write_png(self.path(source, "overlay"), overlay(image, labels))
        return target

    def write_blocks(self, source: str | os.PathLike, predict_labels: Callable[[np.ndarray], np.ndarray],
                     block: int, halo: int, progress: Callable[[int, int], None] | None = None) -> Path:
        """Predict the TIFF ``source`` block by block with bounded memory and write its labels as the tiled TIFF
        ``<stem>.tif`` (values as in the label PNG); see :func:`~unetseg.inference.bigimage.predict_big_tiff`.

        Args:
            source: the input TIFF.
            predict_labels: class indices (h, w) of a region (h, w[, C]) of the image.
            block: output block side in pixels (a multiple of 256).
            halo: context pixels read around each block.
            progress: called as ``progress(blocks_done, blocks_total)``.

        Returns:
            The label file ``<stem>.tif``.
        """
        def region_labels(region: np.ndarray) -> np.ndarray:
            return label_image(predict_labels(region), self.num_classes)

        return predict_big_tiff(region_labels, source, self.path(source, "blocks"), block, halo=halo,
                                dtype=label_dtype(self.num_classes), progress=progress)
