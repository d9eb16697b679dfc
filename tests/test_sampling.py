"""Foreground oversampling of patch origins."""

from __future__ import annotations

import numpy as np
import pytest

from unetseg.data.sampling import class_locations, sample_patch_origin


def sparse_labels() -> np.ndarray:
    labels = np.zeros((120, 150), np.int64)
    labels[10:30, 100:140] = 1  # a larger object
    labels[90, 20] = labels[91, 20] = labels[90, 21] = 2  # a rare class: 3 pixels
    return labels


def contains(labels: np.ndarray, top: int, left: int, size: int, value: int | None = None) -> bool:
    h, w = labels.shape
    window = labels[max(top, 0) : min(top + size, h), max(left, 0) : min(left + size, w)]
    return bool((window > 0).any() if value is None else (window == value).any())


def test_class_locations() -> None:
    labels = sparse_labels()
    locs = class_locations(labels)
    assert sorted(locs) == [0, 1, 2]
    assert sorted(map(tuple, locs[2].tolist())) == [(90, 20), (90, 21), (91, 20)]
    assert len(locs[1]) == 800 and (labels[locs[1][:, 0], locs[1][:, 1]] == 1).all()
    capped = class_locations(labels, max_per_class=100, rng=np.random.default_rng(1))
    assert len(capped[0]) == 100 and len(capped[1]) == 100 and len(capped[2]) == 3
    assert (labels[capped[0][:, 0], capped[0][:, 1]] == 0).all()


@pytest.mark.parametrize("size", [32, 200])
def test_full_foreground_fraction_always_hits_foreground(size: int) -> None:
    labels = sparse_labels()
    locs = class_locations(labels)
    rng = np.random.default_rng(0)
    h, w = labels.shape
    for _ in range(300):
        top, left = sample_patch_origin(labels, size, rng, foreground_fraction=1.0, locations=locs)
        assert min(0, h - size) <= top <= max(0, h - size) and min(0, w - size) <= left <= max(0, w - size)
        assert contains(labels, top, left, size)


def test_zero_fraction_is_the_uniform_convention() -> None:
    labels = sparse_labels()
    size = 32
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    tops = []
    for _ in range(3000):
        origin = sample_patch_origin(labels, size, a, foreground_fraction=0.0)
        # exactly PatchDataset's draws
        expected = (int(b.integers(0, 120 - size + 1)), int(b.integers(0, 150 - size + 1)))
        assert origin == expected
        tops.append(origin[0])
    counts = np.bincount(tops, minlength=120 - size + 1)
    assert len(counts) == 89 and counts.min() > 0
    chi2 = ((counts - 3000 / 89) ** 2 / (3000 / 89)).sum()
    assert chi2 < 140  # 88 degrees of freedom: p < 1e-3 above about 130


def test_rare_class_appears_in_about_the_requested_fraction() -> None:
    labels = np.zeros((256, 256), np.int64)
    labels[200, 50] = labels[201, 50] = 1  # the only foreground: two pixels
    locs = class_locations(labels)
    size = 32
    baseline = (size / (256 - size + 1)) ** 2  # chance that a uniform patch contains it, roughly
    for fraction in (0.1, 0.33, 0.7):
        rng = np.random.default_rng(int(fraction * 100))
        n = 2000
        hits = sum(contains(labels, *sample_patch_origin(labels, size, rng, fraction, locations=locs), size, 1)
                   for _ in range(n))
        expected = fraction + (1 - fraction) * baseline
        assert abs(hits / n - expected) < 4 * np.sqrt(expected * (1 - expected) / n) + 0.01


def test_classes_are_chosen_equally_and_can_be_restricted() -> None:
    labels = sparse_labels()
    locs = class_locations(labels)
    rng = np.random.default_rng(2)
    n = 2000
    rare = sum(contains(labels, *sample_patch_origin(labels, 24, rng, 1.0, locations=locs), 24, 2) for _ in range(n))
    assert 0.45 < rare / n < 0.6  # half of the draws pick class 2 (plus rare accidental hits)
    only_big = [sample_patch_origin(labels, 24, rng, 1.0, classes=[1], locations=locs) for _ in range(200)]
    assert all(contains(labels, t, l, 24, 1) for t, l in only_big)
    # no candidate class present: falls back to uniform
    empty = np.zeros((50, 50), np.int64)
    assert sample_patch_origin(empty, 20, np.random.default_rng(0), 1.0) == sample_patch_origin(
        empty, 20, np.random.default_rng(0), 1.0
    )
    with pytest.raises(ValueError, match="foreground_fraction"):
        sample_patch_origin(empty, 20, rng, 1.5)


def test_the_ignore_value_is_never_a_patch_centre():
    """Cells marked "not annotated" (255) are no foreground to oversample: with foreground_fraction 1 every patch
    is centred near the one annotated object, none near the ignored one."""
    from unetseg.data.patches import PatchDataset

    labels = np.zeros((96, 96), np.uint8)
    labels[4:12, 4:12] = 1  # annotated cell, top left
    labels[84:92, 84:92] = 255  # unannotated cell, bottom right
    image = np.zeros((1, 96, 96), np.float32)
    with_ignore = PatchDataset([image], [labels], 16, 16, 40, augment=False, foreground_fraction=1.0,
                               ignore_index=255)
    without = PatchDataset([image], [labels], 16, 16, 40, augment=False, foreground_fraction=1.0)
    patches = [with_ignore[i][1].numpy() for i in range(40)]
    assert all((p == 1).any() and not (p == 255).any() for p in patches)
    assert any((without[i][1].numpy() == 255).any() for i in range(40))  # the difference is the option
