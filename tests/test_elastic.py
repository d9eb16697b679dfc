"""The U-Net paper's elastic deformation: labels stay labels, image and mask move together, smooth, reproducible."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
from scipy import ndimage

from unetseg.data.elastic import GridElasticDeformation, elastic_displacement, warp


def blobs(size: int = 96, seed: int = 0) -> np.ndarray:
    """A label image with a few discs of ids 1..4 on background 0."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int64)
    for k in range(1, 5):
        cy, cx = rng.integers(15, size - 15, 2)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(8, 15) ** 2] = k
    return labels


def away_from_borders(labels: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels farther than ``width`` from any label change."""
    edges = np.zeros(labels.shape, bool)
    edges[:-1] |= labels[:-1] != labels[1:]
    edges[1:] |= labels[:-1] != labels[1:]
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edges[:, 1:] |= labels[:, :-1] != labels[:, 1:]
    return ~ndimage.binary_dilation(edges, iterations=width)


def test_displacement_statistics_and_shape() -> None:
    dy, dx = elastic_displacement((50, 70), np.random.default_rng(0), grid=3, sigma=10.0)
    assert dy.shape == dx.shape == (50, 70) and dy.dtype == dx.dtype == np.float32
    # corner pixels carry the corner node values: over many draws their std is sigma
    corners = np.array([elastic_displacement((20, 20), np.random.default_rng(s))[0][0, 0] for s in range(400)])
    assert 8.5 < corners.std() < 11.5


def test_deformed_labels_are_labels() -> None:
    labels = blobs()
    labels[labels == 3] = 70000  # beyond uint16/int16 too
    dy, dx = elastic_displacement(labels.shape, np.random.default_rng(1), sigma=10.0)
    out = warp(labels, dy, dx, order=0)
    assert out.dtype == labels.dtype and out.shape == labels.shape
    assert set(np.unique(out)) <= set(np.unique(labels))
    assert not np.array_equal(out, labels)


def test_image_and_mask_move_together() -> None:
    labels = blobs(seed=2)
    image = (labels.astype(np.float32) * 10.0)[..., None]  # intensity == 10 * label id
    weights = labels.astype(np.float32)
    compose = A.Compose([GridElasticDeformation(sigma=10.0, p=1.0)], seed=5, additional_targets={"weights": "mask"})
    out = compose(image=image, mask=labels, weights=weights)
    assert out["image"].shape == image.shape and out["mask"].dtype == labels.dtype
    assert not np.array_equal(out["mask"], labels)
    # bicubic image vs nearest mask: they agree almost everywhere, and exactly away from label borders
    agree = np.abs(out["image"][..., 0] - 10.0 * out["mask"]) < 1.0
    assert agree.mean() > 0.9
    inner = away_from_borders(out["mask"], width=3)
    assert inner.mean() > 0.6
    assert (np.abs(out["image"][..., 0] - 10.0 * out["mask"])[inner] < 0.05).mean() > 0.995
    assert (np.abs(out["weights"] - out["mask"])[inner] < 1e-3).mean() > 0.995
    # the weight map is interpolated linearly: in-between values appear at label borders
    assert len(np.unique(out["weights"])) > len(np.unique(labels))
    assert set(np.unique(out["mask"])) <= set(np.unique(labels))


def test_multichannel_and_masks_list() -> None:
    labels = blobs(seed=3)
    image = np.stack([labels, -labels, 2 * labels, labels, labels], -1).astype(np.float32)  # 5 channels
    t = GridElasticDeformation(p=1.0, image_order=1)
    out = A.Compose([t], seed=0)(image=image, masks=[labels, labels.copy()])
    assert out["image"].shape == image.shape
    np.testing.assert_array_equal(out["masks"][0], out["masks"][1])
    inner = away_from_borders(out["masks"][0])
    np.testing.assert_allclose(out["image"][..., 2][inner], 2 * out["masks"][0][inner], atol=1e-4)
    chw = warp(np.moveaxis(image, -1, 0), *elastic_displacement(labels.shape, np.random.default_rng(0)), order=1)
    assert chw.shape == (5, *labels.shape)


def test_deformation_is_smooth() -> None:
    size = 256
    dy, dx = elastic_displacement((size, size), np.random.default_rng(7), grid=3, sigma=10.0)
    for field in (dy, dx):
        gy, gx = np.gradient(field)
        # node differences of a few sigma spread over half the image: well below one pixel per pixel
        assert np.abs(gy).max() < 0.5 and np.abs(gx).max() < 0.5
    # a grid pattern's lines stay connected: neighbouring pixels move by similar amounts
    pattern = np.zeros((size, size), np.float32)
    pattern[::16] = 1.0
    pattern[:, ::16] = 1.0
    out = warp(pattern, dy, dx, order=1)
    assert np.abs(np.diff(dy, axis=0)).max() < 0.5 and np.abs(np.diff(dx, axis=1)).max() < 0.5
    assert 0.8 < out.sum() / pattern.sum() < 1.2


def test_sigma_zero_is_identity() -> None:
    dy, dx = elastic_displacement((40, 30), np.random.default_rng(0), sigma=0.0)
    assert not dy.any() and not dx.any()
    image = np.random.default_rng(1).normal(size=(2, 40, 30)).astype(np.float32)
    for order in (0, 1, 3):
        np.testing.assert_allclose(warp(image, dy, dx, order=order), image, atol=1e-6)
    labels = blobs(40)[:, :30]
    out = A.Compose([GridElasticDeformation(sigma=0.0, p=1.0)], seed=0)(image=image[0][..., None], mask=labels)
    np.testing.assert_array_equal(out["mask"], labels)
    np.testing.assert_array_equal(out["image"][..., 0], image[0])


def test_reproducible_with_seed() -> None:
    labels = blobs(64)
    image = np.random.default_rng(0).random((64, 64, 1), dtype=np.float32)

    def run(seed: int) -> tuple[np.ndarray, np.ndarray]:
        compose = A.Compose([GridElasticDeformation(p=1.0)], seed=seed)
        out = compose(image=image, mask=labels)
        return out["image"], out["mask"]

    a, b, c = run(11), run(11), run(12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="grid"):
        elastic_displacement((8, 8), np.random.default_rng(0), grid=1)
    with pytest.raises(ValueError, match="order"):
        warp(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32), order=2)
    with pytest.raises(ValueError, match="integer"):
        warp(np.zeros((8, 8), np.int64), np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32), order=1)
    with pytest.raises(ValueError, match="border_mode"):
        GridElasticDeformation(border_mode="bogus")


def test_float64_and_large_label_values() -> None:
    rng = np.random.default_rng(4)
    image = rng.normal(size=(64, 64))  # float64 around 0: no spurious zeros at the borders
    dy, dx = elastic_displacement(image.shape, rng, sigma=15.0)
    out = warp(image, dy, dx, order=3, mode="mirror")
    assert out.dtype == np.float64 and (out == 0).mean() < 0.01
    labels = blobs(64) * 100000
    out_labels = warp(labels, dy, dx, order=0, mode="mirror")
    np.testing.assert_array_equal(out_labels // 100000, warp(labels // 100000, dy, dx, order=0, mode="mirror"))
