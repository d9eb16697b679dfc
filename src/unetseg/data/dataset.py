"""The dataset every layout loads to: samples (image, class labels, optional instance labels) and what they hold.

A sample is either held in memory or *lazy*: it holds no arrays, and its ``source`` reads it again from its files
when :meth:`Sample.read` is called (or one of its arrays is asked for), so a dataset of any size costs only its file
names and :class:`~unetseg.data.stats.SampleFacts`. :class:`LazySequence` gives read-when-indexed lists over such samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, overload

import numpy as np

from .stats import SampleFacts

T = TypeVar("T")
U = TypeVar("U")


class SampleSource(Protocol):
    """Reads one sample from its files (a layout's reader and the label conversion of its dataset)."""

    def read(self) -> Sample:
        """The sample with its arrays in memory."""
        ...


class Sample:
    """One image with its class-index label image, in memory or read from its files when needed (lazy).

    Args:
        name: the sample's name (file stem, stack page, ...).
        image: (H, W, C) as stored in the file; None for a lazy sample.
        labels: (H, W) class indices; None for a lazy sample.
        image_path, mask_path: the files it comes from.
        instances: (H, W) instance labels (0 = background, 1..N objects) when read.
        facts: what the loading pass learnt of it (size, channels, pixels per class), if anything.
        source: reads a lazy sample (its arrays None) from its files.

    ``image``, ``labels`` and ``instances`` of a lazy sample read its files at each access (nothing is kept): use
    :meth:`read` once to get all three.
    """

    def __init__(self, name: str, image: np.ndarray | None, labels: np.ndarray | None, image_path: Path,
                 mask_path: Path, instances: np.ndarray | None = None, facts: SampleFacts | None = None,
                 source: SampleSource | None = None) -> None:
        if image is None and source is None:
            raise ValueError(f"{name}: a sample needs its image or a source to read it from")
        self.name, self.image_path, self.mask_path = name, image_path, mask_path
        self._image, self._labels, self._instances = image, labels, instances
        self.facts, self.source = facts, source

    @property
    def lazy(self) -> bool:
        """Whether the arrays are read from the files when needed (:meth:`read`)."""
        return self._image is None

    @property
    def image(self) -> np.ndarray:
        """(H, W, C) as stored in the file."""
        return self._image if self._image is not None else self.read().image

    @image.setter
    def image(self, value: np.ndarray) -> None:
        self._image = value

    @property
    def labels(self) -> np.ndarray:
        """(H, W) class indices."""
        return self._labels if not self.lazy else self.read().labels

    @labels.setter
    def labels(self, value: np.ndarray) -> None:
        self._labels = value

    @property
    def instances(self) -> np.ndarray | None:
        """(H, W) instance labels, or None when the sample has none."""
        if not self.lazy or (self.facts is not None and not self.facts.instances):
            return self._instances
        return self.read().instances

    @instances.setter
    def instances(self, value: np.ndarray | None) -> None:
        self._instances = value

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image, without reading it."""
        if self.facts is not None:
            return self.facts.shape
        return int(self.image.shape[0]), int(self.image.shape[1])

    @property
    def has_instances(self) -> bool:
        """Whether the sample has instance labels, without reading it (a lazy sample without facts is read)."""
        if self.lazy and self.facts is not None:
            return self.facts.instances
        return self.instances is not None

    def read(self) -> Sample:
        """This sample with its arrays: itself when it is in memory, else read from its files (a new object each
        time; nothing is kept).

        Raises:
            DataError: a file that cannot be read any more, or that changed since the loading pass.
        """
        if not self.lazy:
            return self
        assert self.source is not None
        return self.source.read()

    def __repr__(self) -> str:
        held = "lazy" if self.lazy else "in memory"
        return f"Sample({self.name!r}, {held}, image_path={str(self.image_path)!r})"


@dataclass
class SegmentationData:
    """A validated dataset: the samples, the number of classes and of image channels."""

    root: Path
    samples: list[Sample]
    num_classes: int
    channels: int
    ignore_index: int | None = None  # the label value meaning "not annotated" (255 for voc/cityscapes), if any


class LazySequence(Sequence[U]):
    """``[read(item) for item in items]`` computed item by item when indexed, never kept.

    ``read`` must be picklable (a module-level function or a class instance) for loader processes that are
    spawned rather than forked.

    Example:
        >>> squares = LazySequence([1, 2, 3], lambda x: x * x)
        >>> len(squares), squares[2], squares[-1], list(squares[:2])
        (3, 9, 9, [1, 4])
    """

    def __init__(self, items: Sequence[T], read: Callable[[T], U]) -> None:
        self.items, self.read = list(items), read

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> U: ...

    @overload
    def __getitem__(self, index: slice) -> list[U]: ...

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self.read(item) for item in self.items[index]]
        return self.read(self.items[index])

