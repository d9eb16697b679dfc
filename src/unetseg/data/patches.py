"""Mirror-extrapolated crops and the random-patch training dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .augment import apply_augmentation, build_augmentation
from .cache import GIB, ByteCache, default_cache_gib
from .sampling import class_locations, crop_mirror, sample_patch_origin


class PatchDataset(Dataset):
    """Random patches for training: an input tile of ``input_size`` and the centred label patch of ``output_size``.

    Every draw is a pure function of ``(seed, epoch, index)``, so results do not depend on the number of loader
    workers and a resumed run sees exactly the patches an uninterrupted run would.

    The images, labels and weight maps may be lists in memory or sequences that read and prepare an image when
    indexed (:class:`unetseg.data.prepared.PreparedImages`): an image's arrays (with its foreground locations) are
    kept in a cache of at most ``cache_bytes`` (:class:`unetseg.data.cache.ByteCache`, least recently used out,
    shared out among the loader processes), so the memory a run holds does not grow with the number of images, and
    a patch is the same whether its image came from the cache or not.

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
        cache_bytes: the bytes of prepared images kept (None: :func:`unetseg.data.cache.default_cache_gib`);
            each of N loader processes keeps at most a N-th.

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
        cache_bytes: int | None = None,
    ) -> None:
        if len(images) != len(labels) or not len(images):
            raise ValueError(f"need the same, non-zero number of images and labels, got {len(images)}, {len(labels)}")
        if (input_size - output_size) % 2:
            raise ValueError(f"input_size - output_size must be even, got {input_size} - {output_size}")
        if weights is not None and len(weights) != len(labels):
            raise ValueError(f"need one weight map per label image, got {len(weights)} for {len(labels)}")
        self.images, self.labels = _indexable(images), _indexable(labels)
        self.weights = _indexable(weights) if weights is not None else None
        self.input_size, self.output_size = input_size, output_size
        self.samples_per_epoch, self.augment, self.seed = samples_per_epoch, augment, seed
        self.epoch = 0
        self._order: tuple[int, np.ndarray] = (-1, np.arange(0))
        self.compose = build_augmentation(augmentation) if augment else None
        self.foreground_fraction = foreground_fraction
        self.ignore_index = ignore_index  # never a patch centre: "not annotated" is no foreground to oversample
        self.cache_bytes = int(default_cache_gib() * GIB) if cache_bytes is None else int(cache_bytes)
        self.cache = ByteCache(self.cache_bytes)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose patches are drawn (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def image(self, which: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[int, np.ndarray] | None]:
        """(image, labels, weight map or None, foreground locations or None) of image ``which``, through the cache;
        the locations (:func:`unetseg.data.sampling.class_locations`, with ``foreground_fraction`` > 0) are drawn
        from a generator seeded by ``(seed, which)``, so they are the same whenever they are computed."""
        info = get_worker_info()
        self.cache.limit = self.cache_bytes // info.num_workers if info is not None else self.cache_bytes
        return self.cache.get(which, lambda: self._load(which))

    def _load(self, which: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[int, np.ndarray] | None]:
        image, labels = self.images[which], self.labels[which]
        weights = self.weights[which] if self.weights is not None else None
        locations = (class_locations(labels, rng=np.random.default_rng([self.seed, which]))
                     if self.foreground_fraction > 0 else None)
        return image, labels, weights, locations

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        n = len(self.images)
        if self._order[0] != self.epoch:
            self._order = (self.epoch, np.random.default_rng([self.seed, self.epoch, 1]).permutation(n))
        which = int(self._order[1][index % n])
        rng = np.random.default_rng([self.seed, self.epoch, 2, index])
        image, labels, weights, locations = self.image(which)
        out, margin = self.output_size, (self.input_size - self.output_size) // 2
        classes = None if self.ignore_index is None or locations is None else \
            [c for c in locations if c not in (0, self.ignore_index)]
        top, left = sample_patch_origin(labels, out, rng, self.foreground_fraction, classes, locations)
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


def _indexable(items: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
    """``items`` itself when it reads its arrays when indexed (a lazy sequence), else a list of them."""
    return items if isinstance(items, Sequence) and not isinstance(items, (list, tuple)) else list(items)
