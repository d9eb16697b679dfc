"""Masks to class-index label images: binary {0,255} or {0,1} masks and multi-class index masks."""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from .io import DataError

#: The label value meaning "ignore" (void, boundary, not annotated) in the layouts that have one (voc, cityscapes,
#: nnU-Net's "ignore" label); it is not a class.
IGNORE = 255


def mask_values(mask: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
    """The distinct values of a mask given as (H, W) or grey-as-RGB (H, W, C); DataError for colour masks."""
    return np.unique(single_channel(mask, path))


def single_channel(mask: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
    """Return an (H, W) mask; a 3-channel mask is accepted only when its colour channels are equal."""
    if mask.ndim == 2:
        return mask
    colour = mask[:, :, :3] if mask.shape[2] >= 3 else mask[:, :, :1]
    if not (colour == colour[:, :, :1]).all():
        raise DataError(f"{path}: colour mask with different R, G, B values; expected a grey index or binary mask")
    return colour[:, :, 0]


def default_class_names(num_classes: int) -> list[str]:
    """``["background", "foreground"]`` for two classes, ``["class0", "class1", ...]`` otherwise."""
    return ["background", "foreground"] if num_classes == 2 else [f"class{i}" for i in range(num_classes)]


def detect_num_classes(values_by_file: dict[str, Iterable[int]], ignore_index: int | None = None) -> int:
    """Number of classes implied by the masks' values (``ignore_index`` left out): 2 for {0,1} or {0,255}
    masks, else max value + 1.

    Raises:
        DataError: a value of 255 mixed with other non-binary values (names the file): declare ``num_classes``.
    """
    union = set()
    for values in values_by_file.values():
        union.update(int(v) for v in values if ignore_index is None or int(v) != ignore_index)
    if not union:
        return 2
    if union <= {0, 1} or union <= {0, 255}:
        return 2
    if 255 in union:
        offender = next(f for f, v in values_by_file.items() if 255 in set(int(x) for x in v))
        raise DataError(
            f"{offender}: mask value 255 together with other values {sorted(union - {255})[:8]} in the dataset; "
            "expected binary masks ({0,255} or {0,1}) or class indices 0..K-1"
        )
    return max(union) + 1


def mask_to_labels(mask: np.ndarray, num_classes: int, path: str | os.PathLike = "<array>",
                   ignore_index: int | None = None) -> np.ndarray:
    """Convert a mask to class indices 0..num_classes-1 (uint8 for fewer than 256 classes, else int32).

    With ``num_classes == 2`` and no ``ignore_index`` a {0,255} mask is mapped to {0,1}. Pixels equal to
    ``ignore_index`` (e.g. 255 for "not annotated") are kept as they are.

    Raises:
        DataError: values outside the declared classes (names ``path``, the values and the expected range).
    """
    mask = single_channel(mask, path)
    values = np.unique(mask)
    if num_classes == 2 and ignore_index is None and set(values.tolist()) <= {0, 255}:
        mask = (mask == 255)
    else:
        outside = (values < 0) | (values >= num_classes)
        if ignore_index is not None:
            outside &= values != ignore_index
        bad = values[outside]
        if bad.size:
            raise DataError(
                f"{path}: mask values {bad[:8].tolist()} are outside the {num_classes} declared classes "
                f"(expected 0..{num_classes - 1}" + (", or {0,255} for binary masks)" if num_classes == 2 else ")")
            )
    return mask.astype(np.uint8 if num_classes <= 256 else np.int32)


def touching_borders(instances: np.ndarray) -> np.ndarray:
    """Pixels of an object that have a pixel of a *different* object among their 8 neighbours.

    Setting them to background separates touching objects by a gap of about two pixels, so that a network can
    learn the gap (and connected components of its prediction split the objects), as the cell borders of the U-Net
    paper's images do. Borders with the background are not marked.

    Args:
        instances: (H, W) integer instance labels, 0 = background.

    Returns:
        (H, W) bool mask.
    """
    from scipy import ndimage

    labels = instances.astype(np.int64)
    footprint = np.ones((3, 3), bool)
    higher = ndimage.maximum_filter(labels, footprint=footprint, mode="nearest") > labels
    big = int(labels.max()) + 1  # stands for background in the minimum (a huge sentinel overflows in scipy)
    lower = ndimage.minimum_filter(np.where(labels == 0, big, labels), footprint=footprint, mode="nearest") < labels
    return (labels > 0) & (higher | lower)
