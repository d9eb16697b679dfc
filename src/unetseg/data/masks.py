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
    """The distinct values of a mask given as (H, W) or grey-as-RGB (H, W, C).

    Raises:
        DataError: a colour mask, or values that are not whole numbers (see :func:`check_values`).
    """
    values = np.unique(single_channel(mask, path))
    check_values(values, path)
    return values


def check_values(values: np.ndarray, path: str | os.PathLike = "<array>") -> None:
    """Check that a mask's distinct ``values`` are class indices: whole numbers (integers, booleans, or
    floating-point numbers without a fraction).

    Raises:
        DataError: naming ``path`` and the first bad values.
    """
    if values.dtype.kind in "biu":
        return
    if values.dtype.kind != "f":
        raise DataError(f"{path}: a mask of {values.dtype}; expected class indices 0, 1, ... (whole numbers)")
    bad = values[~np.isfinite(values) | (values != np.round(values))]
    if bad.size:
        raise DataError(f"{path}: mask values {bad[:5].tolist()} are not whole numbers; expected class indices "
                        "0, 1, ...: save the mask as an integer image (e.g. 8-bit PNG) of class indices")


def missing_classes(values: Iterable[int], ignore_index: int | None = None) -> list[tuple[int, int]]:
    """The classes between 1 and the largest value that no mask holds (``ignore_index`` left out), as runs
    ``(first, last)``, for masks whose class count is detected as largest value + 1 (none for binary {0,1} or
    {0,255} masks). Cheap for any values: its cost grows with the number of distinct values, not their size.

    A gap usually means a stray value (a pixel of 5 in {0,1} masks would make a 6-class model: ``[(2, 4)]``).
    """
    present = {int(v) for v in values if ignore_index is None or int(v) != ignore_index}
    if not present or present <= {0, 1} or present <= {0, 255}:
        return []
    ordered = sorted(present | {0})
    return [(a + 1, b - 1) for a, b in zip(ordered, ordered[1:]) if a >= 0 and b > a + 1]


def single_channel(mask: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
    """Return an (H, W) mask; a 3-channel mask is accepted only when its colour channels are equal.

    Raises:
        DataError: a mask that is not (H, W) or (H, W, C), or a colour mask.
    """
    if mask.ndim == 2:
        return mask
    if mask.ndim != 3 or mask.shape[2] == 0:
        raise DataError(f"{path}: a mask of shape {mask.shape}; expected a 2-D (H, W) image of class indices")
    colour = mask[:, :, :3] if mask.shape[2] >= 3 else mask[:, :, :1]
    if not (colour == colour[:, :, :1]).all():
        raise DataError(f"{path}: colour mask with different R, G, B values; expected a grey index or binary mask; "
                        "for colour-coded classes pass a colour map (--colormap colours.yaml, see docs/data.md)")
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
            "expected binary masks ({0,255} or {0,1}) or class indices 0..K-1; if 255 marks pixels that are not "
            "annotated, pass --ignore-index 255"
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
    check_values(values, path)
    if num_classes == 2 and ignore_index is None and set(values.tolist()) <= {0, 255}:
        mask = (mask == 255)
    else:
        outside = (values < 0) | (values >= num_classes)
        if ignore_index is not None:
            outside &= values != ignore_index
        bad = [int(v) for v in values[outside]]
        if bad:
            raise DataError(_outside_message(path, bad, num_classes))
    return mask.astype(np.uint8 if num_classes <= 256 else np.int32)


def _outside_message(path: str | os.PathLike, bad: list[int], num_classes: int) -> str:
    """The error for mask values ``bad`` outside ``num_classes`` classes: what was expected and what to do."""
    expected = f"expected 0..{num_classes - 1}" + (", or {0,255} for binary masks" if num_classes == 2 else "")
    todo = (f"fix the mask, or pass --num-classes {max(bad) + 1} if there are more classes" if max(bad) >= num_classes
            else "fix the mask: class indices are 0 or more")
    return f"{path}: mask values {bad[:8]} are outside the {num_classes} declared classes ({expected}): {todo}"


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
