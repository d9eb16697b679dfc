"""What every layout shares: the :data:`LAYOUTS` registry, the scan result (:class:`Scan`), one sample as read
(:class:`Raw`), and the helpers that check sizes and collect problems. No layout module is imported here.

A layout registers its scan function (see docs/data.md, "Adding a layout")::

    @LAYOUTS.register("voc", priority=20, detect=detect, looks_for="JPEGImages/ + SegmentationClass/",
                      description="Pascal VOC segmentation")
    def scan(root: Path, split: str | None = None) -> Scan: ...

Registration info:

``priority`` (int, required)
    Detection order, lowest first.
``detect`` (``Callable[[Path], bool]``, required)
    Whether a folder has this layout.
``looks_for`` (str, required)
    What ``detect`` looks for, quoted in the error when no layout matches.
``near`` (``Callable[[Path], str | None]``)
    For a folder that has part of the layout (e.g. ``images/`` without ``masks/``): the error message saying what
    is missing, used instead of the list of ``looks_for`` when no layout matches.
``description`` (str)
    One line for listings.
``alpha`` (bool, default True)
    Whether a 2nd/4th image channel is alpha (False: every channel is real, as in nnU-Net).
``instances`` (bool, default False)
    Whether the layout can return instance labels (``load_dataset(..., instances=True)``).
``annotations`` (``Callable[[Path, str | None], dict[str, dict]]``)
    Per sample, how many objects are annotated of how many there are (``{name: {"cells", "annotated", ...}}``),
    for layouts whose truth can be partial; ``unetseg inspect`` reports it.

The scan function takes the dataset folder and, as keyword options, any of ``split``, ``mask_suffix``,
``instances``, ``truth`` (which truth of a layout that has several, e.g. ctc's gold or silver) and
``annotated_regions`` (whether to mark pixels known to be unannotated with the ignore value) that it needs (only
the options it names are passed). It reads no pixel data: it returns a
:class:`Scan` with one reader per sample (or stack), the layout's fixed class count (None: detected from the mask
values), and every problem it found (unpaired or missing files). It raises :class:`DataError` only when nothing can
be read (a missing top folder, an unreadable index file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ...registry import Registry
from ..io import DataError, read_image

T = TypeVar("T")

#: The dataset layouts, by name (listed sorted); entries carry the registration info described above.
LAYOUTS: Registry[Scan] = Registry("layout", sort=True)

#: How many problems an error message lists before "(and N more)".
SHOWN_PROBLEMS = 5


@dataclass(eq=False)
class Raw:
    """One sample as read: ``mask`` is the raw mask (``final`` False) or the finished class labels (``final`` True).

    ``annotated``: an (H, W) bool mask of the pixels that were annotated (the folder layout's ``regions/``); the
    others get the ignore value in the class labels once the mask is converted. None: every pixel is annotated.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    image_path: Path
    mask_path: Path
    instances: np.ndarray | None = None
    final: bool = False
    annotated: np.ndarray | None = None


Reader = Callable[[], "list[Raw]"]


@dataclass
class Scan:
    """What a layout found: one reader per sample (or stack), the layout's fixed class count, and problems."""

    readers: list[Reader] = field(default_factory=list)
    num_classes: int | None = None
    problems: list[str] = field(default_factory=list)


def read_image_and_mask(image_path: Path, mask_path: Path, expected: str) -> tuple[np.ndarray, np.ndarray]:
    """An image and its single-channel mask of the same size.

    Raises:
        DataError: unreadable files, a mask with channels (the message says it ``expected`` ... ), or a size
            mismatch (:func:`check_size`).
    """
    image, mask = read_image(image_path), read_image(mask_path)
    if mask.ndim != 2:
        raise DataError(f"{mask_path}: expected {expected}, got shape {mask.shape}")
    check_size(image, mask, image_path, mask_path)
    return image, mask


def check_size(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_path: Path, what: str = "mask") -> None:
    """Check that a mask (or channel, label, ...) has the (H, W) of its image.

    Raises:
        DataError: naming ``mask_path``, both sizes and ``image_path``.
    """
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(
            f"{mask_path}: {what} size {mask.shape[1]}x{mask.shape[0]} differs from its image {image_path} "
            f"({image.shape[1]}x{image.shape[0]}, width x height); expected the same size: check that the {what} "
            "belongs to this image, and re-save it at the image's size"
        )


def attempt(problems: list[str], action: Callable[..., T], *args: Any) -> T | None:
    """The result of ``action(*args)``, or None with the message of the DataError it raised appended to
    ``problems``."""
    try:
        return action(*args)
    except DataError as err:
        problems.append(str(err))
        return None


def problems_message(problems: list[str]) -> str:
    """The first :data:`SHOWN_PROBLEMS` problems joined by ``; ``, with a count of the others."""
    more = len(problems) - SHOWN_PROBLEMS
    return "; ".join(problems[:SHOWN_PROBLEMS]) + (f" (and {more} more)" if more > 0 else "")


def raise_problems(problems: list[str]) -> None:
    """Raise one DataError listing ``problems`` (see :func:`problems_message`); nothing when there are none."""
    if problems:
        raise DataError(problems_message(problems))


def has_alpha(layout: str | None) -> bool:
    """Whether a 2nd/4th image channel is alpha in ``layout`` (True for an unknown or no layout)."""
    if layout is None or layout not in LAYOUTS:
        return True
    return bool(LAYOUTS.get(layout).info.get("alpha", True))
