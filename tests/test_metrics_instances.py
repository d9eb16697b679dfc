"""Instance metrics: IoU matrix, matching, DSB 2018 average precision, F1 and AJI, checked by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from unetseg.metrics import (
    DSB_THRESHOLDS,
    aggregated_jaccard_index,
    as_instances,
    average_precision,
    f1_at,
    instance_iou_matrix,
    instance_metrics,
    match_instances,
)


def row(*segments: tuple[int, int, int], width: int = 30) -> np.ndarray:
    """A (1, width) label image; each segment (label, first column, last column) inclusive."""
    out = np.zeros((1, width), dtype=np.int64)
    for label, a, b in segments:
        out[0, a:b + 1] = label
    return out


# True objects A (cols 0-9), B (12-21), C (24-27); predictions a, b, c:
#   a = cols 0-9   -> IoU(A, a) = 10 / 10 = 1
#   b = cols 12-19 -> IoU(B, b) = 8 / 10 = 0.8
#   c = cols 26-29 -> IoU(C, c) = |26-27| / |24-29| = 2 / 6 = 1/3
TRUE = row((1, 0, 9), (2, 12, 21), (3, 24, 27))
PRED = row((1, 0, 9), (2, 12, 19), (3, 26, 29))


def test_iou_matrix_by_hand():
    np.testing.assert_allclose(instance_iou_matrix(PRED, TRUE), [[1, 0, 0], [0, 0.8, 0], [0, 0, 1 / 3]])
    # rows = true ids, columns = predicted ids, both in increasing id order
    assert instance_iou_matrix(PRED[:, :22], TRUE[:, :22]).shape == (2, 2)
    assert instance_iou_matrix(np.zeros((1, 3), int), TRUE[:, :3]).shape == (1, 0)


def test_iou_matrix_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        true = rng.integers(0, 6, size=(12, 14)) * rng.integers(0, 2, size=(12, 14))
        pred = rng.choice([0, 3, 17, 400, 65535], size=(12, 14))  # sparse, large ids
        t_ids, p_ids = np.unique(true[true > 0]), np.unique(pred[pred > 0])
        expected = np.array([[((true == i) & (pred == j)).sum() / ((true == i) | (pred == j)).sum()
                              for j in p_ids] for i in t_ids])
        np.testing.assert_allclose(instance_iou_matrix(pred, true), expected)
    huge = np.array([[0, 2**40, 2**40], [5, 5, 0]])  # ids beyond a look-up table
    np.testing.assert_allclose(instance_iou_matrix(huge, huge), np.eye(2))


def test_dsb_average_precision_by_hand():
    # t = 0.5 ... 0.75 (6 thresholds): A-a and B-b match, c and C do not -> TP 2, FP 1, FN 1 -> 2 / 4 = 0.5
    # t = 0.8 ... 0.95 (4 thresholds): IoU 0.8 is not above 0.8 -> TP 1, FP 2, FN 2 -> 1 / 5 = 0.2
    # AP = (6 * 0.5 + 4 * 0.2) / 10 = 0.38
    ap = average_precision(PRED, TRUE)
    assert ap["thresholds"] == list(DSB_THRESHOLDS) == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert ap["ap_per_threshold"] == pytest.approx([0.5] * 6 + [0.2] * 4)
    assert ap["tp"] == [2] * 6 + [1] * 4 and ap["fp"] == [1] * 6 + [2] * 4 and ap["fn"] == ap["fp"]
    assert ap["ap"] == pytest.approx(0.38)
    # np.arange(0.5, 1.0, 0.05) drifts (0.8000000000000003); rounding gives the same result
    assert average_precision(PRED, TRUE, np.arange(0.5, 1.0, 0.05)) == ap


def test_match_and_f1_by_hand():
    m = match_instances(PRED, TRUE, 0.5)
    assert (m["tp"], m["fp"], m["fn"], m["n_true"], m["n_pred"]) == (2, 1, 1, 3, 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 2 / (3 + 3))
    assert m["dsb_precision"] == pytest.approx(0.5)
    assert m["mean_matched_iou"] == pytest.approx((1 + 0.8) / 2)
    assert f1_at(PRED, TRUE, 0.5) == pytest.approx(2 / 3)
    # below 0.5 C-c (IoU 1/3) matches too
    low = match_instances(PRED, TRUE, 0.3)
    assert low["tp"] == 3 and low["mean_matched_iou"] == pytest.approx((1 + 0.8 + 1 / 3) / 3)
    with pytest.raises(ValueError):
        match_instances(PRED, TRUE, 1.0)


def test_low_threshold_assignment_maximises_matches():
    # X = cols 0-19 (20 px), Y = cols 20-29 (10 px); p1 = cols 6-25 (20 px), p2 = cols 0-3 (4 px)
    # IoU(X, p1) = 14 / 26, IoU(Y, p1) = 6 / 24 = 0.25, IoU(X, p2) = 4 / 20 = 0.2, IoU(Y, p2) = 0
    true = row((1, 0, 19), (2, 20, 29))
    pred = row((1, 6, 25), (2, 0, 3))
    np.testing.assert_allclose(instance_iou_matrix(pred, true), [[14 / 26, 0.2], [0.25, 0]])
    # At t = 0.15 X-p1 alone (1 match, IoU sum 0.54) loses to X-p2 + Y-p1 (2 matches, IoU sum 0.45).
    m = match_instances(pred, true, 0.15)
    assert m["tp"] == 2 and m["mean_matched_iou"] == pytest.approx((0.2 + 0.25) / 2)
    # At t = 0.5 only X-p1 passes.
    assert match_instances(pred, true, 0.5)["tp"] == 1


def test_matches_are_unique_above_one_half():
    rng = np.random.default_rng(1)
    for _ in range(10):
        true = rng.integers(0, 8, size=(10, 10))
        pred = np.where(rng.random((10, 10)) < 0.8, true, rng.integers(0, 8, size=(10, 10)))
        iou = instance_iou_matrix(pred, true)
        passing = iou > 0.5
        assert passing.sum(axis=0).max(initial=0) <= 1 and passing.sum(axis=1).max(initial=0) <= 1
        rows, cols = linear_sum_assignment(passing, maximize=True)
        assert match_instances(pred, true, 0.5)["tp"] == passing[rows, cols].sum() == passing.sum()


def test_permutation_invariance():
    rng = np.random.default_rng(2)
    true = rng.integers(0, 6, size=(16, 16))
    pred = np.where(rng.random((16, 16)) < 0.7, true, rng.integers(0, 6, size=(16, 16)))
    perm_t = np.array([0, 40, 3, 9, 1000, 2])  # 0 stays background, ids need not be consecutive
    perm_p = np.array([0, 5, 4, 3, 2, 1])
    ref = instance_metrics(pred, true)
    assert instance_metrics(perm_p[pred], perm_t[true]) == ref
    assert aggregated_jaccard_index(perm_p[pred], perm_t[true]) == pytest.approx(ref["aji"])
    assert match_instances(perm_p[pred], perm_t[true], 0.2)["tp"] == match_instances(pred, true, 0.2)["tp"]


def test_perfect_and_disjoint():
    m = instance_metrics(TRUE, TRUE)
    assert m["ap"] == m["ap_50"] == m["f1_50"] == m["aji"] == 1.0 and m["fp_50"] == m["fn_50"] == 0
    disjoint = row((1, 10, 11), (2, 22, 23), (3, 28, 29))  # no pixel shared with A, B or C
    m = instance_metrics(disjoint, TRUE)
    assert m["ap"] == m["ap_50"] == m["f1_50"] == m["aji"] == 0.0 and (m["tp_50"], m["fp_50"], m["fn_50"]) == (0, 3, 3)


def test_aji_by_hand():
    # AJI = C / U (Kumar et al. 2017)
    # true A (cols 0-3), B (4-7), C (13-14); pred p (0-7) covers A and B, q (10-11) overlaps nothing
    # A -> p: I 4, U 8; B -> p: I 4, U 8 (p may be taken twice); C overlaps nothing: U += 2; q unused: U += 2
    # AJI = (4 + 4) / (8 + 8 + 2 + 2) = 0.4
    true = row((1, 0, 3), (2, 4, 7), (3, 13, 14))
    pred = row((1, 0, 7), (2, 10, 11))
    assert aggregated_jaccard_index(pred, true) == pytest.approx(0.4)
    # the three-object example: I = 10 + 8 + 2, U = 10 + 10 + 6 -> 20 / 26
    assert aggregated_jaccard_index(PRED, TRUE) == pytest.approx(10 / 13)
    assert instance_metrics(PRED, TRUE)["aji"] == pytest.approx(10 / 13)


def test_empty_image_conventions():
    empty = np.zeros((4, 4), dtype=np.uint16)
    one = empty.copy()
    one[1:3, 1:3] = 7
    m = instance_metrics(empty, empty)
    assert m["ap"] == m["ap_50"] == m["f1_50"] == m["aji"] == 1.0
    assert math.isnan(m["precision_50"]) and math.isnan(m["recall_50"]) and math.isnan(m["mean_matched_iou_50"])
    assert math.isnan(average_precision(empty, empty, empty=math.nan)["ap"])
    assert math.isnan(aggregated_jaccard_index(empty, empty, empty=math.nan))
    missed = instance_metrics(empty, one)  # nothing predicted
    assert missed["ap"] == missed["f1_50"] == missed["aji"] == missed["recall_50"] == 0.0
    assert math.isnan(missed["precision_50"]) and missed["fn_50"] == 1
    spurious = instance_metrics(one, empty)  # nothing to find
    assert spurious["ap"] == spurious["f1_50"] == spurious["aji"] == spurious["precision_50"] == 0.0
    assert math.isnan(spurious["recall_50"]) and spurious["fp_50"] == 1


def test_binary_masks_become_connected_components():
    mask = np.array([[1, 1, 0, 1],
                     [0, 0, 0, 1],
                     [1, 0, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(as_instances(mask), [[1, 1, 0, 2], [0, 0, 0, 2], [3, 0, 2, 2]])
    assert as_instances(mask, connectivity=2).max() == 3  # (2,0) touches nothing diagonally either
    labels = np.array([[1, 1, 0, 2], [0, 0, 0, 2], [3, 0, 2, 2]])
    assert instance_metrics(mask, labels)["ap"] == 1.0  # a bool prediction is split into components
    with pytest.raises(TypeError):
        as_instances(mask.astype(float))
    with pytest.raises(ValueError, match="shapes differ"):
        instance_iou_matrix(labels, labels[:, :2])
