"""Tests of the U-Net weight map (Ronneberger et al. 2015, eq. 2): hand-computed cases, a brute-force reference,
and input checks."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from unetseg.data.weightmap import (
    class_balance_weights,
    default_max_distance,
    unet_weight_map,
)


def border(total: float, w0: float = 10.0, sigma: float = 5.0) -> float:
    """The border term for d1 + d2 = total."""
    return w0 * math.exp(-total**2 / (2 * sigma**2))


def reference_weight_map(instances, w0=10.0, sigma=5.0, class_weights=(1.0, 1.0), cutoff=math.inf):
    """Obviously-correct reference: for every background pixel, the distance to each object is the minimum over that
    object's pixels of the Euclidean distance; d1, d2 = the two smallest; no distance transform, no windows."""
    instances = np.asarray(instances)
    height, width = instances.shape
    grid = np.stack(np.mgrid[:height, :width], axis=-1).reshape(-1, 1, 2).astype(np.float64)
    ids = [i for i in np.unique(instances) if i != 0]
    per_object = []
    for i in ids:
        pixels = np.argwhere(instances == i).reshape(1, -1, 2).astype(np.float64)
        per_object.append(np.sqrt(((grid - pixels) ** 2).sum(-1)).min(axis=1))
    out = np.where(instances > 0, class_weights[1], class_weights[0]).astype(np.float64)
    if len(ids) >= 2:
        dist = np.sort(np.stack(per_object), axis=0)
        total = (dist[0] + dist[1]).reshape(height, width)
        term = w0 * np.exp(-total**2 / (2 * sigma**2))
        out += np.where((instances == 0) & (total <= cutoff), term, 0.0)
    return out


def random_instances(seed: int, height: int = 28, width: int = 34, count: int = 7) -> np.ndarray:
    """Random rectangles and discs with non-consecutive ids; later ones overwrite earlier ones (touching objects)."""
    rng = np.random.default_rng(seed)
    inst = np.zeros((height, width), dtype=np.int32)
    yy, xx = np.mgrid[:height, :width]
    ids = rng.choice(np.arange(1, 60), size=count, replace=False)
    for label in ids:
        r, c = rng.integers(0, height), rng.integers(0, width)
        if rng.random() < 0.5:
            inst[r:r + rng.integers(1, 6), c:c + rng.integers(1, 6)] = label
        else:
            inst[(yy - r) ** 2 + (xx - c) ** 2 <= rng.uniform(0.5, 12)] = label
    return inst


# --- hand-computed cases -------------------------------------------------------------------------------------------

def test_gap_between_two_segments_on_a_line():
    inst = np.zeros((1, 9), dtype=np.int32)
    inst[0, :2] = 1
    inst[0, 5:] = 2  # gap at columns 2, 3, 4: d1 + d2 = 4 at each (e.g. centre: 2 + 2)
    w = unet_weight_map(inst, w0=10, sigma=5, class_weights=None)
    np.testing.assert_allclose(w[0, 2:5], 1 + 10 * math.exp(-16 / 50), rtol=1e-6)
    np.testing.assert_array_equal(w[0, :2], 1)
    np.testing.assert_array_equal(w[0, 5:], 1)
    # balanced: 6 object pixels, 3 background pixels -> w_object = 1, w_background = 6 / 3 = 2
    wb = unet_weight_map(inst, w0=10, sigma=5)
    np.testing.assert_allclose(wb[0, 3], 2 + 10 * math.exp(-16 / 50), rtol=1e-6)
    np.testing.assert_array_equal(wb[0, 5:], 1)


def test_gap_between_two_rectangles():
    inst = np.zeros((5, 9), dtype=np.uint8)
    inst[:, 0:3] = 1
    inst[:, 6:9] = 2  # gap columns 3, 4, 5 on every row; rectangles span all rows, so d1 + d2 = 4 across the gap
    w = unet_weight_map(inst, w0=7, sigma=3, class_weights=(0.5, 2.0))
    np.testing.assert_allclose(w[:, 3:6], 0.5 + border(4, 7, 3), rtol=1e-6)
    np.testing.assert_array_equal(w[:, :3], 2.0)


def test_euclidean_distances_on_a_diagonal():
    inst = np.zeros((3, 3), dtype=np.int32)
    inst[0, 0] = 1
    inst[2, 2] = 2
    w = unet_weight_map(inst, w0=10, sigma=1, class_weights=None)
    assert w[1, 1] == pytest.approx(1 + border(2 * math.sqrt(2), 10, 1), rel=1e-6)  # sqrt(2) + sqrt(2)
    assert w[0, 2] == pytest.approx(1 + border(4, 10, 1), rel=1e-6)  # 2 + 2
    assert w[1, 0] == pytest.approx(1 + border(1 + math.sqrt(5), 10, 1), rel=1e-6)


def test_second_nearest_among_three_objects():
    inst = np.zeros((1, 11), dtype=np.int32)
    inst[0, 0], inst[0, 4], inst[0, 10] = 3, 8, 5
    w = unet_weight_map(inst, w0=10, sigma=4, class_weights=None)
    assert w[0, 1] == pytest.approx(1 + border(1 + 3, 10, 4), rel=1e-6)  # not 1 + 9 (the far object)
    assert w[0, 2] == pytest.approx(1 + border(2 + 2, 10, 4), rel=1e-6)  # tie
    assert w[0, 6] == pytest.approx(1 + border(2 + 4, 10, 4), rel=1e-6)
    assert w[0, 9] == pytest.approx(1 + border(1 + 5, 10, 4), rel=1e-6)


# --- equality with the brute-force reference -------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("sigma", [1.5, 3.0])
def test_matches_brute_force_reference(seed, sigma):
    inst = random_instances(seed)
    wc = tuple(class_balance_weights(inst > 0, 2))
    cutoff = default_max_distance(sigma)  # 6.4 / 12.9 px: windows are much smaller than the image
    got = unet_weight_map(inst, w0=10, sigma=sigma)
    # same cut-off: identical up to float32 rounding
    np.testing.assert_allclose(got, reference_weight_map(inst, 10, sigma, wc, cutoff), rtol=1e-6, atol=1e-6)
    # no cut-off: the neglected part is below 1e-4 * w0
    full = reference_weight_map(inst, 10, sigma, wc)
    assert np.abs(got - full).max() <= 1e-4 * 10
    np.testing.assert_allclose(unet_weight_map(inst, w0=10, sigma=sigma, max_distance=math.inf), full,
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("max_distance", [2.0, 5.5, 9.0])
def test_explicit_cut_off_matches_reference(max_distance):
    inst = random_instances(42, count=9)
    got = unet_weight_map(inst, w0=5, sigma=4, class_weights=None, max_distance=max_distance)
    np.testing.assert_allclose(got, reference_weight_map(inst, 5, 4, (1, 1), max_distance), rtol=1e-6, atol=1e-6)


def test_default_cut_off_neglects_less_than_1e4_of_w0():
    for sigma in (0.5, 5.0, 12.0):
        t = default_max_distance(sigma)
        assert math.exp(-t**2 / (2 * sigma**2)) == pytest.approx(1e-4)
    assert default_max_distance(5.0) == pytest.approx(21.46, abs=0.01)


# --- properties ----------------------------------------------------------------------------------------------------

def test_no_border_term_with_fewer_than_two_objects():
    empty = np.zeros((6, 7), dtype=np.int32)
    np.testing.assert_array_equal(unet_weight_map(empty), 1.0)  # only background: balanced weight 1
    one = empty.copy()
    one[2:4, 2:5] = 4
    w = unet_weight_map(one, class_weights=None)
    np.testing.assert_array_equal(w, 1.0)
    wb = unet_weight_map(one)  # 6 object pixels, 36 background: w_object = 6, w_background = 1
    np.testing.assert_array_equal(wb, np.where(one > 0, 6.0, 1.0))
    everything = np.full((3, 3), 2, dtype=np.int32)
    np.testing.assert_array_equal(unet_weight_map(everything), 1.0)


@pytest.mark.parametrize("seed", range(4))
def test_weights_at_least_class_weights_and_border_only_on_background(seed):
    inst = random_instances(seed, count=10)
    wc = class_balance_weights(inst > 0, 2)
    wc_map = wc[(inst > 0).astype(int)]
    w = unet_weight_map(inst, w0=10, sigma=3)
    assert (w >= wc_map.astype(np.float32)).all()
    np.testing.assert_array_equal(w[inst > 0], wc_map[inst > 0].astype(np.float32))
    assert (w <= wc_map + 10 + 1e-5).all()
    assert (w[inst == 0] > wc_map[inst == 0]).any()


def test_symmetry_flips_transpose_and_relabelling():
    inst = random_instances(3, height=25, width=25, count=8)
    w = unet_weight_map(inst, sigma=2.5)
    np.testing.assert_allclose(unet_weight_map(inst.T, sigma=2.5), w.T, atol=1e-6)
    np.testing.assert_allclose(unet_weight_map(inst[::-1, ::-1], sigma=2.5), w[::-1, ::-1], atol=1e-6)
    ids = np.unique(inst)[1:]
    permuted = np.zeros_like(inst)
    for old, new in zip(ids, np.random.default_rng(0).permutation(ids) + 100):
        permuted[inst == old] = new
    np.testing.assert_allclose(unet_weight_map(permuted, sigma=2.5), w, atol=1e-6)
    # mirror-symmetric input -> mirror-symmetric map
    sym = np.zeros((7, 11), dtype=np.int32)
    sym[2:5, 1:4], sym[2:5, 7:10] = 1, 2
    ws = unet_weight_map(sym, sigma=2)
    np.testing.assert_allclose(ws, ws[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(ws, ws[::-1, :], atol=1e-6)


def test_huge_sparse_ids_are_relabelled():
    inst = random_instances(5, count=6).astype(np.int64)
    ids = np.unique(inst)[1:]
    sparse = inst.copy()
    for k, old in enumerate(ids):
        sparse[inst == old] = 10**12 + 7 * k
    np.testing.assert_array_equal(unet_weight_map(sparse), unet_weight_map(inst))


def test_dtypes_and_shape():
    inst = random_instances(1, height=12, width=17, count=4)
    ref = unet_weight_map(inst)
    assert ref.dtype == np.float32 and ref.shape == (12, 17)
    for dtype in (np.uint8, np.uint16, np.uint32, np.int16, np.int64, np.uint64, np.float32, np.float64):
        got = unet_weight_map(inst.astype(dtype))
        assert got.dtype == np.float32 and got.shape == (12, 17)
        np.testing.assert_array_equal(got, ref)
    binary = unet_weight_map(inst > 0)  # bool: every object pixel has label 1
    assert binary.dtype == np.float32 and binary.shape == (12, 17)
    assert unet_weight_map(np.zeros((0, 5), dtype=np.int32)).shape == (0, 5)


def test_fast_on_a_large_image_with_many_objects():
    rng = np.random.default_rng(0)
    inst = np.zeros((512, 512), dtype=np.int32)
    yy, xx = np.mgrid[:512, :512]
    for label, (r, c) in enumerate(rng.uniform(10, 502, size=(100, 2)), start=1):
        inst[((yy - r) ** 2 + (xx - c) ** 2 < rng.uniform(36, 196)) & (inst == 0)] = label
    start = time.perf_counter()
    w = unet_weight_map(inst)
    assert time.perf_counter() - start < 2.0  # about 15 ms on one core; generous for loaded machines
    assert w.max() > 1


# --- class balance weights -----------------------------------------------------------------------------------------

def test_class_balance_weights_by_hand():
    np.testing.assert_allclose(class_balance_weights(np.array([0, 0, 0, 1]), 2), [1.0, 3.0])
    np.testing.assert_allclose(class_balance_weights(np.array([[0, 1], [1, 1]]), 2), [3.0, 1.0])
    np.testing.assert_allclose(class_balance_weights(np.array([0, 1, 1, 2, 2, 2]), 3), [3.0, 1.5, 1.0])
    np.testing.assert_allclose(class_balance_weights(np.array([0, 0, 1]), 3), [1.0, 2.0, 1.0])  # absent -> 1
    np.testing.assert_allclose(class_balance_weights(np.array([True, False, False, False]), 2), [1.0, 3.0])
    np.testing.assert_allclose(class_balance_weights(np.zeros(0, dtype=int), 2), [1.0, 1.0])
    out = class_balance_weights(np.array([0, 1]), 2)
    assert out.dtype == np.float64 and out.shape == (2,)


def test_class_balance_weights_errors():
    with pytest.raises(ValueError, match="found 2"):
        class_balance_weights(np.array([0, 1, 2]), 2)
    with pytest.raises(ValueError, match="found -1"):
        class_balance_weights(np.array([0, -1]), 2)
    with pytest.raises(ValueError, match="num_classes"):
        class_balance_weights(np.array([0]), 0)
    with pytest.raises(TypeError, match="float64"):
        class_balance_weights(np.array([0.0, 1.0]), 2)


# --- input errors --------------------------------------------------------------------------------------------------

def test_bad_inputs_name_the_value():
    good = np.zeros((4, 4), dtype=np.int32)
    with pytest.raises(ValueError, match=r"non-integer value 1\.5"):
        unet_weight_map(np.array([[0.0, 1.5], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="nan"):
        unet_weight_map(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="found label -3"):
        unet_weight_map(np.array([[0, -3], [1, 2]]))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 3\)"):
        unet_weight_map(np.zeros((2, 2, 3), dtype=np.int32))
    with pytest.raises(TypeError, match="complex"):
        unet_weight_map(np.zeros((2, 2), dtype=np.complex64))
    for sigma in (0, -2.5, math.nan, math.inf):
        with pytest.raises(ValueError, match=rf"sigma must be .*got {sigma!r}"):
            unet_weight_map(good, sigma=sigma)
    with pytest.raises(TypeError, match="sigma must be a number, got 'wide'"):
        unet_weight_map(good, sigma="wide")
    with pytest.raises(ValueError, match=r"w0 .*got -1"):
        unet_weight_map(good, w0=-1)
    with pytest.raises(ValueError, match=r"max_distance .*got 0"):
        unet_weight_map(good, max_distance=0)
    with pytest.raises(ValueError, match="'median'"):
        unet_weight_map(good, class_weights="median")
    with pytest.raises(ValueError, match=r"\[1, 2, 3\]"):
        unet_weight_map(good, class_weights=[1, 2, 3])
    with pytest.raises(ValueError, match=r"-1"):
        unet_weight_map(good, class_weights=[1, -1])
