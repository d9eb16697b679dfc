"""The pictures of one evaluated image in the HTML report: the image, the truth, the prediction and an error map,
each a small picture inlined as a ``data:`` URI.

The error map is the image (dimmed, smoothed and posterised: :func:`background`) with the correct foreground in
light grey, the false positives (predicted foreground on true background) in :data:`ERROR_COLOURS`
``false positive``, the false negatives (true foreground predicted as background) in ``false negative`` and, with
several classes, foreground of the wrong class in ``wrong class``; pixels the truth leaves unannotated (its
``ignore_index``, or any value that is not a class) stay as in the image. With instances, merged and split objects are outlined
(:func:`merged_and_split`).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ...inference.outputs import PALETTE, colour_objects, display_image

#: colours of the error map (Okabe and Ito's colour-blind-safe palette) and of its legend
ERROR_COLOURS = {
    "correct foreground": (205, 205, 205),
    "false positive": (213, 94, 0),
    "false negative": (0, 114, 178),
    "wrong class": (240, 228, 66),
    "merged object": (204, 121, 167),
    "split object": (86, 180, 233),
}
#: the pictures of one image, in the order the report shows them
PICTURE_KINDS = ("image", "truth", "prediction", "errors")


@dataclass
class ReportImage:
    """One evaluated image.

    Attributes:
        name: the name in the metrics report (the file stem, or the dataset's sample name).
        image: the input image, (H, W) or (H, W, C).
        truth: the true class indices (H, W); another value (the ignore index) marks unannotated pixels.
        pred: the predicted class indices (H, W).
        true_objects, pred_objects: instance labels (H, W), 0 = background, when objects are evaluated.
    """

    name: str
    image: np.ndarray
    truth: np.ndarray
    pred: np.ndarray
    true_objects: np.ndarray | None = None
    pred_objects: np.ndarray | None = None


@dataclass
class PictureSet:
    """The inlined pictures of one image (:data:`PICTURE_KINDS` order), their size in pixels, and the merged and
    split objects counted for the per-image table (with instances)."""

    uris: list[str]
    width: int
    height: int
    counts: dict[str, int] = field(default_factory=dict)


def _areas(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The pixel count of each of the object ``ids`` (all present) in the flat label array ``labels``."""
    values, counts = np.unique(labels, return_counts=True)
    return counts[np.searchsorted(values, ids)]


def _overlaps(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, ...]:
    """(predicted id, true id, shared pixels, pixels of the predicted object, pixels of the true object) of every
    pair of overlapping objects."""
    pred, true = np.asarray(pred, np.int64).ravel(), np.asarray(true, np.int64).ravel()
    both = (pred > 0) & (true > 0)
    (p, t), shared = np.unique(np.stack([pred[both], true[both]]), axis=1, return_counts=True)
    return p, t, shared, _areas(pred, p), _areas(true, t)


def merged_and_split(pred_objects: np.ndarray, true_objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The merged and the split objects of a prediction.

    A predicted object is *merged* when it covers more than half of each of two or more true objects; a true object
    is *split* when two or more predicted objects lie mostly (more than half of their pixels) inside it.

    Returns:
        (the ids of the merged predicted objects, the ids of the split true objects), sorted.
    """
    p, t, shared, pred_area, true_area = _overlaps(pred_objects, true_objects)
    merged = np.unique(p[2 * shared > true_area], return_counts=True)  # covers more than half of the true object
    split = np.unique(t[2 * shared > pred_area], return_counts=True)  # lies mostly inside the true object
    return merged[0][merged[1] >= 2], split[0][split[1] >= 2]


def label_picture(labels: np.ndarray, objects: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 picture of class indices (classes 1, 2, ... in the overlay palette, background black), or of
    instance labels, every object in its own colour (touching objects in different ones)."""
    if objects is not None:
        return colour_objects(objects)
    colours = np.concatenate([np.zeros((1, 3), np.uint8), PALETTE])
    return colours[np.where(labels > 0, (np.asarray(labels, np.int64) - 1) % len(PALETTE) + 1, 0)]


def _outline(mask: np.ndarray, thickness: int) -> np.ndarray:
    """The inner boundary of the objects of the bool ``mask``, ``thickness`` pixels wide."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, iterations=thickness, border_value=1)


def background(image: np.ndarray) -> np.ndarray:
    """The image under the error map: float32 RGB, dimmed, smoothed (a Gaussian of 1 pixel) and in steps of 8
    grey values, which keeps the shapes and lets the picture compress to a few kilobytes."""
    from scipy import ndimage

    dimmed = ndimage.gaussian_filter(display_image(image).astype(np.float32) * 0.45, (1, 1, 0))
    return np.floor(dimmed / 8) * 8


def error_map(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, unannotated: np.ndarray | None = None,
              merged: np.ndarray | None = None, split: np.ndarray | None = None, thickness: int = 1) -> np.ndarray:
    """The error map of one image (see the module docstring) as RGB uint8.

    Args:
        image: the input image, (H, W) or (H, W, C).
        truth, pred: true and predicted class indices (H, W).
        unannotated: bool mask (H, W) of the pixels the truth leaves unannotated, left as in the image.
        merged, split: bool masks (H, W) of the merged predicted objects and the split true objects, outlined.
        thickness: the width of those outlines in pixels.
    """
    rgb = background(image)
    annotated = ~unannotated if unannotated is not None else np.ones(truth.shape, bool)
    kinds = {"correct foreground": (truth == pred) & (truth > 0),
             "false positive": (pred > 0) & (truth == 0),
             "false negative": (truth > 0) & (pred == 0),
             "wrong class": (truth > 0) & (pred > 0) & (truth != pred)}
    for kind, where in kinds.items():
        rgb[where & annotated] = ERROR_COLOURS[kind]
    for kind, mask in (("merged object", merged), ("split object", split)):
        if mask is not None and mask.any():
            rgb[_outline(mask, thickness)] = ERROR_COLOURS[kind]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _fit(width: int, height: int, size: int) -> tuple[int, int]:
    """The size of a picture of ``width`` x ``height`` shrunk to fit ``size`` x ``size`` (never enlarged)."""
    scale = min(1.0, size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def data_uri(rgb: np.ndarray, size: int, lossy: bool = False) -> str:
    """The RGB uint8 picture ``rgb`` shrunk to fit ``size`` pixels (box filter) as a WebP ``data:`` URI: lossy
    (quality 65) for a photograph-like image, lossless for label colours and error maps."""
    picture = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    fitted = _fit(picture.width, picture.height, size)
    if fitted != picture.size:
        picture = picture.resize(fitted, Image.Resampling.BOX)
    buffer = io.BytesIO()
    if lossy:
        picture.save(buffer, format="WEBP", quality=65, method=2)
    else:  # the least effort that still compresses label colours and error maps to about a kilobyte or five
        picture.save(buffer, format="WEBP", lossless=True, quality=0, method=2)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def picture_set(item: ReportImage, num_classes: int | None, ignore_index: int | None = None, size: int = 256
                ) -> PictureSet:
    """The four pictures of ``item`` (:data:`PICTURE_KINDS`), each fitted to ``size`` pixels, and with objects the
    counts ``merged`` and ``split`` (:func:`merged_and_split`). True pixels equal to ``ignore_index``, or not below
    ``num_classes`` (when known), are unannotated.

    Raises:
        ValueError: the truth, the prediction or the objects differ in size from the image.
    """
    height, width = item.truth.shape
    for what, array in (("image", item.image), ("prediction", item.pred), ("true objects", item.true_objects),
                        ("predicted objects", item.pred_objects)):
        if array is not None and array.shape[:2] != (height, width):
            raise ValueError(f"{item.name}: the {what} is {array.shape[1]}x{array.shape[0]}, the truth "
                             f"{width}x{height} (width x height)")
    merged = split = None
    counts: dict[str, int] = {}
    if item.true_objects is not None and item.pred_objects is not None:
        merged_ids, split_ids = merged_and_split(item.pred_objects, item.true_objects)
        counts = {"merged": int(merged_ids.size), "split": int(split_ids.size)}
        merged = np.isin(item.pred_objects, merged_ids) if merged_ids.size else None
        split = np.isin(item.true_objects, split_ids) if split_ids.size else None
    thickness = max(2, round(2 * max(width, height) / size))  # outlines stay visible once the picture is shrunk
    unannotated = np.zeros(item.truth.shape, bool) if num_classes is None else item.truth >= num_classes
    if ignore_index is not None:
        unannotated |= item.truth == ignore_index
    errors = error_map(item.image, item.truth, item.pred, unannotated, merged, split, thickness)
    uris = [data_uri(display_image(item.image), size, lossy=True),
            data_uri(label_picture(np.where(unannotated, 0, item.truth), item.true_objects), size),
            data_uri(label_picture(item.pred, item.pred_objects), size),
            data_uri(errors, size)]
    fitted = _fit(width, height, size)
    return PictureSet(uris, fitted[0], fitted[1], counts)
