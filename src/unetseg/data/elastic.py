"""The U-Net paper's elastic deformation: a coarse random displacement grid, smoothly upsampled, then resampling.

Ronneberger et al. (2015): "random displacement vectors on a coarse 3 by 3 grid. The displacements are sampled from
a Gaussian distribution with 10 pixels standard deviation. Per-pixel displacements are then computed using bicubic
interpolation."

Conventions:
    * A displacement field ``(dy, dx)`` maps every *output* pixel to the input position it is read from
      (backward mapping): ``out[y, x] = in[y + dy[y, x], x + dx[y, x]]``.
    * The coarse grid's corner nodes sit on the image's corner pixels; the field between nodes is the cubic B-spline
      interpolant of the node values (smooth, passes through them).
    * Resampling orders: 0 nearest (label images: only existing values come out), 1 linear (float weight maps),
      3 cubic (images).

Example:
    >>> rng = np.random.default_rng(0)
    >>> dy, dx = elastic_displacement((64, 64), rng)
    >>> image = warp(np.zeros((2, 64, 64), np.float32), dy, dx, order=3)
    >>> labels = warp(np.zeros((64, 64), np.int64), dy, dx, order=0)
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np
from albumentations.core.transforms_interface import DualTransform
from scipy import ndimage

__all__ = ["BORDER_MODES", "WEIGHT_TARGET_PREFIX", "GridElasticDeformation", "elastic_displacement", "warp"]

#: border handling names (scipy.ndimage spelling) -> OpenCV border modes.
#: "reflect" repeats the edge pixel (d c b a | a b c d); "mirror" does not (d c b | a b c d), like ``crop_mirror``.
BORDER_MODES = {
    "reflect": cv2.BORDER_REFLECT,
    "mirror": cv2.BORDER_REFLECT_101,
    "nearest": cv2.BORDER_REPLICATE,
    "constant": cv2.BORDER_CONSTANT,
    "wrap": cv2.BORDER_WRAP,
}
_NATIVE = (np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16))
_INTERPOLATION = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}

#: Additional Albumentations targets whose name starts with this and that are registered as ``"mask"`` are treated
#: as float weight maps by this package's spatial transforms: moved exactly like the mask, but linearly interpolated.
WEIGHT_TARGET_PREFIX = "weights"


@functools.lru_cache(maxsize=64)
def _upsampling_matrix(n: int, grid: int) -> np.ndarray:
    """(n, grid) matrix M with ``M @ nodes`` = cubic B-spline interpolation of ``grid`` node values at n pixels."""
    positions = np.linspace(0.0, grid - 1.0, n)[None]
    eye = np.eye(grid)
    columns = [ndimage.map_coordinates(eye[k], positions, order=3, mode="mirror") for k in range(grid)]
    matrix = np.stack(columns, axis=1)
    matrix.setflags(write=False)
    return matrix


def elastic_displacement(
    shape: tuple[int, ...], rng: np.random.Generator, grid: int = 3, sigma: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Random smooth per-pixel displacements from a coarse ``grid`` x ``grid`` Gaussian displacement grid.

    Args:
        shape: (H, W, ...) of the image (only the first two entries are used).
        rng: NumPy generator; exactly ``2 * grid**2`` normal draws are taken from it.
        grid: nodes per side of the coarse grid (>= 2); corner nodes lie on the corner pixels.
        sigma: standard deviation of the node displacements in pixels (0: identity).

    Returns:
        (dy, dx): float32 arrays of shape (H, W), in pixels.
    """
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    h, w = int(shape[0]), int(shape[1])
    nodes = rng.normal(0.0, 1.0, size=(2, grid, grid)) * float(sigma)
    my, mx = _upsampling_matrix(h, grid), _upsampling_matrix(w, grid)
    dy = my @ nodes[0] @ mx.T
    dx = my @ nodes[1] @ mx.T
    return dy.astype(np.float32), dx.astype(np.float32)


@functools.lru_cache(maxsize=16)
def _base_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    ys.setflags(write=False)
    xs.setflags(write=False)
    return ys, xs


def _remap_plane(plane: np.ndarray, map_y: np.ndarray, map_x: np.ndarray, order: int, border: int) -> np.ndarray:
    """Resample one (H, W) plane with OpenCV; integer/bool planes keep their exact values under nearest sampling.

    Floats are resampled in float32 (OpenCV's float64 cubic remap was seen to return spurious zeros).
    """
    dtype = plane.dtype
    if dtype in _NATIVE:
        work = plane
    elif dtype == np.bool_:
        work = plane.astype(np.uint8)
    elif np.issubdtype(dtype, np.integer):
        if order != 0:
            raise ValueError(f"integer arrays ({dtype}) can only be resampled with order=0 (nearest)")
        lo, hi = (int(plane.min()), int(plane.max())) if plane.size else (0, 0)
        if 0 <= lo and hi <= np.iinfo(np.uint16).max:
            work = plane.astype(np.uint16)
        elif np.iinfo(np.int16).min <= lo and hi <= np.iinfo(np.int16).max:
            work = plane.astype(np.int16)
        else:  # large label values: exact nearest sampling with scipy (values below 2**53)
            mode = {v: k for k, v in BORDER_MODES.items()}[border]
            mode = "grid-wrap" if mode == "wrap" else ("grid-constant" if mode == "constant" else mode)
            return ndimage.map_coordinates(plane, [map_y, map_x], order=0, mode=mode, output=dtype)
    else:  # float64, float16, ...
        work = plane.astype(np.float32)
    out = cv2.remap(np.ascontiguousarray(work), map_x, map_y, _INTERPOLATION[order], borderMode=border, borderValue=0)
    return out.astype(dtype, copy=False)


def warp(
    array: np.ndarray, dy: np.ndarray, dx: np.ndarray, order: int, mode: str = "reflect", channel_axis: int = 0
) -> np.ndarray:
    """Resample ``array`` at ``(y + dy, x + dx)``: (H, W), or 3-D with channels on ``channel_axis`` (0 or -1).

    Args:
        array: (H, W) or (C, H, W) (``channel_axis=0``) or (H, W, C) (``channel_axis=-1``); float, integer or bool.
        dy, dx: (H, W) displacements in pixels (see :func:`elastic_displacement`).
        order: 0 nearest (labels: the output's values are a subset of the input's), 1 linear, 3 cubic.
        mode: border handling outside the array, one of :data:`BORDER_MODES` (scipy.ndimage names).

    Returns:
        The resampled array, same shape and dtype.
    """
    if order not in _INTERPOLATION:
        raise ValueError(f"order must be one of {sorted(_INTERPOLATION)}, got {order}")
    if mode not in BORDER_MODES:
        raise ValueError(f"mode must be one of {sorted(BORDER_MODES)}, got {mode!r}")
    if array.ndim not in (2, 3):
        raise ValueError(f"expected a (H, W) or 3-D array, got shape {array.shape}")
    spatial = array.shape if array.ndim == 2 else (array.shape[1:] if channel_axis == 0 else array.shape[:2])
    if dy.shape != tuple(spatial) or dx.shape != tuple(spatial):
        raise ValueError(f"displacements {dy.shape}/{dx.shape} do not match the array's spatial shape {spatial}")
    ys, xs = _base_grid(*spatial)
    map_y = np.add(ys, dy, dtype=np.float32)
    map_x = np.add(xs, dx, dtype=np.float32)
    border = BORDER_MODES[mode]
    if array.ndim == 2:
        return _remap_plane(array, map_y, map_x, order, border)
    if channel_axis == 0:
        return np.stack([_remap_plane(c, map_y, map_x, order, border) for c in array])
    if channel_axis not in (-1, 2):
        raise ValueError(f"channel_axis must be 0 or -1, got {channel_axis}")
    if array.shape[-1] <= 4 and array.dtype in _NATIVE:
        out = cv2.remap(
            np.ascontiguousarray(array), map_x, map_y, _INTERPOLATION[order], borderMode=border, borderValue=0
        )
        return out.reshape(array.shape)  # OpenCV drops a trailing channel axis of size 1
    return np.stack([_remap_plane(array[..., c], map_y, map_x, order, border) for c in range(array.shape[-1])], -1)


class WeightTargetsMixin:
    """Routes additional ``"mask"`` targets named ``weights*`` to :meth:`apply_to_weights` (linear interpolation).

    Albumentations calls every transform's ``add_targets`` with ``Compose(additional_targets=...)``; the built-in
    exact transforms (flips, 90-degree rotations) keep treating a weight map as a mask, which is exact for them.
    """

    def add_targets(self, additional_targets: dict[str, str]) -> None:
        super().add_targets(additional_targets)  # type: ignore[misc]
        for key, kind in additional_targets.items():
            if kind == "mask" and key.startswith(WEIGHT_TARGET_PREFIX):
                self._key2func[key] = self.apply_to_weights  # type: ignore[attr-defined]

    def apply_to_weights(self, weights: np.ndarray, **params: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class GridElasticDeformation(WeightTargetsMixin, DualTransform):
    """Albumentations transform: the U-Net paper's elastic deformation, identical for image, mask(s) and weights.

    The image is resampled with ``image_order`` (3 = bicubic), masks with nearest neighbour (labels stay labels),
    additional ``"mask"`` targets named ``weights*`` linearly. Randomness comes from the transform's
    ``random_generator``, which ``A.Compose(..., seed=...)`` / ``set_random_state`` control.

    Args:
        grid: nodes per side of the coarse displacement grid.
        sigma: standard deviation of the node displacements, in pixels (the paper: 10 on 572-pixel tiles; on
            much smaller patches the field becomes steep and may fold).
        image_order: 1 (bilinear) or 3 (bicubic) for the image.
        border_mode: one of :data:`BORDER_MODES`; "mirror" matches :func:`unetseg.data.patches.crop_mirror`.
        p: probability of applying the transform.
    """

    def __init__(
        self, grid: int = 3, sigma: float = 10.0, image_order: int = 3, border_mode: str = "mirror", p: float = 0.5
    ) -> None:
        super().__init__(p=p)
        if grid < 2:
            raise ValueError(f"grid must be >= 2, got {grid}")
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if image_order not in (1, 3):
            raise ValueError(f"image_order must be 1 or 3, got {image_order}")
        if border_mode not in BORDER_MODES:
            raise ValueError(f"border_mode must be one of {sorted(BORDER_MODES)}, got {border_mode!r}")
        self.grid, self.sigma, self.image_order, self.border_mode = int(grid), float(sigma), image_order, border_mode

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("grid", "sigma", "image_order", "border_mode")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        dy, dx = elastic_displacement(params["shape"][:2], self.random_generator, self.grid, self.sigma)
        return {"dy": dy, "dx": dx}

    def _warp(self, array: np.ndarray, dy: np.ndarray, dx: np.ndarray, order: int) -> np.ndarray:
        if self.sigma == 0:
            return array.copy()
        return warp(array, dy, dx, order=order, mode=self.border_mode, channel_axis=-1)

    def apply(self, img: np.ndarray, dy: np.ndarray, dx: np.ndarray, **params: Any) -> np.ndarray:
        order = self.image_order if img.dtype in _NATIVE or np.issubdtype(img.dtype, np.floating) else 0
        return self._warp(img, dy, dx, order)

    def apply_to_mask(self, mask: np.ndarray, dy: np.ndarray, dx: np.ndarray, **params: Any) -> np.ndarray:
        return self._warp(mask, dy, dx, 0)

    def apply_to_weights(self, weights: np.ndarray, dy: np.ndarray, dx: np.ndarray, **params: Any) -> np.ndarray:
        return self._warp(np.asarray(weights, dtype=np.float32), dy, dx, 1)
