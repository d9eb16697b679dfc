"""Synthetic fluorescence-microscopy nuclei: the package's built-in demo dataset.

Each image shows elliptical nuclei (some touching or nearly touching) with textured interiors
on an unevenly lit background, blurred by a Gaussian PSF and corrupted by shot and read noise.
Instance labels are exact: every pixel belongs to at most one nucleus.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import measure

from .io import write_png

logger = logging.getLogger(__name__)

__all__ = ["make_nuclei_image", "write_synthetic_dataset"]

_MIN_PIXELS = 6  # instances smaller than this (border slivers, fragments) become background


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_range(name: str, value: object, minimum: float, strict: bool, integer: bool = False
                 ) -> tuple[float, float]:
    op = "<" if strict else "<="
    msg = f"{name} must be a (low, high) pair of {'integers' if integer else 'numbers'} with {minimum} {op} low <= high"
    try:
        lo, hi = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{msg}, got {value!r}") from None
    ok = np.isfinite(lo) and np.isfinite(hi) and (lo > minimum if strict else lo >= minimum) and lo <= hi
    if not ok or (integer and not (lo.is_integer() and hi.is_integer())):
        raise ValueError(f"{msg}, got {value!r}")
    return lo, hi


def _smooth_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-std float32 field (height x width) varying on a scale of ~size/cells."""
    grid = rng.standard_normal((cells + 3, cells + 3))
    rows = np.linspace(1.0, cells + 1.0, height, dtype=np.float32)
    cols = np.linspace(1.0, cells + 1.0, width, dtype=np.float32)
    # Separable cubic interpolation: first along rows, then along columns.
    tmp = ndimage.map_coordinates(grid, np.meshgrid(rows, np.arange(cells + 3.0), indexing="ij"), order=3)
    field = ndimage.map_coordinates(tmp, np.meshgrid(np.arange(height, dtype=np.float32), cols, indexing="ij"),
                                    order=3).astype(np.float32)
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def _radius_along(a: float, b: float, theta: float, direction: float) -> float:
    """Distance from an ellipse's centre to its edge along `direction` (radians)."""
    phi = direction - theta
    return a * b / float(np.hypot(b * np.cos(phi), a * np.sin(phi)))


def _gap_ok(p: tuple, q: tuple, factor: float) -> bool:
    """True if ellipse centres are at least `factor` x (sum of radii along the joining line) apart."""
    d = float(np.arctan2(q[0] - p[0], q[1] - p[1]))
    reach = _radius_along(p[2], p[3], p[4], d) + _radius_along(q[2], q[3], q[4], d)
    return float(np.hypot(q[0] - p[0], q[1] - p[1])) >= factor * reach


def _place_nuclei(rng: np.random.Generator, height: int, width: int, count: int,
                  radius: tuple[float, float]) -> list[tuple[float, float, float, float, float]]:
    """Ellipses (cy, cx, a, b, theta); ~40% are placed to touch/nearly touch an earlier one."""
    nuclei: list[tuple[float, float, float, float, float]] = []
    for _ in range(count):
        for _attempt in range(30):
            a = rng.uniform(*radius)
            b = a * rng.uniform(0.6, 1.0)  # eccentricity
            theta = rng.uniform(0.0, np.pi)
            touching = bool(nuclei) and rng.random() < 0.4
            if touching:
                pcy, pcx, pa, pb, pt = nuclei[rng.integers(len(nuclei))]
                d = rng.uniform(0.0, 2 * np.pi)
                dist = (_radius_along(pa, pb, pt, d) + _radius_along(a, b, theta, d)) * rng.uniform(0.82, 1.04)
                cy, cx = pcy + dist * np.sin(d), pcx + dist * np.cos(d)
                if not (0 <= cy < height and 0 <= cx < width):
                    continue
            else:
                cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            # Deliberately touching nuclei may overlap a little (then share a border); others may not.
            min_factor = 0.8 if touching else 1.0
            if all(_gap_ok(q, (cy, cx, a, b, theta), min_factor) for q in nuclei):
                nuclei.append((cy, cx, a, b, theta))
                break
    return nuclei


def _rasterise(nuclei: list, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Instance map (int32) by nearest centre in normalised ellipse distance, plus that distance."""
    inst = np.zeros((height, width), np.int32)
    best = np.full((height, width), np.inf, np.float32)
    for k, (cy, cx, a, b, theta) in enumerate(nuclei, start=1):
        y0, y1 = max(int(cy - a) - 1, 0), min(int(cy + a) + 2, height)
        x0, x1 = max(int(cx - a) - 1, 0), min(int(cx + a) + 2, width)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(theta) + dy * np.sin(theta)) / a
        v = (-dx * np.sin(theta) + dy * np.cos(theta)) / b
        dist = u * u + v * v
        sub_best = best[y0:y1, x0:x1]
        win = (dist < 1.0) & (dist < sub_best)
        inst[y0:y1, x0:x1][win] = k
        sub_best[win] = dist[win]
    return inst, best


def _clean_instances(inst: np.ndarray) -> np.ndarray:
    """Keep the largest 4-connected piece of each instance, drop tiny ones, relabel to 1..N (uint16)."""
    comps = measure.label(inst, connectivity=1, background=0)
    sizes = np.bincount(comps.ravel())
    owner = np.zeros(sizes.size, np.int64)
    owner[comps.ravel()] = inst.ravel()
    keep = np.zeros(sizes.size, bool)
    for orig in np.unique(owner[1:]):
        ids = np.flatnonzero(owner == orig)
        ids = ids[ids > 0]
        largest = ids[np.argmax(sizes[ids])]
        keep[largest] = sizes[largest] >= _MIN_PIXELS
    new_id = np.zeros(sizes.size, np.int64)
    new_id[keep] = np.arange(1, int(keep.sum()) + 1)
    return new_id[comps].astype(np.uint16)


def make_nuclei_image(rng: np.random.Generator, height: int = 128, width: int = 128,
                      n_nuclei: tuple[int, int] = (8, 16), radius: tuple[float, float] = (6.0, 13.0)
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic fluorescence nuclei image with instance labels.

    Args:
        rng: random generator; the output depends only on its state.
        height, width: image size in pixels (positive ints).
        n_nuclei: inclusive (low, high) range for the number of nuclei attempted; 0 <= low <= high.
            Nuclei that cannot be placed without heavy overlap, or that end up tiny, are dropped.
        radius: (low, high) range of the ellipse semi-major axis in pixels; 0 < low <= high.

    Returns:
        ``(image, instances)``: ``image`` is ``uint8`` of shape ``(height, width)`` (bright nuclei
        on dark background); ``instances`` is ``uint16`` of shape ``(height, width)`` with 0 =
        background and nuclei labelled contiguously 1..N. Touching nuclei share a border, no pixel.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    height = _check_positive_int("height", height)
    width = _check_positive_int("width", width)
    n_lo, n_hi = _check_range("n_nuclei", n_nuclei, 0.0, strict=False, integer=True)
    r_range = _check_range("radius", radius, 0.0, strict=True)

    count = int(rng.integers(int(n_lo), int(n_hi) + 1))
    nuclei = _place_nuclei(rng, height, width, count, r_range)
    raw, ndist = _rasterise(nuclei, height, width)
    inst = _clean_instances(raw)
    fg = inst > 0
    n = int(inst.max())

    # Background: base level + linear illumination gradient + low-frequency variation.
    yy = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    g = rng.uniform(0.0, 2 * np.pi)
    bg = (rng.uniform(0.04, 0.14) + rng.uniform(0.0, 0.12) * (np.cos(g) * xx + np.sin(g) * yy + 0.5)
          + rng.uniform(0.005, 0.025) * _smooth_field(rng, height, width, 3))

    # Nuclei: per-image contrast (some images low contrast), per-nucleus brightness, smooth texture,
    # a gentle dome profile, and a few small bright spots.
    contrast = rng.uniform(0.18, 0.6)
    bright = np.concatenate([[0.0], contrast * rng.uniform(0.7, 1.15, n)]).astype(np.float32)
    cells = max(2, round(max(height, width) / max(r_range[0], 2.0)))  # texture scale ~ nucleus radius
    texture = 1.0 + rng.uniform(0.1, 0.25) * _smooth_field(rng, height, width, cells)
    dome = 1.0 - 0.25 * np.where(fg, ndist, 0.0)
    signal = bright[inst] * np.clip(texture, 0.5, None) * dome
    spots = np.zeros((height, width), np.float32)
    fg_idx = np.flatnonzero(fg)
    if fg_idx.size:
        picks = rng.choice(fg_idx, size=min(rng.poisson(1.5 * n), fg_idx.size), replace=False)
        spots.flat[picks] = bright[inst.flat[picks]] * rng.uniform(0.4, 0.9, picks.size) * 2 * np.pi
        signal += ndimage.gaussian_filter(spots, 1.0, mode="constant") * fg

    # Optics and sensor: Gaussian PSF, Poisson shot noise, Gaussian read noise.
    clean = ndimage.gaussian_filter((bg + signal).astype(np.float32), rng.uniform(0.7, 1.6))
    gain = rng.uniform(150.0, 500.0)  # photons per unit intensity
    noisy = rng.poisson(np.clip(clean, 0.0, None) * gain) / gain + rng.normal(0.0, rng.uniform(0.005, 0.02),
                                                                               clean.shape)
    image = np.clip(np.rint(noisy * 255.0), 0, 255).astype(np.uint8)
    return image, inst


def write_synthetic_dataset(root: str | os.PathLike, n_images: int, height: int = 128, width: int = 128,
                            seed: int = 0, prefix: str = "img") -> Path:
    """Write a synthetic nuclei dataset to disk and return ``root`` as a Path.

    Layout (folders created as needed), for i = 0..n_images-1 with NNN zero-padded to >= 3 digits:
      ``root/images/<prefix>_NNN.png``: uint8 greyscale image, shape (height, width);
      ``root/masks/<prefix>_NNN.png``: uint8 binary mask, values {0, 255}, 255 = nucleus;
      ``root/labels/<prefix>_NNN.png``: uint16 (PNG mode "I;16") instance labels, 0 = background, 1..N.
    Each file is written atomically (temporary file in the same folder, then os.replace).
    The content is fully determined by ``seed`` (and the sizes).
    """
    n_images = _check_positive_int("n_images", n_images)
    height = _check_positive_int("height", height)
    width = _check_positive_int("width", width)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(prefix, str) or not prefix or os.sep in prefix or "/" in prefix:
        raise ValueError(f"prefix must be a non-empty file-name prefix, got {prefix!r}")

    root = Path(root)
    dirs = {name: root / name for name in ("images", "masks", "labels")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    digits = max(3, len(str(n_images - 1)))
    logger.info("writing %d synthetic %dx%d images to %s (seed=%d)", n_images, height, width, root, seed)
    for i in range(n_images):
        image, inst = make_nuclei_image(rng, height, width)
        name = f"{prefix}_{i:0{digits}d}.png"
        write_png(dirs["images"] / name, image)
        write_png(dirs["masks"] / name, np.where(inst > 0, 255, 0).astype(np.uint8))
        write_png(dirs["labels"] / name, inst.astype(np.uint16))
        logger.debug("wrote %s with %d nuclei", name, int(inst.max()))
    return root
