"""Tests for unetseg.data.synthetic (the built-in synthetic nuclei dataset)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unetseg.data.synthetic import make_nuclei_image, write_synthetic_dataset


def _batch(seed: int, n: int, **kwargs):
    rng = np.random.default_rng(seed)
    return [make_nuclei_image(rng, **kwargs) for _ in range(n)]


def _touching_pairs(inst: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of distinct instance ids that are 4-adjacent somewhere."""
    pairs = set()
    for a, b in ((inst[:, :-1], inst[:, 1:]), (inst[:-1, :], inst[1:, :])):
        sel = (a != b) & (a > 0) & (b > 0)
        for x, y in zip(a[sel].tolist(), b[sel].tolist()):
            pairs.add((min(x, y), max(x, y)))
    return pairs


def test_deterministic_same_seed_identical():
    for (im1, l1), (im2, l2) in zip(_batch(7, 3), _batch(7, 3)):
        np.testing.assert_array_equal(im1, im2)
        np.testing.assert_array_equal(l1, l2)


def test_different_seed_differs():
    (im1, l1), (im2, l2) = _batch(1, 1)[0], _batch(2, 1)[0]
    assert not np.array_equal(im1, im2)
    assert not np.array_equal(l1, l2)


def test_successive_images_differ():
    (im1, _), (im2, _) = _batch(3, 2)
    assert not np.array_equal(im1, im2)


@pytest.mark.parametrize("h,w", [(128, 128), (64, 96), (512, 512)])
def test_dtypes_and_shapes(h, w):
    image, inst = make_nuclei_image(np.random.default_rng(0), h, w)
    assert image.dtype == np.uint8 and image.shape == (h, w)
    assert inst.dtype == np.uint16 and inst.shape == (h, w)


def test_instance_ids_contiguous_and_nonempty():
    counts = []
    for _, inst in _batch(11, 20):
        ids = np.unique(inst)
        n = int(inst.max())
        np.testing.assert_array_equal(ids, np.arange(n + 1))
        counts.append(n)
    assert min(counts) >= 1
    # default n_nuclei=(8, 16): most attempted nuclei should survive placement
    assert np.mean(counts) >= 8


def test_n_nuclei_zero_gives_empty_labels():
    image, inst = make_nuclei_image(np.random.default_rng(0), 32, 32, n_nuclei=(0, 0))
    assert inst.max() == 0 and image.dtype == np.uint8


def test_each_instance_is_one_connected_piece():
    from scipy import ndimage

    for _, inst in _batch(5, 10):
        for k in range(1, int(inst.max()) + 1):
            _, ncomp = ndimage.label(inst == k)
            assert ncomp == 1, f"instance {k} has {ncomp} pieces"


def test_touching_nuclei_exist():
    n_pairs = sum(len(_touching_pairs(inst)) for _, inst in _batch(0, 10))
    assert n_pairs >= 20  # ~45 with deliberate touching, ~4 from chance adjacency alone


def test_foreground_brighter_than_background():
    for image, inst in _batch(21, 20):
        fg = image[inst > 0].astype(float).mean()
        bg = image[inst == 0].astype(float).mean()
        assert fg > bg + 15, (fg, bg)


def test_every_nucleus_brighter_than_its_surroundings():
    from scipy import ndimage

    for image, inst in _batch(4, 10):
        ring_zone = ndimage.binary_dilation(inst > 0, iterations=6) & ~ndimage.binary_dilation(inst > 0, iterations=2)
        for k in range(1, int(inst.max()) + 1):
            obj = inst == k
            near = ndimage.binary_dilation(obj, iterations=8) & ring_zone
            if near.sum() < 10:
                continue
            assert image[obj].mean() > image[near].mean() + 5


def test_written_files_match_arrays(tmp_path: Path):
    root = write_synthetic_dataset(tmp_path / "ds", n_images=3, height=48, width=64, seed=9, prefix="nuc")
    assert root == tmp_path / "ds" and isinstance(root, Path)
    expected = _batch(9, 3, height=48, width=64)
    for i, (image, inst) in enumerate(expected):
        name = f"nuc_{i:03d}.png"
        img_r = np.array(Image.open(root / "images" / name))
        mask_r = np.array(Image.open(root / "masks" / name))
        with Image.open(root / "labels" / name) as lab_im:
            assert lab_im.mode.startswith("I")
            lab_r = np.array(lab_im)
        np.testing.assert_array_equal(img_r, image)
        assert img_r.dtype == np.uint8
        np.testing.assert_array_equal(mask_r, np.where(inst > 0, 255, 0))
        assert set(np.unique(mask_r).tolist()) <= {0, 255}
        np.testing.assert_array_equal(lab_r.astype(np.int64), inst.astype(np.int64))
    for sub in ("images", "masks", "labels"):
        assert sorted(p.name for p in (root / sub).iterdir()) == [f"nuc_{i:03d}.png" for i in range(3)]


def test_written_uint16_labels_above_255(tmp_path: Path):
    # Force many nuclei so that a label value > 255 must survive the uint16 round trip.
    rng = np.random.default_rng(0)
    _, inst = make_nuclei_image(rng, 512, 512, n_nuclei=(400, 400), radius=(3.0, 5.0))
    assert inst.max() > 255
    from unetseg.data.io import write_png

    write_png(tmp_path / "lab.png", inst)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "lab.png")).astype(np.int64), inst)
    assert [p.name for p in tmp_path.iterdir()] == ["lab.png"]  # no temp files left behind


def test_write_is_deterministic(tmp_path: Path):
    a = write_synthetic_dataset(tmp_path / "a", 2, 32, 32, seed=3)
    b = write_synthetic_dataset(str(tmp_path / "b"), 2, 32, 32, seed=3)
    for sub in ("images", "masks", "labels"):
        for name in ("img_000.png", "img_001.png"):
            assert (a / sub / name).read_bytes() == (b / sub / name).read_bytes()


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"height": 0}, "height"),
        ({"width": -5}, "width"),
        ({"height": 12.5}, "height"),
        ({"n_nuclei": (5, 2)}, "n_nuclei"),
        ({"n_nuclei": (-1, 2)}, "n_nuclei"),
        ({"radius": (8.0, 4.0)}, "radius"),
        ({"radius": (0.0, 4.0)}, "radius"),
    ],
)
def test_make_argument_errors(kwargs, name):
    with pytest.raises(ValueError, match=name) as err:
        make_nuclei_image(np.random.default_rng(0), **kwargs)
    bad = next(iter(kwargs.values()))
    assert str(bad) in str(err.value)


def test_rng_must_be_generator():
    with pytest.raises(TypeError, match="rng"):
        make_nuclei_image(0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs,name",
    [({"n_images": 0}, "n_images"), ({"n_images": 1, "height": 0}, "height"),
     ({"n_images": 1, "width": -1}, "width"), ({"n_images": 1, "seed": -3}, "seed")],
)
def test_write_argument_errors(tmp_path: Path, kwargs, name):
    with pytest.raises(ValueError, match=name) as err:
        write_synthetic_dataset(tmp_path / "x", **kwargs)
    assert str(kwargs[name]) in str(err.value)
    assert not (tmp_path / "x").exists()  # validation happens before anything is written


def test_timing_40_images_128():
    rng = np.random.default_rng(0)
    make_nuclei_image(rng)  # warm-up (imports, caches)
    start = time.perf_counter()
    for _ in range(40):
        make_nuclei_image(rng, 128, 128)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"40 images took {elapsed:.2f} s"
