"""What the loading pass learns of each sample while it reads it (:class:`SampleFacts`), and the statistics of a
set of samples built from those facts alone (:class:`DatasetStats`), so that nothing needs the pixels again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SampleFacts:
    """One sample as the loading pass saw it.

    Attributes:
        shape: (H, W) of the image.
        channels: image channels once alpha is dropped.
        class_pixels: pixels of each value of the class labels (the ignore value included, when it occurs).
        instances: whether the sample has instance labels.
        min_size_problem: why the image is too small to train on, or None.
    """

    shape: tuple[int, int]
    channels: int
    class_pixels: dict[int, int] = field(default_factory=dict)
    instances: bool = False
    min_size_problem: str | None = None

    def has_foreground(self, ignore_index: int | None) -> bool:
        """Whether the labels hold a pixel of a class other than background (0), the ignore value left out."""
        return any(value > 0 and value != ignore_index and n > 0 for value, n in self.class_pixels.items())


@dataclass(frozen=True)
class DatasetStats:
    """Statistics of a set of samples (the training images of a run), from their :class:`SampleFacts`.

    Attributes:
        images: number of samples.
        pixels: their pixels in all.
        min_shape, max_shape: the smallest and largest (H, W) (by height, then width).
        channels: the most channels of an image.
        class_pixels: pixels of each label value over all samples (the ignore value included, when it occurs).
    """

    images: int
    pixels: int
    min_shape: tuple[int, int]
    max_shape: tuple[int, int]
    channels: int
    class_pixels: dict[int, int]

    @classmethod
    def of(cls, facts: Sequence[SampleFacts]) -> DatasetStats:
        """The statistics of the samples with these ``facts`` (at least one).

        Example:
            >>> a = SampleFacts((4, 5), 1, {0: 15, 1: 5})
            >>> b = SampleFacts((2, 3), 3, {0: 6})
            >>> s = DatasetStats.of([a, b])
            >>> s.pixels, s.min_shape, s.max_shape, s.channels, s.class_pixels
            (26, (2, 3), (4, 5), 3, {0: 21, 1: 5})
        """
        if not facts:
            raise ValueError("statistics of no samples")
        totals: dict[int, int] = {}
        for f in facts:
            for value, n in f.class_pixels.items():
                totals[value] = totals.get(value, 0) + n
        shapes = sorted(f.shape for f in facts)
        return cls(len(facts), sum(h * w for h, w in shapes), shapes[0], shapes[-1], max(f.channels for f in facts),
                   dict(sorted(totals.items())))

    def class_fractions(self, ignore_index: int | None = None) -> dict[int, float]:
        """The share of the labelled pixels of each class (``ignore_index`` left out).

        Example:
            >>> DatasetStats(1, 8, (2, 4), (2, 4), 1, {0: 5, 1: 1, 255: 2}).class_fractions(255)
            {0: 0.8333333333333334, 1: 0.16666666666666666}
        """
        counted = {v: n for v, n in self.class_pixels.items() if v != ignore_index}
        total = sum(counted.values())
        return {v: n / total if total else 0.0 for v, n in counted.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a JSON file (label values as keys)."""
        return {"images": self.images, "pixels": self.pixels, "min_shape": list(self.min_shape),
                "max_shape": list(self.max_shape), "channels": self.channels,
                "class_pixels": {str(v): n for v, n in self.class_pixels.items()}}


def value_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of an array and how often each occurs (a histogram for small non-negative integers,
    the same result as ``np.unique(values, return_counts=True)``)."""
    flat = values.ravel()
    if flat.dtype.kind in "bu" and flat.size and flat.dtype.itemsize <= 2:
        counts = np.bincount(flat.astype(np.intp, copy=False))
        present = np.flatnonzero(counts)
        return present.astype(flat.dtype), counts[present]
    return np.unique(flat, return_counts=True)
