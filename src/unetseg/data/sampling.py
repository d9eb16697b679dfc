"""Foreground oversampling of patch positions (as in nnU-Net), so that rare classes are seen during training.

With probability ``foreground_fraction`` a patch is placed around a random pixel of a randomly chosen foreground class
present in the image (each present class equally likely, however few pixels it has); otherwise it is placed
uniformly at random, exactly like :class:`unetseg.data.patches.PatchDataset`: ``top`` uniform in
``[min(0, h - out), max(0, h - out)]`` (likewise ``left``); windows beyond the image are mirror-padded by the caller.

Integration in ``PatchDataset.__getitem__`` (locations precomputed once per image)::

    top, left = sample_patch_origin(labels, out, rng, self.foreground_fraction, locations=self.locations[which])

With ``foreground_fraction=0`` the draws are exactly the current ones (same ``rng`` calls), so results are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["class_locations", "sample_patch_origin"]


def class_locations(
    labels: np.ndarray, max_per_class: int | None = 10000, rng: np.random.Generator | None = None
) -> dict[int, np.ndarray]:
    """Pixel coordinates of every class present in an (H, W) label image.

    Args:
        labels: integer label image.
        max_per_class: keep at most this many (a uniform random subset) per class; None keeps all.
        rng: generator for the subsets (default: ``np.random.default_rng(0)``, so the result is deterministic).

    Returns:
        {class id: (n, 2) int32 array of (y, x)}, for every value present (background included).
    """
    if labels.ndim != 2:
        raise ValueError(f"expected an (H, W) label image, got shape {labels.shape}")
    rng = np.random.default_rng(0) if rng is None else rng
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    values, starts = np.unique(flat[order], return_index=True)
    ends = np.append(starts[1:], flat.size)
    width = labels.shape[1]
    out: dict[int, np.ndarray] = {}
    for value, start, end in zip(values.tolist(), starts.tolist(), ends.tolist()):
        idx = order[start:end]
        if max_per_class is not None and idx.size > max_per_class:
            idx = np.sort(rng.choice(idx, size=max_per_class, replace=False))
        out[int(value)] = np.stack([idx // width, idx % width], axis=1).astype(np.int32)
    return out


def sample_patch_origin(
    labels: np.ndarray,
    out_size: int | tuple[int, int],
    rng: np.random.Generator,
    foreground_fraction: float = 0.33,
    classes: Sequence[int] | None = None,
    locations: dict[int, np.ndarray] | None = None,
) -> tuple[int, int]:
    """(top, left) of a label patch of ``out_size``, oversampling foreground.

    Args:
        labels: (H, W) label image (only its shape is used when ``locations`` is given).
        out_size: patch side, or (height, width).
        rng: generator; with ``foreground_fraction == 0`` only the two uniform draws of the current convention are
            taken, otherwise one ``random()`` first.
        foreground_fraction: probability of a foreground-centred patch (falls back to uniform when the image has
            none of the classes).
        classes: candidate foreground classes (default: every class present except 0). E.g. exclude an ignore label.
        locations: :func:`class_locations` of ``labels`` (computed here if None; precompute it for speed).

    Returns:
        (top, left), with top in ``[min(0, h - out), max(0, h - out)]``; a foreground-centred patch contains the
        chosen pixel at a random offset between a quarter and three quarters of the patch.
    """
    if not 0.0 <= foreground_fraction <= 1.0:
        raise ValueError(f"foreground_fraction must be in [0, 1], got {foreground_fraction}")
    h, w = labels.shape[-2:]
    oh, ow = (out_size, out_size) if isinstance(out_size, (int, np.integer)) else out_size
    lo_y, hi_y = min(0, h - oh), max(0, h - oh)
    lo_x, hi_x = min(0, w - ow), max(0, w - ow)
    if foreground_fraction > 0 and rng.random() < foreground_fraction:
        if locations is None:
            locations = class_locations(labels, rng=np.random.default_rng(0))
        wanted = [c for c in locations if c != 0] if classes is None else [int(c) for c in classes]
        present = [c for c in wanted if c in locations and len(locations[c])]
        if present:
            cls = present[int(rng.integers(len(present)))]
            pts = locations[cls]
            y, x = pts[int(rng.integers(len(pts)))]
            jy = int(rng.integers(-(oh // 4), oh // 4 + 1))
            jx = int(rng.integers(-(ow // 4), ow // 4 + 1))
            top = min(max(int(y) - oh // 2 + jy, lo_y), hi_y)
            left = min(max(int(x) - ow // 2 + jx, lo_x), hi_x)
            return top, left
    top = int(rng.integers(lo_y, hi_y + 1))
    left = int(rng.integers(lo_x, hi_x + 1))
    return top, left


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
