"""Boundary metrics: Hausdorff distance and HD95 between mask boundaries."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import hausdorff_distance as sk_hausdorff

from unetseg.metrics import hausdorff_distance, hausdorff_per_class, mask_boundary


def test_mask_boundary():
    square = np.zeros((6, 6), dtype=np.uint8)
    square[1:5, 1:5] = 255
    b = mask_boundary(square)
    assert b.sum() == 12 and not b[2:4, 2:4].any()  # the 4x4 square's ring, not its 2x2 inside
    # the image edge counts as outside: a full mask has its frame as boundary
    full = mask_boundary(np.ones((4, 5), bool))
    assert full.sum() == 4 * 5 - 2 * 3 and not full[1:3, 1:4].any()
    # a 3x3 square with bumps at (0,2) and (2,0): with 4-neighbours (1,2), (2,1) and (2,2) are inside (8 of 11
    # on the boundary); with 8-neighbours (1,2) and (2,1) touch the outside diagonally, only (2,2) is inside
    plus = np.zeros((5, 5), bool)
    plus[1:4, 1:4] = True
    plus[0, 2] = plus[2, 0] = True
    assert mask_boundary(plus).sum() == 8 and mask_boundary(plus, connectivity=2).sum() == 10


def test_hausdorff_agrees_with_skimage_on_boundaries():
    rng = np.random.default_rng(0)
    for _ in range(6):
        a = ndimage.gaussian_filter(rng.random((40, 36)), 3) > 0.5
        b = ndimage.gaussian_filter(rng.random((40, 36)), 3) > 0.5
        expected = sk_hausdorff(mask_boundary(a), mask_boundary(b))
        assert hausdorff_distance(a, b) == pytest.approx(expected)
        assert hausdorff_distance(b, a) == pytest.approx(expected)  # symmetric
        assert hausdorff_distance(a, b, percentile=95) <= expected + 1e-12


def test_hd95_by_hand():
    true = np.zeros((5, 10), dtype=bool)
    true[0, :] = True  # a 1-pixel-high bar: all 10 pixels are boundary
    pred = true.copy()
    pred[4, 0] = True  # plus an isolated pixel 4 rows below the bar
    # pred -> true: 10 zeros and 4 (sorted, 11 values); true -> pred: 10 zeros
    # 95th percentile (linear): position 0.95 * (11 - 1) = 9.5, halfway between 0 and 4 -> 2
    assert hausdorff_distance(pred, true) == 4.0
    assert hausdorff_distance(pred, true, percentile=95) == pytest.approx(2.0)
    assert hausdorff_distance(pred, true, percentile=90) == pytest.approx(0.0)  # position 9.0 -> 0
    # (pooling both directions as MedPy does would give position 0.95 * 20 = 19 -> 0)
    # anisotropic pixels: rows 2 units apart
    assert hausdorff_distance(pred, true, spacing=(2.0, 1.0)) == 8.0
    assert hausdorff_distance(pred, true, percentile=95, spacing=(2.0, 1.0)) == pytest.approx(4.0)


def test_empty_masks_and_errors():
    empty = np.zeros((4, 4), dtype=bool)
    one = empty.copy()
    one[1, 1] = True
    assert hausdorff_distance(empty, empty) == 0.0
    assert hausdorff_distance(empty, one) == math.inf == hausdorff_distance(one, empty, percentile=95)
    assert hausdorff_distance(one, one) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        hausdorff_distance(one, one[:2])
    with pytest.raises(ValueError, match="percentile"):
        hausdorff_distance(one, one, percentile=101)


def test_hausdorff_per_class():
    true = np.array([[1, 1, 0, 2, 2]])
    pred = np.array([[1, 0, 0, 0, 2]])
    # class 0: pred {1,2,3}, true {2}: boundaries = the sets (1 pixel high); 1 -> 2 is 1 away, 3 -> 2 is 1 -> 1
    # class 1: {0} vs {0, 1} -> 1; class 2: {4} vs {3, 4} -> 1; class 3: absent from both -> 0
    assert hausdorff_per_class(pred, true, 4) == [1.0, 1.0, 1.0, 0.0]
    assert hausdorff_distance(pred != 0, true != 0) == 1.0
