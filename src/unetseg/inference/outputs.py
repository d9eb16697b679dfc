"""Prediction outputs: which files are written for an input image, their names, and how each array is stored.

Every file ``unetseg predict`` writes goes through :class:`PredictionWriter` (one call per input image). The label
images are written in one of :data:`OUTPUT_FORMATS` (``--format``): ``png`` (the default), ``tif`` or ``ome-zarr``.

====================  ================================  ===========================================================
output                file                              stored as
====================  ================================  ===========================================================
labels                ``<stem>.png``, ``<stem>.tif``    0/255 for binary models, else class indices (uint8 up to
                                                        256 classes, uint16 beyond); TIFF: zlib-compressed
instances             ``<stem>_instances.png``,         instance labels, 0 = background: uint16, or uint32 above
                      ``<stem>_instances.tif``          65535 objects (always as ``_instances.tif`` then: a PNG
                                                        cannot hold 32 bits; logged)
labels, OME-Zarr      ``<stem>.ome.zarr/``              an OME-Zarr image group (NGFF as ome-zarr-py writes it) of
                                                        the input image (``yx`` or ``cyx``) with its label images
                                                        ``labels/classes`` (class indices, 0 = background, the class
                                                        names as properties) and ``labels/instances``
ROIs                  ``<stem>_rois.zip``               an ImageJ/Fiji ROI set: one polygon per object (its outer
                                                        contour), named by its label
probabilities         ``<stem>_prob.tif``               float16 class probabilities, a page per class, zlib-compressed
overlay               ``<stem>_overlay.png``            RGB uint8: the image with every class blended in its colour
                                                        and every object outlined in its own (the instances when
                                                        they are computed, else each class's connected regions)
labels, block mode    ``<stem>.tif``                    tiled uncompressed TIFF, values as for the labels PNG
====================  ================================  ===========================================================

The encoders (:func:`~unetseg.data.io.write_png`, :func:`~unetseg.data.io.write_tiff`, :func:`write_rois`,
:func:`write_ome_zarr` and, for block mode, :func:`~unetseg.inference.bigimage.predict_big_tiff`) write each file
or folder atomically. :func:`planned_outputs` lists the files of one input before anything is written, so that a
caller can refuse to overwrite earlier outputs (see :func:`unetseg.inference.files.predict`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import DataError, image_stem, to_channels, write_png, write_tiff
from ..data.masks import default_class_names
from ..fileio import TEMPORARY_PATTERN, atomic_path, current_umask
from .bigimage import predict_big_tiff

__all__ = ["OBJECT_PALETTE", "OUTPUT_FORMATS", "OUTPUT_SUFFIXES", "PALETTE", "PredictionWriter",
           "atomic_directory", "class_regions", "colour_objects", "display_image", "instance_image",
           "is_directory_output", "label_dtype", "label_image", "object_outline", "outline_objects", "output_path",
           "overlay", "planned_outputs", "possible_outputs", "probability_image", "remove_stale_directories",
           "require_ome_zarr", "roi_set", "write_ome_zarr", "write_rois"]

log = logging.getLogger("unetseg")

#: label image formats of ``unetseg predict --format``
OUTPUT_FORMATS = ("png", "tif", "ome-zarr")
# File name of each output: <stem> + suffix (the png format's; FORMAT_SUFFIXES has the other formats' changes).
OUTPUT_SUFFIXES = {
    "labels": ".png",
    "instances": "_instances.png",
    "probabilities": "_prob.tif",
    "overlay": "_overlay.png",
    "blocks": ".tif",
    "rois": "_rois.zip",
}
FORMAT_SUFFIXES: dict[str, dict[str, str]] = {
    "png": {},
    "tif": {"labels": ".tif", "instances": "_instances.tif"},
    "ome-zarr": {"labels": ".ome.zarr", "instances": ".ome.zarr"},  # one folder: the image and its label images
}
#: where instance labels go that a PNG cannot hold (more than :data:`MAX_INSTANCES` objects)
WIDE_INSTANCES_SUFFIX = "_instances.tif"
#: an OME-Zarr output is a folder, not a file
DIRECTORY_SUFFIX = ".ome.zarr"
MAX_INSTANCES = int(np.iinfo(np.uint16).max)
#: the label images of an OME-Zarr output (``labels/<name>``)
CLASS_LABELS, INSTANCE_LABELS = "classes", "instances"
#: OME-Zarr: coarser pyramid levels (factors 2, 4, ...) are added while the smaller side stays >= this
PYRAMID_MIN_SIDE = 256
OME_INSTALL_HINT = "pip install unetseg[ome]"

# Distinct colours for classes 1, 2, ... (class 0 = background is left uncoloured).
PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], dtype=np.uint8
)
# Colours of the object outlines of overlays (and of the objects in the HTML report): bright, apart from one another.
OBJECT_PALETTE = np.array(
    [[255, 255, 0], [0, 255, 255], [255, 0, 255], [255, 140, 0], [0, 255, 0], [30, 144, 255], [255, 255, 255],
     [255, 105, 180], [173, 255, 47], [148, 103, 255]], dtype=np.uint8
)


def output_path(folder: str | os.PathLike, stem: str, kind: str, format: str = "png") -> Path:
    """The file of output ``kind`` (a key of :data:`OUTPUT_SUFFIXES`) for the input with file stem ``stem``, when
    label images are written as ``format`` (one of :data:`OUTPUT_FORMATS`).

    Raises:
        ValueError: an unknown ``kind`` or ``format`` (the message lists the known ones).
    """
    if kind not in OUTPUT_SUFFIXES:
        raise ValueError(f"unknown output kind {kind!r}; expected one of {', '.join(OUTPUT_SUFFIXES)}")
    if format not in FORMAT_SUFFIXES:
        raise ValueError(f"unknown output format {format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
    return Path(folder) / f"{stem}{FORMAT_SUFFIXES[format].get(kind, OUTPUT_SUFFIXES[kind])}"


def planned_outputs(folder: str | os.PathLike, source: str | os.PathLike, overlays: bool = False,
                    probabilities: bool = False, instances: bool = False, blocks: bool = False,
                    format: str = "png", rois: bool = False) -> list[Path]:
    """The files written into ``folder`` for the input file ``source``, in writing order.

    Args:
        folder: the output folder.
        source: the input file (its stem names the outputs).
        overlays, probabilities, instances, rois: whether those outputs are written.
        blocks: ``source`` is predicted in block mode: only ``<stem>.tif`` is written then.
        format: the label image format (:data:`OUTPUT_FORMATS`); ``ome-zarr`` writes the labels and the instances
            into one folder ``<stem>.ome.zarr``.
    """
    stem = image_stem(source)
    if blocks:
        return [output_path(folder, stem, "blocks")]
    separate_instances = instances and format != "ome-zarr"
    kinds = [kind for kind, wanted in (("instances", separate_instances), ("probabilities", probabilities),
                                       ("labels", True), ("rois", rois), ("overlay", overlays)) if wanted]
    if format == "ome-zarr":  # the probabilities before the image folder, as the writer goes
        kinds = [kind for kind in ("probabilities", "labels", "rois", "overlay") if kind in kinds]
    return [output_path(folder, stem, kind, format) for kind in kinds]


def possible_outputs(folder: str | os.PathLike, source: str | os.PathLike, instances: bool = False,
                     format: str = "png", blocks: bool = False) -> list[Path]:
    """Files written for ``source`` only in some cases, besides :func:`planned_outputs`: ``<stem>_instances.tif``
    for a PNG instance image of more than 65535 objects."""
    if blocks or not instances or format != "png":
        return []
    return [Path(folder) / f"{image_stem(source)}{WIDE_INSTANCES_SUFFIX}"]


def is_directory_output(path: str | os.PathLike) -> bool:
    """Whether the output ``path`` is a folder (an OME-Zarr image) rather than a file."""
    return str(path).endswith(DIRECTORY_SUFFIX)


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
    """The array stored for instance labels (0 = background): uint16, or uint32 for more than 65535 objects.

    Raises:
        DataError: negative labels, or more objects than uint32 holds (names ``source``, the image they were found
            in).
    """
    count = int(objects.max(initial=0))
    if int(objects.min(initial=0)) < 0 or count > np.iinfo(np.uint32).max:
        raise DataError(f"{source}: instance labels must be in 0..{np.iinfo(np.uint32).max}, got "
                        f"{int(objects.min(initial=0))}..{count}")
    return objects.astype(np.uint16 if count <= MAX_INSTANCES else np.uint32)


def probability_image(probs: np.ndarray) -> np.ndarray:
    """The array stored for class probabilities (K, H, W): float16, written as K TIFF pages."""
    return probs.astype(np.float16)


def _stretched(image: np.ndarray) -> np.ndarray:
    """``image`` as float32 RGB in [0, 255], contrast-stretched to its 1-99.8 percentiles (of more than four
    channels, the first is shown)."""
    image = np.asarray(image)
    rgb = to_channels(image[..., 0] if image.ndim == 3 and image.shape[2] > 4 else image, 3).astype(np.float32)
    lo, hi = np.percentile(rgb, [1.0, 99.8])
    return np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1) * 255


def display_image(image: np.ndarray) -> np.ndarray:
    """``image`` ((H, W) or (H, W, C)) as an RGB uint8 picture, contrast-stretched to its 1-99.8 percentiles."""
    return np.rint(_stretched(image)).astype(np.uint8)


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45, objects: np.ndarray | None = None
            ) -> np.ndarray:
    """An RGB uint8 picture of ``image`` (contrast-stretched to its 1-99.8 percentiles) with every non-background
    class blended in its palette colour and, with ``objects`` (instance labels, 0 = background), the outline of
    every object in its own colour (:func:`outline_objects`). ``image`` is (H, W) or (H, W, C); ``labels`` and
    ``objects`` are (H, W)."""
    rgb = _stretched(image)
    colours = PALETTE[(np.maximum(labels, 1) - 1) % len(PALETTE)].astype(np.float32)
    mask = (labels > 0)[..., None]
    blended = np.clip(np.rint(np.where(mask, (1 - alpha) * rgb + alpha * colours, rgb)), 0, 255).astype(np.uint8)
    return blended if objects is None else outline_objects(blended, objects)


def class_regions(labels: np.ndarray) -> np.ndarray:
    """Instance labels of the connected regions (4-connected) of each non-background class of ``labels``."""
    from skimage.measure import label

    return label(np.asarray(labels), background=0, connectivity=1)


def _touching_pairs(compact: np.ndarray) -> np.ndarray:
    """(n, 2) distinct pairs (lower, higher) of the object indices of ``compact`` that touch (8-connected)."""
    pairs = [np.zeros((0, 2), np.int64)]
    for a, b in ((compact[:, :-1], compact[:, 1:]), (compact[:-1], compact[1:]),
                 (compact[:-1, :-1], compact[1:, 1:]), (compact[:-1, 1:], compact[1:, :-1])):
        keep = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.stack([np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])], axis=1))
    return np.unique(np.concatenate(pairs), axis=0)


def _colour_choice(labels: np.ndarray, pairs: np.ndarray, k: int) -> np.ndarray:
    """The palette index of each object (index 0: the background): in label order, each takes the first of the
    ``k`` colours, from ``(label - 1) mod k`` on, that no touching object of a lower label took."""
    earlier: list[list[int]] = [[] for _ in range(len(labels))]
    for lo, hi in pairs.tolist():
        earlier[hi].append(lo)
    choice = np.zeros(len(labels), np.int64)
    for i in range(1, len(labels)):
        taken = {int(choice[j]) for j in earlier[i]}
        start = int(labels[i] - 1) % k
        choice[i] = next(((start + s) % k for s in range(k) if (start + s) % k not in taken), start)
    return choice


def colour_objects(objects: np.ndarray, palette: np.ndarray = OBJECT_PALETTE) -> np.ndarray:
    """An RGB uint8 picture of the instance labels ``objects`` (H, W) (0 = background, black): every object in a
    colour of ``palette``; objects that touch (8-connected) get different colours whenever the palette has one that
    none of their touching neighbours of lower label took."""
    objects = np.asarray(objects)
    ids, compact = np.unique(objects, return_inverse=True)
    compact = compact.reshape(objects.shape) + (0 if ids[:1].tolist() == [0] else 1)
    labels = np.concatenate([[0], ids[ids != 0]])
    choice = _colour_choice(labels, _touching_pairs(compact), len(palette))
    table = np.asarray(palette, np.uint8)[choice]
    table[0] = 0
    return table[compact]


def outline_objects(rgb: np.ndarray, objects: np.ndarray, palette: np.ndarray = OBJECT_PALETTE) -> np.ndarray:
    """A copy of the RGB uint8 picture ``rgb`` (H, W, 3) with the inner boundary pixels of every object of
    ``objects`` (instance labels (H, W), 0 = background; ``skimage.segmentation.find_boundaries``) painted in the
    object's colour of :func:`colour_objects`."""
    from skimage.segmentation import find_boundaries

    objects = np.asarray(objects)
    edge = find_boundaries(objects, mode="inner") & (objects != 0)
    out = np.array(rgb, dtype=np.uint8, copy=True)
    out[edge] = colour_objects(objects, palette)[edge]
    return out


def _area(polygon: np.ndarray) -> float:
    """The area enclosed by a closed polygon of (N, 2) vertices (shoelace formula)."""
    y, x = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def object_outline(mask: np.ndarray) -> np.ndarray:
    """The outer contour of a boolean (h, w) mask as (N, 2) polygon vertices (x, y) in ImageJ's coordinates, where
    pixel (row i, column j) covers [j, j + 1) x [i, i + 1): the iso-line at 0.5 between object and background pixel
    centres (``skimage.measure.find_contours`` on the mask padded by one pixel, diagonal neighbours joined). A mask
    in several pieces gives the contour of the largest; holes are not cut out."""
    from skimage.measure import find_contours

    contours = find_contours(np.pad(mask, 1).astype(np.float32), 0.5, fully_connected="high")
    outer = max(contours, key=_area)[:-1]  # closed: the last vertex repeats the first
    return outer[:, ::-1] - 0.5  # (row, column) -> (x, y); -1 for the padding, +0.5 for the pixel centre


def roi_set(objects: np.ndarray) -> list[Any]:
    """One ImageJ polygon ROI (a ``roifile.ImagejRoi`` with sub-pixel coordinates) per object of the instance label
    image ``objects`` (0 = background), in label order, each named by its label."""
    from roifile import ROI_TYPE, ImagejRoi
    from scipy import ndimage

    rois = []
    for label, box in enumerate(ndimage.find_objects(np.asarray(objects, np.int64)), start=1):
        if box is None:  # a label without pixels
            continue
        points = object_outline(objects[box] == label) + np.array([box[1].start, box[0].start])
        roi = ImagejRoi.frompoints(points, name=str(label))
        roi.roitype = ROI_TYPE.POLYGON
        rois.append(roi)
    return rois


def write_rois(path: str | os.PathLike, objects: np.ndarray) -> int:
    """Write the ROI set of ``objects`` (:func:`roi_set`) as an ImageJ/Fiji ROI zip (``<label>.roi`` entries, the
    format of the ROI Manager's "Save"), atomically. Returns the number of ROIs."""
    rois = roi_set(objects)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for roi in rois:
            archive.writestr(f"{roi.name}.roi", roi.tobytes())
    return len(rois)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary folder next to ``path`` (``.NAME.XXXXXXXX.tmp``); on success it takes the place of
    ``path`` (an existing folder there is replaced), on error it is removed. The folder gets the mode ``0o777``
    less the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        if path.is_dir() and not path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            os.replace(path, old)  # onto the empty folder just made; removed below or as stale at the next start
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_directories(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary OME-Zarr folders an interrupted :func:`atomic_directory` left in ``folder``
    (``.NAME.ome.zarr.XXXXXXXX.tmp``); returns them, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        match = TEMPORARY_PATTERN.match(path.name)
        if match and is_directory_output(match["name"]) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def require_ome_zarr() -> Any:
    """The ``ome_zarr.writer`` module.

    Raises:
        DataError: ome-zarr is not installed (the message says how to install it).
    """
    try:
        with warnings.catch_warnings():  # its module defaults build a deprecated Scaler
            warnings.simplefilter("ignore", DeprecationWarning)
            from ome_zarr import writer
    except ImportError as err:
        raise DataError(f"--format ome-zarr needs the ome-zarr package: {OME_INSTALL_HINT} ({err})") from err
    return writer


def _pyramid(shape: Sequence[int]) -> tuple[int, ...]:
    """Downsampling factors 2, 4, ... while the smaller side stays at least :data:`PYRAMID_MIN_SIDE`."""
    factors, factor = [], 2
    while min(shape) // factor >= PYRAMID_MIN_SIDE:
        factors.append(factor)
        factor *= 2
    return tuple(factors)


def _label_metadata(name: str, class_names: Sequence[str]) -> dict[str, Any]:
    """The ``image-label`` metadata of the label image ``name``: its source image, and for the class labels a
    colour (:data:`PALETTE`) and the class name of every foreground class."""
    meta: dict[str, Any] = {"source": {"image": "../../"}}
    if name == CLASS_LABELS:
        values = range(1, len(class_names))
        meta["colors"] = [{"label-value": v, "rgba": [*PALETTE[(v - 1) % len(PALETTE)].tolist(), 255]}
                          for v in values]
        meta["properties"] = [{"label-value": v, "class": class_names[v]} for v in values]
    return meta


def write_ome_zarr(path: str | os.PathLike, image: np.ndarray, labels: Mapping[str, np.ndarray],
                   class_names: Sequence[str] = ()) -> Path:
    """Write ``image`` with its label images as the OME-Zarr image group ``path``, atomically (built in a
    temporary folder, then renamed into place; an existing folder is replaced).

    The image ((H, W) or (H, W, C), stored with axes ``yx`` or ``cyx``) and each label image ((H, W), unsigned
    integers, stored as ``labels/<name>`` with axes ``yx``) are written by ``ome_zarr.writer`` (``write_image``,
    ``write_labels``) with a resolution pyramid for large images, in the NGFF version ome-zarr-py writes. napari
    (napari-ome-zarr) opens the image as an image layer and every label image as a labels layer.

    Args:
        path: the ``.ome.zarr`` folder.
        image: the input image.
        labels: label images by name (e.g. ``{"classes": ..., "instances": ...}``).
        class_names: for the label image :data:`CLASS_LABELS`: the name of each class value (stored as properties).

    The arrays may also be Dask arrays (:mod:`unetseg.inference.dask_blocks`): they are then computed block by
    block by Dask's current scheduler and written chunk by chunk, one chunk per block.

    Raises:
        DataError: ome-zarr is not installed.
    """
    writer = require_ome_zarr()
    import zarr

    data, axes = (image, "yx") if image.ndim == 2 else (np.moveaxis(image, -1, 0), "cyx")
    factors = _pyramid(image.shape[:2])
    with atomic_directory(path) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        writer.write_image(_contiguous(data), root, axes=axes, scale_factors=factors)
        for name, array in labels.items():
            writer.write_labels(_contiguous(array), root, name=name, axes="yx", scaler=None,
                                scale_factors=factors, label_metadata=_label_metadata(name, class_names))
    return Path(path)


def _contiguous(array: Any) -> Any:
    """A NumPy array made C-contiguous; any other array (a lazy Dask array) as it is."""
    return np.ascontiguousarray(array) if isinstance(array, np.ndarray) else array


class PredictionWriter:
    """Writes the prediction files of input images into one folder (created here, with its parents).

    Existing files of the same names are replaced (atomically); callers that must not overwrite check
    :meth:`outputs` and :func:`possible_outputs` first.

    Args:
        folder: the output folder.
        num_classes: classes of the model (2 = binary: labels stored as 0/255, except in OME-Zarr).
        overlays: also write ``<stem>_overlay.png``.
        probabilities: also write ``<stem>_prob.tif``.
        format: the label image format, one of :data:`OUTPUT_FORMATS`.
        rois: write the objects given to :meth:`write` as the ImageJ ROI zip ``<stem>_rois.zip``.
        instance_images: write the objects given to :meth:`write` as an instance label image (False: they only
            feed the ROI zip).
        class_names: the name of each class (OME-Zarr label properties; default ``background``, ``foreground``
            or ``class0``, ``class1``, ...).

    Raises:
        DataError: the folder cannot be created (a file is in the way, no permission, ...), or ``format`` is
            ``ome-zarr`` and ome-zarr is not installed.
        ValueError: an unknown ``format``.
    """

    def __init__(self, folder: str | os.PathLike, num_classes: int, overlays: bool = False,
                 probabilities: bool = False, format: str = "png", rois: bool = False, instance_images: bool = True,
                 class_names: Sequence[str] | None = None) -> None:
        if format not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
        if format == "ome-zarr":
            require_ome_zarr()
        self.folder = Path(folder)
        self.num_classes = num_classes
        self.overlays = overlays
        self.probabilities = probabilities
        self.format = format
        self.rois = rois
        self.instance_images = instance_images
        self.class_names = list(class_names) if class_names else default_class_names(num_classes)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(f"{self.folder}: cannot create the output folder ({err.strerror or err}); expected a "
                            "folder (or a new path) that can be written; choose another --output") from err

    def outputs(self, source: str | os.PathLike, instances: bool = False, blocks: bool = False) -> list[Path]:
        """The files :meth:`write` (``instances``: given objects) or, with ``blocks``, :meth:`write_blocks` writes
        for the input file ``source`` (see :func:`planned_outputs`)."""
        return planned_outputs(self.folder, source, self.overlays, self.probabilities,
                               instances and self.instance_images, blocks, self.format, self.rois and instances)

    def path(self, source: str | os.PathLike, kind: str) -> Path:
        """The output file of ``kind`` (see :data:`OUTPUT_SUFFIXES`) for the input file ``source``."""
        return output_path(self.folder, image_stem(source), kind, self.format)

    def _write_instances(self, source: str | os.PathLike, stored: np.ndarray) -> None:
        """Write the instance image ``stored`` (:func:`instance_image`) in the label format; a PNG that cannot
        hold it (uint32) becomes ``<stem>_instances.tif``."""
        target = self.path(source, "instances")
        if self.format == "png" and stored.dtype == np.uint32:
            target = self.folder / f"{image_stem(source)}{WIDE_INSTANCES_SUFFIX}"
            log.info("%s: %d objects do not fit a 16-bit PNG; their labels are in %s (32-bit TIFF)", source,
                     int(stored.max()), target.name)
            write_tiff(target, stored)
        elif self.format == "png":
            write_png(target, stored)
        else:
            write_tiff(target, stored)

    def write(self, source: str | os.PathLike, image: np.ndarray, probs: np.ndarray, labels: np.ndarray,
              objects: np.ndarray | None = None) -> Path:
        """Write the outputs of one input image.

        Args:
            source: the input file (its stem names the outputs).
            image: the input image, (H, W) or (H, W, C) (for the overlay and the OME-Zarr image).
            probs: class probabilities (K, H, W) (written with ``probabilities``).
            labels: class indices (H, W).
            objects: instance labels (H, W), 0 = background: written as the instance image (unless
                ``instance_images`` is False) and, with ``rois``, as the ROI zip.

        Returns:
            The label file (``<stem>.png``, ``<stem>.tif``) or folder (``<stem>.ome.zarr``).

        Raises:
            DataError: instance labels that are negative or beyond uint32 (nothing of this image is written then).
        """
        stored = instance_image(objects, source) if objects is not None else None
        target = self.path(source, "labels")
        if self.format == "ome-zarr":
            if self.probabilities:
                write_tiff(self.path(source, "probabilities"), probability_image(probs))
            layers = {CLASS_LABELS: labels.astype(label_dtype(self.num_classes))}
            if stored is not None and self.instance_images:
                layers[INSTANCE_LABELS] = stored
            write_ome_zarr(target, image, layers, self.class_names)
        else:
            if stored is not None and self.instance_images:
                self._write_instances(source, stored)
            if self.probabilities:
                write_tiff(self.path(source, "probabilities"), probability_image(probs))
            (write_png if self.format == "png" else write_tiff)(target, label_image(labels, self.num_classes))
        if self.rois and stored is not None:
            write_rois(self.path(source, "rois"), stored)
        if self.overlays:  # outlined: the objects given, else the connected regions of each class
            outlined = objects if objects is not None else class_regions(labels)
            write_png(self.path(source, "overlay"), overlay(image, labels, objects=outlined))
        return target

    def write_blocks(self, source: str | os.PathLike, predict_labels: Callable[[np.ndarray], np.ndarray],
                     block: int, halo: int, progress: Callable[[int, int], None] | None = None,
                     plane: int | None = None) -> Path:
        """Predict the TIFF (or OME-Zarr image) ``source`` block by block with bounded memory and write its labels
        as the tiled TIFF ``<stem>.tif`` (values as in the label PNG); see
        :func:`~unetseg.inference.bigimage.predict_big_tiff`.

        Args:
            source: the input TIFF or OME-Zarr image (its ``plane``, when it has several).
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
                                dtype=label_dtype(self.num_classes), progress=progress, plane=plane)
