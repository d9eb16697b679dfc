"""Training and validation images prepared when they are needed: read from their files, converted to the network's
channels and normalised, their labels and weight map made as ``train.weight_map`` asks.

:class:`PreparedImages` gives a run's images, labels, weight maps and instance labels as sequences that prepare an
image when indexed (:class:`View`), so that a run holds only what its caches keep. Preparing an image twice gives
the same arrays: every step is a pure function of the files and of the :class:`Preparation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from .dataset import Sample
from .io import to_channels
from .masks import touching_borders
from .normalize import Normalization
from .weightmap import class_balance_weights, unet_weight_map

#: the parts of a prepared image, by name
PARTS = ("image", "labels", "weights", "instances")


@dataclass(frozen=True)
class Preparation:
    """How a run prepares an image.

    Attributes:
        channels: the network's input channels (grey repeated to RGB, RGB averaged to grey, alpha dropped).
        normalization: the intensity normalisation (its statistics fitted already for the dataset scope).
        num_classes: classes of the labels, background included (for the weight map's class balance).
        weight_map: ``(w0, sigma)`` of the U-Net border weight map, or None for none; with it, pixels where two
            objects touch become background in the labels and instance labels (a gap to learn).
        ignore_index: the label value left out of the weight map's class balance (its weight is 0), if any.
        weight_map_balance: whether the weight map carries the paper's class-balance term (else 1 + border term).
    """

    channels: int
    normalization: Normalization
    num_classes: int
    weight_map: tuple[float, float] | None = None
    ignore_index: int | None = None
    weight_map_balance: bool = True

    def image(self, sample: Sample) -> np.ndarray:
        """The normalised image of an in-memory ``sample``: float32 (C, H, W)."""
        assert sample.image is not None
        return self.normalization(to_channels(sample.image, self.channels, sample.image_path))

    def targets(self, sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
        """(labels, instance labels) of an in-memory ``sample``, with the gap between touching objects when the
        weight map is on."""
        assert sample.labels is not None
        if self.weight_map is None or sample.instances is None:
            return sample.labels, sample.instances
        return touching_gap(sample.labels, sample.instances)

    def weights(self, labels: np.ndarray, instances: np.ndarray) -> np.ndarray:
        """The weight map of ``labels`` and ``instances`` (as :meth:`targets` gives them): float32 (H, W)."""
        assert self.weight_map is not None
        w0, sigma = self.weight_map
        return border_weight_map(labels, instances, self.num_classes, w0, sigma, self.ignore_index,
                                 self.weight_map_balance)


def touching_gap(labels: np.ndarray, instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` and ``instances`` with the pixels where two objects touch made background (a gap of about two
    pixels, :func:`unetseg.data.masks.touching_borders`), so that the weight map's border term weights the gap."""
    contact = touching_borders(instances)
    return np.where(contact, 0, labels).astype(labels.dtype), np.where(contact, 0, instances)


def border_weight_map(labels: np.ndarray, instances: np.ndarray, num_classes: int, w0: float, sigma: float,
                      ignore_index: int | None = None, balance: bool = True) -> np.ndarray:
    """The U-Net weight map of one image: the class-balance weights of its ``labels`` (1 for every class with
    ``balance=False``) plus the border term ``w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` of its ``instances``; pixels
    of ``ignore_index`` weigh 0.

    Returns:
        float32 (H, W).
    """
    border = unet_weight_map(instances, w0, sigma, class_weights=None) - 1.0
    ignored = labels == ignore_index if ignore_index is not None else False
    table = class_balance_weights(labels[~np.asarray(ignored)], num_classes) if balance else np.ones(num_classes)
    weights = table[np.minimum(labels, num_classes - 1)] + border
    return np.where(ignored, 0.0, weights).astype(np.float32)  # ignored pixels: 0


class PreparedImages:
    """Samples prepared when asked: :meth:`part` of sample ``index``, and the sequences :attr:`images`,
    :attr:`labels`, :attr:`weights` and :attr:`instances` over it.

    The parts of the most recently read sample are kept (one image), so that asking for its image, labels and
    weight map in turn reads its files once; nothing else is kept.

    Args:
        samples: the samples, lazy or in memory.
        preparation: how each is prepared.
    """

    def __init__(self, samples: Sequence[Sample], preparation: Preparation) -> None:
        self.samples, self.preparation = list(samples), preparation
        self._last: tuple[int, Sample, dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def part(self, index: int, name: str) -> np.ndarray | None:
        """Part ``name`` (one of :data:`PARTS`) of sample ``index``: its normalised image, labels, weight map
        (None without ``preparation.weight_map`` or instance labels) or instance labels (None without)."""
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; expected one of {', '.join(PARTS)}")
        index = range(len(self.samples))[index]  # negative indices count from the end; IndexError beyond
        if self._last is None or self._last[0] != index:
            self._last = (index, self.samples[index].read(), {})
        _, sample, parts = self._last
        if name not in parts:
            if name == "image":
                parts["image"] = self.preparation.image(sample)
            elif "labels" not in parts:
                parts["labels"], parts["instances"] = self.preparation.targets(sample)
            if name == "weights":
                usable = self.preparation.weight_map is not None and parts["instances"] is not None
                parts["weights"] = self.preparation.weights(parts["labels"], parts["instances"]) if usable else None
        return parts[name]

    @property
    def images(self) -> View:
        """The normalised images, float32 (C, H, W) each."""
        return View(self, "image")

    @property
    def labels(self) -> View:
        """The class labels, (H, W) each."""
        return View(self, "labels")

    @property
    def weights(self) -> View:
        """The weight maps, float32 (H, W) each."""
        return View(self, "weights")

    @property
    def instances(self) -> View:
        """The instance labels, (H, W) each."""
        return View(self, "instances")

    def in_memory(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]:
        """(images, labels, instance labels or None when a sample has none) of every sample, read once each."""
        images, labels, instances = [], [], []
        for i in range(len(self)):
            images.append(self.part(i, "image"))
            labels.append(self.part(i, "labels"))
            instances.append(self.part(i, "instances"))
        self._last = None
        complete = bool(instances) and all(inst is not None for inst in instances)
        return images, labels, instances if complete else None

    def __getstate__(self) -> dict[str, Any]:
        return {"samples": self.samples, "preparation": self.preparation, "_last": None}


class View(Sequence[np.ndarray]):
    """One part (:data:`PARTS`) of every sample of a :class:`PreparedImages`, prepared when indexed; a slice gives a
    list."""

    def __init__(self, images: PreparedImages, name: str) -> None:
        self.prepared, self.name = images, name

    def __len__(self) -> int:
        return len(self.prepared)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self.prepared.part(i, self.name) for i in range(len(self))[index]]
        return self.prepared.part(index, self.name)
