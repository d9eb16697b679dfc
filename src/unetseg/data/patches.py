"""Mirror-extrapolated crops and the random-patch training dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .augment import apply_augmentation, build_augmentation
from .sampling import class_locations, sample_patch_origin


def mirror_indices(start: int, length: int, size: int) -> np.ndarray:
    """Indices ``start .. start+length-1`` folded into ``[0, size)`` by mirroring at the borders (no edge repeat).

    Example:
        >>> mirror_indices(-2, 7, 4).tolist()
        [2, 1, 0, 1, 2, 3, 2]
    """
    idx = np.arange(start, start + length)
    if size == 1:
        return np.zeros(length, dtype=np.int64)
    period = 2 * (size - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= size, period - idx, idx)


def crop_mirror(array: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Crop the last two axes of ``array`` at (top, left), extrapolating by mirroring wherever the window leaves it.

    ``crop_mirror(a, -m, -m, H + 2m, W + 2m)`` is mirror padding by ``m`` pixels, for any ``m``.
    """
    ys = mirror_indices(top, height, array.shape[-2])
    xs = mirror_indices(left, width, array.shape[-1])
    return np.take(np.take(array, ys, axis=-2), xs, axis=-1)


class PatchDataset(Dataset):
    """Random patches for training: an input tile of ``input_size`` and the centred label patch of ``output_size``.

    Every draw is a pure function of ``(seed, epoch, index)``, so results do not depend on the number of loader
    workers and a resumed run sees exactly the patches an uninterrupted run would.

    Args:
        images: normalised images, each float32 (C, H, W).
        labels: class-index label images, each (H, W).
        input_size: side of the network input tile.
        output_size: side of the label patch (== input_size for same-padding networks).
        samples_per_epoch: patches per epoch; images are visited in a shuffled round-robin order.
        augment: apply the augmentation (``augmentation`` spec; default: flips, 90-degree rotations, the U-Net
            paper's elastic deformation, mild gamma/brightness/contrast; see :mod:`unetseg.data.augment`).
        seed: base seed.
        weights: optional per-pixel weight maps, each float32 (H, W), cropped and transformed with the labels.
        augmentation: a spec for :func:`unetseg.data.augment.build_augmentation` (None: the default).
        foreground_fraction: share of patches centred on a random pixel of a random foreground class present in
            the image (nnU-Net-style oversampling, so rare classes are seen); the others are uniform.
        ignore_index: a label value meaning "not annotated": never chosen as a foreground class to centre on.

    Shape:
        item: (image (C, input_size, input_size) float32, labels (output_size, output_size) int64), plus
        weights (output_size, output_size) float32 when weight maps are given.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        input_size: int,
        output_size: int,
        samples_per_epoch: int,
        augment: bool = True,
        seed: int = 0,
        weights: Sequence[np.ndarray] | None = None,
        augmentation: dict | None = None,
        foreground_fraction: float = 0.0,
        ignore_index: int | None = None,
    ) -> None:
        if len(images) != len(labels) or not images:
            raise ValueError(f"need the same, non-zero number of images and labels, got {len(images)}, {len(labels)}")
        if (input_size - output_size) % 2:
            raise ValueError(f"input_size - output_size must be even, got {input_size} - {output_size}")
        if weights is not None and len(weights) != len(labels):
            raise ValueError(f"need one weight map per label image, got {len(weights)} for {len(labels)}")
        self.images, self.labels = list(images), list(labels)
        self.weights = list(weights) if weights is not None else None
        self.input_size, self.output_size = input_size, output_size
        self.samples_per_epoch, self.augment, self.seed = samples_per_epoch, augment, seed
        self.epoch = 0
        self._order: tuple[int, np.ndarray] = (-1, np.arange(0))
        self.compose = build_augmentation(augmentation) if augment else None
        self.foreground_fraction = foreground_fraction
        self.ignore_index = ignore_index  # never a patch centre: "not annotated" is no foreground to oversample
        self.locations = ([class_locations(lab, rng=np.random.default_rng([seed, i])) for i, lab in enumerate(labels)]
                          if foreground_fraction > 0 else [None] * len(self.labels))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose patches are drawn (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        n = len(self.images)
        if self._order[0] != self.epoch:
            self._order = (self.epoch, np.random.default_rng([self.seed, self.epoch, 1]).permutation(n))
        which = int(self._order[1][index % n])
        rng = np.random.default_rng([self.seed, self.epoch, 2, index])
        image, labels = self.images[which], self.labels[which]
        out, margin = self.output_size, (self.input_size - self.output_size) // 2
        locations = self.locations[which]
        classes = None if self.ignore_index is None or locations is None else \
            [c for c in locations if c not in (0, self.ignore_index)]
        top, left = sample_patch_origin(labels, out, rng, self.foreground_fraction, classes, locations)
        weights = self.weights[which] if self.weights is not None else None
        if self.compose is not None:  # transform whole tiles, then centre-crop the targets to the output size
            tile = crop_mirror(image, top - margin, left - margin, self.input_size, self.input_size)
            target = crop_mirror(labels, top - margin, left - margin, self.input_size, self.input_size)
            weight = None if weights is None else crop_mirror(weights, top - margin, left - margin,
                                                                self.input_size, self.input_size)
            tile, target, weight = apply_augmentation(self.compose, tile, target, weight,
                                                      seed=int(rng.integers(2**63)), output_size=out)
        else:
            tile = crop_mirror(image, top - margin, left - margin, self.input_size, self.input_size)
            target = crop_mirror(labels, top, left, out, out)
            weight = None if weights is None else crop_mirror(weights, top, left, out, out)
        item = (torch.from_numpy(np.ascontiguousarray(tile, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(target).astype(np.int64)))
        if weight is not None:
            item += (torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)),)
        return item
