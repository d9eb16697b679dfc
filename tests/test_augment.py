"""Configurable augmentation: spec handling, reproducibility, labels/weights follow the image, any intensity range."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unetseg.data.augment import (
    AUGMENTATION_PARAMETERS,
    RangeGamma,
    ScaledBrightnessContrast,
    ScaledGaussianNoise,
    apply_augmentation,
    augmentation_grid,
    build_augmentation,
    resolve_augmentation_spec,
)

OFF = {key: False for key in AUGMENTATION_PARAMETERS}


def scene(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(labels (H, W) int64 with discs of ids 1..3, image (1, H, W) = 10 * labels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int64)
    for k in (1, 2, 3):
        cy, cx = rng.integers(12, size - 12, 2)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(6, 11) ** 2] = k
    labels[:4, : size // 2] = 2  # break the symmetries
    return labels, 10.0 * labels[None].astype(np.float32)


def interior(labels: np.ndarray, width: int = 3) -> np.ndarray:
    change = np.zeros(labels.shape, bool)
    change[:-1] |= labels[:-1] != labels[1:]
    change[1:] |= labels[:-1] != labels[1:]
    change[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    change[:, 1:] |= labels[:, :-1] != labels[:, 1:]
    return ~ndimage.binary_dilation(change, iterations=width)


def test_resolve_spec_defaults_and_overrides() -> None:
    default = resolve_augmentation_spec(None)
    assert default["flip"] and default["rot90"] and default["elastic"]["sigma"] == 10.0
    assert default["affine"] is None and default["blur"] is None and default["noise"] is None
    assert default["brightness_contrast"] and default["gamma"]
    custom = resolve_augmentation_spec({"elastic": {"sigma": 5}, "affine": True, "gamma": False})
    assert custom["elastic"] == {"p": 0.5, "sigma": 5, "grid": 3}
    assert custom["affine"] == AUGMENTATION_PARAMETERS["affine"] and custom["gamma"] is None
    with pytest.raises(ValueError, match="unknown key"):
        resolve_augmentation_spec({"flips": True})
    with pytest.raises(ValueError, match="elastic"):
        resolve_augmentation_spec({"elastic": {"alpha": 1}})
    with pytest.raises(ValueError, match="p"):
        resolve_augmentation_spec({"flip": {"p": 2}})
    with pytest.raises(ValueError, match="rotate"):
        build_augmentation({"affine": {"rotate": "a lot"}})
    assert len(build_augmentation(OFF).transforms) == 0


def test_same_seed_same_output_different_seed_different() -> None:
    labels, image = scene()
    weights = np.random.default_rng(3).random(labels.shape, dtype=np.float32)
    compose = build_augmentation({"affine": True, "blur": True, "noise": True})
    a = apply_augmentation(compose, image, labels, weights, seed=7)
    b = apply_augmentation(build_augmentation({"affine": True, "blur": True, "noise": True}), image, labels, weights,
                           seed=7)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    outputs = [apply_augmentation(compose, image, labels, weights, seed=s)[0] for s in range(8, 12)]
    assert all(not np.array_equal(outputs[0], o) for o in outputs[1:])
    assert a[0].shape == image.shape and a[0].dtype == np.float32
    assert a[1].dtype == labels.dtype and a[2].dtype == np.float32


def test_flips_and_rotations_cover_all_eight_symmetries() -> None:
    labels, image = scene(32)
    compose = build_augmentation({**OFF, "flip": True, "rot90": True})
    seen = {apply_augmentation(compose, image, labels, seed=s)[1].tobytes() for s in range(200)}
    assert len(seen) == 8


@pytest.mark.parametrize("extra", [{}, {"affine": {"p": 1.0, "rotate": 20, "scale": 0.1, "shear": 5}}])
def test_labels_and_weights_follow_the_image(extra: dict) -> None:
    labels, image = scene(80, seed=1)
    weights = labels.astype(np.float32) / 3.0
    spec = {**OFF, "flip": True, "rot90": True, "elastic": {"p": 1.0}, **extra}
    compose = build_augmentation(spec)
    for seed in range(3):
        img, lab, w = apply_augmentation(compose, image, labels, weights, seed=seed)
        assert set(np.unique(lab)) <= set(np.unique(labels))
        assert not np.array_equal(lab, labels)
        inner = interior(lab)
        assert inner.mean() > 0.5
        # (nearest sampling can thin out narrow structures, so "almost all" interior pixels)
        assert (np.abs(img[0] - 10.0 * lab)[inner] < 0.05).mean() > 0.99
        assert (np.abs(w - lab / 3.0)[inner] < 1e-4).mean() > 0.99
        # the weight map is interpolated linearly (in-between values at borders), the labels are not
        assert len(np.unique(w)) > len(np.unique(weights))


def test_output_size_crops_the_centre() -> None:
    labels, image = scene(64)
    compose = build_augmentation({**OFF, "rot90": True, "elastic": {"p": 1.0}})
    full = apply_augmentation(compose, image, labels, labels.astype(np.float32), seed=4)
    cropped = apply_augmentation(compose, image, labels, labels.astype(np.float32), seed=4, output_size=40)
    np.testing.assert_array_equal(cropped[0], full[0])
    np.testing.assert_array_equal(cropped[1], full[1][12:52, 12:52])
    np.testing.assert_array_equal(cropped[2], full[2][12:52, 12:52])
    with pytest.raises(ValueError, match="output_size"):
        apply_augmentation(compose, image, labels[:40, :40], seed=0)


@pytest.mark.parametrize("offset,scale", [(0.0, 1.0), (-2000.0, 500.0), (0.3, 0.01)])
def test_intensity_transforms_work_for_any_float_range(offset: float, scale: float) -> None:
    rng = np.random.default_rng(0)
    base = rng.random((2, 48, 48), dtype=np.float32)  # [0, 1)
    image = (base * scale + offset).astype(np.float32)
    labels = np.zeros((48, 48), np.int64)
    spec = {**OFF, "brightness_contrast": {"p": 1.0, "brightness": 0.2, "contrast": 0.2},
            "gamma": {"p": 1.0, "gamma": [0.5, 2.0]}, "blur": {"p": 1.0}, "noise": {"p": 1.0, "std": 0.1}}
    out = apply_augmentation(build_augmentation(spec), image, labels, seed=1)[0]
    assert np.isfinite(out).all() and not np.array_equal(out, image)
    # the same augmentation, expressed in units of the input's range: independent of offset and scale
    ref = apply_augmentation(build_augmentation(spec), base, labels, seed=1)[0]
    np.testing.assert_allclose((out - offset) / scale, ref, atol=2e-3 + 1e-6 * abs(offset) / scale)
    # no clipping to [0, 1] or to the dtype's range
    if scale > 10:
        assert out.max() < -1000.0


def test_intensity_transforms_individually() -> None:
    x = np.random.default_rng(2).normal(100.0, 20.0, (32, 32, 1)).astype(np.float32)
    # gamma keeps each channel's min and max
    g = RangeGamma(gamma=(2.0, 2.0), p=1.0).apply(x, g=2.0)
    assert g.min() == pytest.approx(x.min(), abs=1e-3) and g.max() == pytest.approx(x.max(), abs=1e-3)
    assert g.mean() < x.mean()
    # brightness shifts by b * std, contrast scales about the mean
    bc = ScaledBrightnessContrast(p=1.0).apply(x, c=1.5, b=0.5)
    assert bc.mean() == pytest.approx(x.mean() + 0.5 * x.std(), rel=1e-4)
    assert bc.std() == pytest.approx(1.5 * x.std(), rel=1e-4)
    # noise std is relative to the channel's std
    noise = np.random.default_rng(0).standard_normal(x.shape, dtype=np.float32)
    n = ScaledGaussianNoise(p=1.0).apply(x, fraction=0.1, noise=noise)
    assert (n - x).std() == pytest.approx(0.1 * x.std(), rel=0.1)


def test_augmentation_grid_writes_png(tmp_path) -> None:
    labels, image = scene(48)
    samples = [(image, labels), (image[:, ::-1].copy(), labels[::-1].copy(), labels.astype(np.float32))]
    path = tmp_path / "preview" / "augmentations.png"
    augmentation_grid(samples, build_augmentation(None), path, n=4, seed=3)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert [p.name for p in path.parent.iterdir()] == ["augmentations.png"]  # no temporary file left behind
