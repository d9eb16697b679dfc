"""Configurable training augmentation (Albumentations 2.x) for float images, label images and weight maps.

:func:`build_augmentation` turns a plain mapping (e.g. a YAML section) into an ``albumentations.Compose``;
:func:`apply_augmentation` applies it to one (C, H, W) image, its (H, W) labels and an optional (H, W) weight map,
reproducibly for a given seed; :func:`augmentation_grid` writes a PNG of augmented examples.

Spec keys (every key is optional; a missing key takes its default from :data:`DEFAULT_AUGMENTATION`; ``false`` or
``null`` switches a transform off, ``true`` switches it on with the parameters of :data:`AUGMENTATION_PARAMETERS`,
a mapping switches it on and overrides some of those parameters; ``p`` is always the probability of applying it):

=====================  ==========================================================  ====================================
key                    parameters (default)                                        meaning
=====================  ==========================================================  ====================================
flip                   p (0.5)                                                     horizontal and vertical flips, each
                                                                                   with probability p
rot90                  p (1.0)                                                     rotation by k*90 degrees, k uniform
                                                                                   in 0..3 (square patches only)
affine                 p (0.5), scale ([0.9, 1.1]), rotate ([-15, 15]),            random scaling / rotation / shear
                       shear ([-5, 5])                                             about the centre (degrees)
elastic                p (0.5), sigma (10.0), grid (3)                             the U-Net paper's elastic
                                                                                   deformation (:mod:`.elastic`)
brightness_contrast    p (0.3), brightness (0.1), contrast (0.1)                   x -> m + c (x - m) + b s with m, s
                                                                                   the channel's mean and std,
                                                                                   c in 1 +- contrast, b in +- brightness
gamma                  p (0.3), gamma ([0.8, 1.25])                                gamma curve on the channel's
                                                                                   [min, max] range (log-uniform gamma)
blur                   p (0.2), sigma ([0.5, 1.0])                                 Gaussian blur, sigma in pixels
noise                  p (0.2), std ([0.0, 0.05])                                  additive Gaussian noise, std in
                                                                                   units of the channel's std
=====================  ==========================================================  ====================================

Ranges are ``[low, high]``; a single number ``v`` means ``[1 - v, 1 + v]`` for scale, ``[1 / v, v]`` for gamma,
``[-v, v]`` for rotate and shear, ``[0, v]`` for noise std and ``[v, v]`` for blur sigma.

The default (``build_augmentation(None)``): flips + 90-degree rotations (all 8 symmetries of the square), the paper's
elastic deformation (3x3 grid, sigma 10 px, p 0.5) and mild intensity changes (brightness/contrast +-10 % with p 0.3,
gamma in [0.8, 1.25] with p 0.3); no affine, blur or noise.

Intensity changes are relative to each channel's statistics, so they behave the same for any normalisation
(percentile [0, 1]-ish, z-score, ...): no clipping, no uint8 or [0, 1] assumption. Label images are always
resampled with nearest neighbour; the weight map is passed as the additional target ``"weights"`` (registered as a
mask, so flips/rotations move it exactly like the labels) and the package's own interpolating transforms (affine,
elastic) resample it linearly.
"""

from __future__ import annotations

import copy
import math
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.core.transforms_interface import DualTransform, ImageOnlyTransform

from .elastic import BORDER_MODES, GridElasticDeformation, WeightTargetsMixin, warp

__all__ = [
    "AUGMENTATION_PARAMETERS",
    "DEFAULT_AUGMENTATION",
    "GaussianSmooth",
    "RandomAffine",
    "RangeGamma",
    "ScaledBrightnessContrast",
    "ScaledGaussianNoise",
    "apply_augmentation",
    "augmentation_grid",
    "build_augmentation",
    "resolve_augmentation_spec",
]

#: parameters (and their defaults) of every spec key, used when a key is ``true`` or a mapping omits some.
AUGMENTATION_PARAMETERS: dict[str, dict[str, Any]] = {
    "flip": {"p": 0.5},
    "rot90": {"p": 1.0},
    "affine": {"p": 0.5, "scale": [0.9, 1.1], "rotate": [-15.0, 15.0], "shear": [-5.0, 5.0]},
    "elastic": {"p": 0.5, "sigma": 10.0, "grid": 3},
    "brightness_contrast": {"p": 0.3, "brightness": 0.1, "contrast": 0.1},
    "gamma": {"p": 0.3, "gamma": [0.8, 1.25]},
    "blur": {"p": 0.2, "sigma": [0.5, 1.0]},
    "noise": {"p": 0.2, "std": [0.0, 0.05]},
}

#: what ``build_augmentation(None)`` (and a spec's missing keys) use.
DEFAULT_AUGMENTATION: dict[str, Any] = {
    "flip": True,
    "rot90": True,
    "affine": False,
    "elastic": True,
    "brightness_contrast": True,
    "gamma": True,
    "blur": False,
    "noise": False,
}

WEIGHTS_KEY = "weights"


# ----------------------------------------------------------------------------------------------------------- transforms
def _channels_last(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 3 else img[..., None]


def _channel_stats(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _channels_last(img).astype(np.float64)
    return x.mean(axis=(0, 1)), x.std(axis=(0, 1))


class RandomAffine(WeightTargetsMixin, DualTransform):
    """Random scale, rotation and shear about the centre; masks nearest, ``weights*`` targets linear, image cubic.

    Args:
        scale: (low, high) scale factors.
        rotate: (low, high) rotation in degrees.
        shear: (low, high) horizontal shear angle in degrees.
        image_order: 1 (bilinear) or 3 (bicubic) for the image.
        border_mode: one of :data:`unetseg.data.elastic.BORDER_MODES`.
    """

    def __init__(
        self,
        scale: Sequence[float] = (0.9, 1.1),
        rotate: Sequence[float] = (-15.0, 15.0),
        shear: Sequence[float] = (-5.0, 5.0),
        image_order: int = 3,
        border_mode: str = "mirror",
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.scale, self.rotate, self.shear = _pair(scale, "scale"), _pair(rotate, "rotate"), _pair(shear, "shear")
        if self.scale[0] <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if image_order not in (1, 3):
            raise ValueError(f"image_order must be 1 or 3, got {image_order}")
        if border_mode not in BORDER_MODES:
            raise ValueError(f"border_mode must be one of {sorted(BORDER_MODES)}, got {border_mode!r}")
        self.image_order, self.border_mode = image_order, border_mode

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale", "rotate", "shear", "image_order", "border_mode")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        rng = self.random_generator
        s = rng.uniform(*self.scale)
        theta = math.radians(rng.uniform(*self.rotate))
        shear = math.tan(math.radians(rng.uniform(*self.shear)))
        rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        forward = rotation @ np.array([[1.0, 0.0], [shear, 1.0]]) * s  # acts on (y, x) offsets from the centre
        inverse = np.linalg.inv(forward)
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        yy, xx = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
        src_y = inverse[0, 0] * yy + inverse[0, 1] * xx
        src_x = inverse[1, 0] * yy + inverse[1, 1] * xx
        return {"dy": (src_y - yy).astype(np.float32), "dx": (src_x - xx).astype(np.float32)}

    def _warp(self, array: np.ndarray, dy: np.ndarray, dx: np.ndarray, order: int) -> np.ndarray:
        return warp(array, dy, dx, order=order, mode=self.border_mode, channel_axis=-1)

    def apply(self, img: np.ndarray, dy: np.ndarray, dx: np.ndarray, **params: Any) -> np.ndarray:
        order = self.image_order if np.issubdtype(img.dtype, np.floating) or img.dtype == np.uint8 else 0
        return self._warp(img, dy, dx, order)

    def apply_to_mask(self, mask: np.ndarray, dy: np.ndarray, dx: np.ndarray, **params: Any) -> np.ndarray:
        return self._warp(mask, dy, dx, 0)

    def apply_to_weights(self, weights: np.ndarray, dy: np.ndarray, dx: np.ndarray, **params: Any) -> np.ndarray:
        return self._warp(np.asarray(weights, dtype=np.float32), dy, dx, 1)


class ScaledBrightnessContrast(ImageOnlyTransform):
    """Per channel ``x -> m + c (x - m) + b s`` (m, s: the channel's mean and std); any intensity range, no clipping.

    ``c`` is uniform in ``[1 - contrast, 1 + contrast]``, ``b`` uniform in ``[-brightness, brightness]``.
    """

    def __init__(self, brightness: float = 0.1, contrast: float = 0.1, p: float = 0.3) -> None:
        super().__init__(p=p)
        if brightness < 0 or not 0 <= contrast < 1:
            raise ValueError(f"need brightness >= 0 and 0 <= contrast < 1, got {brightness}, {contrast}")
        self.brightness, self.contrast = float(brightness), float(contrast)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("brightness", "contrast")

    def get_params(self) -> dict[str, Any]:
        rng = self.random_generator
        return {"c": rng.uniform(1 - self.contrast, 1 + self.contrast), "b": rng.uniform(-1, 1) * self.brightness}

    def apply(self, img: np.ndarray, c: float, b: float, **params: Any) -> np.ndarray:
        mean, std = _channel_stats(img)
        out = (_channels_last(img) - mean) * c + mean + b * std
        return out.astype(img.dtype, copy=False).reshape(img.shape)


class RangeGamma(ImageOnlyTransform):
    """Per channel gamma curve on its own [min, max] range: ``lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g``.

    ``g`` is log-uniform in ``gamma``; works for any intensity range (the range itself is kept).
    """

    def __init__(self, gamma: Sequence[float] = (0.8, 1.25), p: float = 0.3) -> None:
        super().__init__(p=p)
        self.gamma = _pair(gamma, "gamma")
        if self.gamma[0] <= 0:
            raise ValueError(f"gamma must be positive, got {gamma}")

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("gamma",)

    def get_params(self) -> dict[str, Any]:
        lo, hi = math.log(self.gamma[0]), math.log(self.gamma[1])
        return {"g": math.exp(self.random_generator.uniform(lo, hi))}

    def apply(self, img: np.ndarray, g: float, **params: Any) -> np.ndarray:
        x = _channels_last(img).astype(np.float32)
        lo, hi = x.min(axis=(0, 1)), x.max(axis=(0, 1))
        span = np.where(hi > lo, hi - lo, 1.0).astype(np.float32)
        out = lo + span * np.power(np.clip((x - lo) / span, 0.0, 1.0), np.float32(g))
        return out.astype(img.dtype, copy=False).reshape(img.shape)


class GaussianSmooth(ImageOnlyTransform):
    """Gaussian blur with sigma (pixels) uniform in ``sigma``; float images of any range and channel count."""

    def __init__(self, sigma: Sequence[float] = (0.5, 1.0), p: float = 0.2) -> None:
        super().__init__(p=p)
        self.sigma = _pair(sigma, "sigma")
        if self.sigma[0] < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("sigma",)

    def get_params(self) -> dict[str, Any]:
        return {"s": self.random_generator.uniform(*self.sigma)}

    def apply(self, img: np.ndarray, s: float, **params: Any) -> np.ndarray:
        if s <= 0:
            return img
        x = np.ascontiguousarray(_channels_last(img), dtype=np.float32)
        planes = [cv2.GaussianBlur(x[..., c], (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT_101) for c in
                  range(x.shape[-1])]
        return np.stack(planes, -1).astype(img.dtype, copy=False).reshape(img.shape)


class ScaledGaussianNoise(ImageOnlyTransform):
    """Additive Gaussian noise whose std is a random fraction (uniform in ``std``) of each channel's std."""

    def __init__(self, std: Sequence[float] = (0.0, 0.05), p: float = 0.2) -> None:
        super().__init__(p=p)
        self.std = _pair(std, "std")
        if self.std[0] < 0:
            raise ValueError(f"std must be >= 0, got {std}")

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("std",)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        rng = self.random_generator
        shape = params["shape"]
        shape = tuple(shape) if len(shape) == 3 else (*shape, 1)
        return {"fraction": rng.uniform(*self.std), "noise": rng.standard_normal(shape, dtype=np.float32)}

    def apply(self, img: np.ndarray, fraction: float, noise: np.ndarray, **params: Any) -> np.ndarray:
        _, std = _channel_stats(img)
        out = _channels_last(img) + noise * (fraction * std).astype(np.float32)
        return out.astype(img.dtype, copy=False).reshape(img.shape)


# ------------------------------------------------------------------------------------------------------------- building
def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a [low, high] pair of numbers, got {value!r}") from None
    if lo > hi:
        raise ValueError(f"{name}: low > high in {value!r}")
    return lo, hi


def _range(value: Any, name: str, kind: str) -> tuple[float, float]:
    """A [low, high] pair, or a single number expanded according to ``kind``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        if kind == "around1":
            return _pair((1 - v, 1 + v), name)
        if kind == "inverse":
            if v <= 0:
                raise ValueError(f"{name}: must be positive, got {value!r}")
            return _pair(sorted((1 / v, v)), name)
        if kind == "symmetric":
            return _pair((-abs(v), abs(v)), name)
        if kind == "from0":
            return _pair((0.0, v), name)
        return _pair((v, v), name)
    return _pair(value, name)


def resolve_augmentation_spec(spec: Mapping[str, Any] | None) -> dict[str, dict[str, Any] | None]:
    """The complete spec: every key mapped to its full parameter mapping, or None where it is off.

    Raises:
        ValueError: unknown keys or parameters, or wrongly typed entries (the message names them).
    """
    spec = {} if spec is None else spec
    if not isinstance(spec, Mapping):
        raise ValueError(  # noqa: TRY004 - all spec errors are ValueErrors, like the config's
            f"augmentation: expected a mapping of {list(AUGMENTATION_PARAMETERS)}, got {spec!r}"
        )
    unknown = sorted(set(spec) - set(AUGMENTATION_PARAMETERS))
    if unknown:
        raise ValueError(f"augmentation: unknown key(s) {unknown}; valid keys: {list(AUGMENTATION_PARAMETERS)}")
    resolved: dict[str, dict[str, Any] | None] = {}
    for key, defaults in AUGMENTATION_PARAMETERS.items():
        value = spec.get(key, DEFAULT_AUGMENTATION[key])
        if value is None or value is False:
            resolved[key] = None
        elif value is True:
            resolved[key] = copy.deepcopy(defaults)
        elif isinstance(value, Mapping):
            bad = sorted(set(value) - set(defaults))
            if bad:
                raise ValueError(f"augmentation.{key}: unknown parameter(s) {bad}; valid: {list(defaults)}")
            resolved[key] = {**copy.deepcopy(defaults), **dict(value)}
            p = resolved[key]["p"]
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise ValueError(f"augmentation.{key}.p: expected a probability in [0, 1], got {p!r}")
        else:
            raise ValueError(f"augmentation.{key}: expected true, false or a mapping of {list(defaults)}, got {value!r}")
    return resolved


def build_augmentation(spec: Mapping[str, Any] | None = None) -> A.Compose:
    """An ``albumentations.Compose`` for (H, W, C) float32 images, ``mask`` labels and the ``weights`` target.

    Spatial transforms come first (flips, rot90, affine, elastic), then intensity transforms (gamma,
    brightness/contrast, blur, noise). See the module docstring for the keys and defaults.

    Example:
        >>> compose = build_augmentation({"affine": True, "noise": {"p": 0.5, "std": 0.1}})
    """
    r = resolve_augmentation_spec(spec)
    transforms: list[Any] = []
    try:
        if r["flip"]:
            transforms += [A.HorizontalFlip(p=r["flip"]["p"]), A.VerticalFlip(p=r["flip"]["p"])]
        if r["rot90"]:
            transforms.append(A.RandomRotate90(p=r["rot90"]["p"]))
        if r["affine"]:
            a = r["affine"]
            transforms.append(
                RandomAffine(
                    scale=_range(a["scale"], "affine.scale", "around1"),
                    rotate=_range(a["rotate"], "affine.rotate", "symmetric"),
                    shear=_range(a["shear"], "affine.shear", "symmetric"),
                    p=a["p"],
                )
            )
        if r["elastic"]:
            e = r["elastic"]
            transforms.append(GridElasticDeformation(grid=int(e["grid"]), sigma=float(e["sigma"]), p=e["p"]))
        if r["gamma"]:
            transforms.append(RangeGamma(gamma=_range(r["gamma"]["gamma"], "gamma.gamma", "inverse"), p=r["gamma"]["p"]))
        if r["brightness_contrast"]:
            bc = r["brightness_contrast"]
            transforms.append(ScaledBrightnessContrast(float(bc["brightness"]), float(bc["contrast"]), p=bc["p"]))
        if r["blur"]:
            transforms.append(GaussianSmooth(sigma=_range(r["blur"]["sigma"], "blur.sigma", "fixed"), p=r["blur"]["p"]))
        if r["noise"]:
            transforms.append(ScaledGaussianNoise(std=_range(r["noise"]["std"], "noise.std", "from0"), p=r["noise"]["p"]))
    except (TypeError, ValueError) as err:
        raise ValueError(f"augmentation: {err}") from err
    return A.Compose(transforms, p=1.0, additional_targets={WEIGHTS_KEY: "mask"})


def _center_crop(array: np.ndarray, size: int) -> np.ndarray:
    h, w = array.shape[-2:]
    if (h - size) % 2 or (w - size) % 2 or size > min(h, w):
        raise ValueError(f"cannot centre-crop {array.shape[-2:]} to {size} (needs an even, non-negative margin)")
    top, left = (h - size) // 2, (w - size) // 2
    return array[..., top : top + size, left : left + size]


def apply_augmentation(
    compose: A.Compose,
    image_chw: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    seed: int = 0,
    output_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Augment one (C, H, W) image with its (H, W) labels and optional (H, W) weight map; a pure function of ``seed``.

    All transforms of ``compose`` share one generator seeded with ``seed`` (so e.g. the two flips are independent).
    For valid-padding networks pass the labels (and weights) cropped with the image tile's window and
    ``output_size``: they are then centre-cropped after the transform, which keeps them aligned with the tile.

    Returns:
        (image (C, H, W) float32, labels (same dtype), weights float32 or None), contiguous.
    """
    if image_chw.ndim != 3:
        raise ValueError(f"expected a (C, H, W) image, got shape {image_chw.shape}")
    if labels.shape != image_chw.shape[1:] or (weights is not None and weights.shape != labels.shape):
        shapes = (image_chw.shape, labels.shape, None if weights is None else weights.shape)
        raise ValueError(
            f"image (C, H, W), labels and weights must share H, W, got {shapes}; for a smaller label patch crop the "
            "labels with the tile's window and pass output_size"
        )
    compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
    data: dict[str, Any] = {"image": np.ascontiguousarray(np.moveaxis(image_chw, 0, -1), dtype=np.float32)}
    data["mask"] = labels
    if weights is not None:
        data[WEIGHTS_KEY] = np.asarray(weights, dtype=np.float32)
    out = compose(**data)
    image = np.ascontiguousarray(np.moveaxis(_channels_last(out["image"]), -1, 0), dtype=np.float32)
    new_labels = out["mask"]
    new_weights = out.get(WEIGHTS_KEY) if weights is not None else None
    if output_size is not None:
        new_labels = _center_crop(new_labels, output_size)
        new_weights = None if new_weights is None else _center_crop(new_weights, output_size)
    new_labels = np.ascontiguousarray(new_labels, dtype=labels.dtype)
    if new_weights is not None:
        new_weights = np.ascontiguousarray(new_weights, dtype=np.float32)
    return image, new_labels, new_weights


# ------------------------------------------------------------------------------------------------------------- preview
def _display(image_chw: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) in [0, 1] for display, stretched between the 1st and 99th percentiles."""
    x = image_chw[:3] if image_chw.shape[0] == 3 else image_chw[:1]
    lo, hi = np.percentile(x, [1, 99])
    x = np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return np.moveaxis(x, 0, -1) if x.shape[0] == 3 else x[0]


def augmentation_grid(
    samples: Sequence[tuple[np.ndarray, ...]],
    compose: A.Compose,
    path: str | os.PathLike,
    n: int = 8,
    seed: int = 0,
) -> None:
    """Write a PNG: the first column shows ``samples[0]`` unchanged, then ``n`` augmentations of the samples in turn.

    Rows: image (label outlines on top), labels, and the weight map where samples carry one.

    Args:
        samples: tuples (image (C, H, W), labels (H, W)[, weights (H, W)]).
        compose: e.g. :func:`build_augmentation`'s result.
        path: the PNG file (written atomically).
        n: number of augmented examples; example i uses ``samples[i % len(samples)]`` and seed ``seed + i``.
    """
    from matplotlib.figure import Figure

    from ..fileio import atomic_path

    if not samples:
        raise ValueError("augmentation_grid needs at least one sample")
    columns = [(tuple(samples[0]) + (None,))[:3]]
    titles = ["original"]
    for i in range(n):
        image, labels, *rest = samples[i % len(samples)]
        weights = rest[0] if rest else None
        columns.append(apply_augmentation(compose, image, labels, weights, seed=seed + i))
        titles.append(f"#{i % len(samples)} seed {seed + i}")
    has_weights = any(c[2] is not None for c in columns)
    rows = 3 if has_weights else 2
    vmax = max(1, max(int(np.max(c[1])) for c in columns))
    fig = Figure(figsize=(1.8 * len(columns), 1.9 * rows), dpi=100)
    axes = fig.subplots(rows, len(columns), squeeze=False)
    for j, (image, labels, weights) in enumerate(columns):
        shown = _display(image)
        axes[0, j].imshow(shown, cmap="gray", interpolation="nearest")
        if labels.max() > labels.min():
            axes[0, j].contour(labels, levels=np.unique(labels)[:-1] + 0.5, colors="yellow", linewidths=0.5)
        axes[0, j].set_title(titles[j], fontsize=7)
        axes[1, j].imshow(labels, cmap="tab10", vmin=0, vmax=max(vmax, 9), interpolation="nearest")
        if has_weights and weights is not None:
            axes[2, j].imshow(weights, cmap="magma", interpolation="nearest")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("labels", fontsize=8)
    if has_weights:
        axes[2, 0].set_ylabel("weights", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
