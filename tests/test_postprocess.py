"""Tests for unetseg.inference.postprocess."""

from __future__ import annotations

import numpy as np
import pytest

from unetseg.inference.postprocess import fill_holes, instances_from_semantic, remove_small_objects


def disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


@pytest.mark.parametrize("radius", [6, 12, 25])
def test_touching_discs_one_component_two_watershed_instances(radius: int) -> None:
    size = 6 * radius
    mask = disc((size, size), 3 * radius, 2 * radius, radius) | disc((size, size), 3 * radius, 3.6 * radius, radius)
    components = instances_from_semantic(mask, "components")
    assert components.max() == 1
    split = instances_from_semantic(mask, "watershed")
    assert split.max() == 2
    assert np.array_equal(split > 0, mask)
    # each instance lies around its own centre
    assert split[3 * radius, 2 * radius] != split[3 * radius, round(3.6 * radius)]


def test_probability_input_is_thresholded() -> None:
    prob = np.zeros((40, 40), np.float32)
    prob[5:15, 5:15] = 0.9
    prob[20:30, 20:30] = 0.4
    labels = instances_from_semantic(prob, threshold=0.5)
    assert labels.max() == 1 and labels[10, 10] == 1 and labels[25, 25] == 0
    assert instances_from_semantic(prob, threshold=0.3).max() == 2


def test_separate_objects_same_in_both_methods() -> None:
    mask = disc((80, 80), 20, 20, 8) | disc((80, 80), 55, 50, 12) | disc((80, 80), 15, 65, 5)
    a = instances_from_semantic(mask, "components")
    b = instances_from_semantic(mask, "watershed")
    assert a.max() == 3
    assert np.array_equal(a, b)


def test_instances_min_size_and_dtype() -> None:
    mask = disc((60, 60), 20, 20, 8)
    mask[50:52, 50:52] = True
    labels = instances_from_semantic(mask, "watershed", min_size=10, dtype=np.uint16)
    assert labels.dtype == np.uint16 and labels.max() == 1 and labels[51, 51] == 0
    assert instances_from_semantic(mask).dtype == np.int32
    with pytest.raises(ValueError):
        instances_from_semantic(np.ones((3, 3), bool), method="nope")  # type: ignore[arg-type]


def test_too_many_instances_for_dtype() -> None:
    checker = np.zeros((2, 600), bool)
    checker[0, ::2] = True
    with pytest.raises(ValueError):
        instances_from_semantic(checker, dtype=np.uint8)


@pytest.mark.parametrize("method", ["components", "watershed"])
def test_empty_input(method: str) -> None:
    labels = instances_from_semantic(np.zeros((16, 16), np.float32), method)  # type: ignore[arg-type]
    assert labels.shape == (16, 16) and labels.max() == 0 and labels.dtype == np.int32
    assert instances_from_semantic(np.zeros((0, 0), bool), method).shape == (0, 0)  # type: ignore[arg-type]
    assert remove_small_objects(np.zeros((5, 5), bool), 3).sum() == 0
    assert fill_holes(np.zeros((5, 5), np.uint8)).sum() == 0
    assert fill_holes(np.zeros((5, 5), bool)).sum() == 0


def test_remove_small_objects_mask() -> None:
    mask = np.zeros((20, 20), bool)
    mask[2:8, 2:8] = True  # 36 px
    mask[12:14, 12:14] = True  # 4 px
    out = remove_small_objects(mask, 5)
    assert out.dtype == bool
    assert out[2:8, 2:8].all() and not out[12:14, 12:14].any()
    assert mask[12:14, 12:14].all()  # input untouched
    # diagonal neighbours are separate objects with connectivity 1 but one with connectivity 2
    diag = np.zeros((6, 6), bool)
    diag[1, 1] = diag[2, 2] = diag[3, 3] = True
    assert remove_small_objects(diag, 2).sum() == 0
    assert remove_small_objects(diag, 2, connectivity=2).sum() == 3


def test_remove_small_objects_per_class() -> None:
    classes = np.zeros((20, 20), np.uint8)
    classes[2:8, 2:8] = 1
    classes[2:8, 8:9] = 2  # 6 px of class 2 touching class 1: small on its own
    classes[12:18, 12:18] = 2
    classes[15, 2] = 1
    out = remove_small_objects(classes, 10)
    assert out.dtype == np.uint8
    assert (out[2:8, 2:8] == 1).all() and (out[12:18, 12:18] == 2).all()
    assert (out[2:8, 8] == 0).all() and out[15, 2] == 0


def test_remove_small_objects_instances() -> None:
    labels = np.zeros((20, 20), np.int32)
    labels[0:5, 0:5] = 7
    labels[10:12, 10:12] = 3
    labels[0:1, 19:20] = 7  # disconnected part of 7 is counted with it
    out = remove_small_objects(labels, 10, instances=True)
    assert set(np.unique(out)) == {0, 7} and out[0, 19] == 7


def test_fill_holes_mask_and_classes() -> None:
    ring = disc((30, 30), 15, 15, 10) & ~disc((30, 30), 15, 15, 4)
    filled = fill_holes(ring)
    assert filled.dtype == bool and np.array_equal(filled, disc((30, 30), 15, 15, 10))
    classes = np.zeros((30, 60), np.uint16)
    classes[:, :30][ring] = 1
    classes[:, 30:][ring] = 2
    classes[15, 45] = 1  # a class-1 pixel inside the class-2 hole is kept
    out = fill_holes(classes)
    assert out.dtype == np.uint16
    assert (out[:, :30][disc((30, 30), 15, 15, 10)] == 1).all()
    assert out[15, 45] == 1 and out[15, 44] == 2
    assert (out[~np.concatenate([filled, filled], axis=1)] == 0).all()
    with pytest.raises(TypeError):
        fill_holes(np.zeros((3, 3), np.float32))
