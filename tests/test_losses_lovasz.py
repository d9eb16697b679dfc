"""Lovasz losses against a brute-force Lovasz extension of the Jaccard loss, computed from its definition."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from unetseg.losses import LovaszLoss, lovasz_hinge, lovasz_loss, lovasz_softmax
from unetseg.losses.lovasz import lovasz_extension


def jaccard_of_sets(mistakes: set[int], truth: set[int]) -> float:
    """Jaccard loss of a set of mispredicted pixels: |M| / |G ∪ M| (0 for no mistakes)."""
    return len(mistakes) / len(truth | mistakes) if mistakes else 0.0


def extension_by_definition(errors: list[float], truth: set[int]) -> float:
    """Lovasz extension for non-negative errors as the integral of Jaccard(level set {i: m_i >= t}) over t >= 0.

    The level set only changes at the distinct error values, so the integral is a finite sum of
    (step length) * (Jaccard loss of the level set).
    """
    total, previous = 0.0, 0.0
    for level in sorted({e for e in errors if e > 0}):
        total += (level - previous) * jaccard_of_sets({i for i, e in enumerate(errors) if e >= level}, truth)
        previous = level
    return total


def softmax_by_definition(logits, target, classes="present", ignore=None):
    """Mean over the chosen classes of the extension at |1{y = c} - p_c| over the counted pixels (one set)."""
    probs = torch.softmax(logits.double(), 1).movedim(1, -1).reshape(-1, logits.shape[1]).tolist()
    labels = target.reshape(-1).tolist()
    keep = [i for i, y in enumerate(labels) if y != ignore]
    probs, labels = [probs[i] for i in keep], [labels[i] for i in keep]
    chosen = sorted(set(labels)) if classes == "present" else range(logits.shape[1]) if classes == "all" else classes
    losses = []
    for c in chosen:
        truth = {i for i, y in enumerate(labels) if y == c}
        losses.append(extension_by_definition([abs((y == c) - p[c]) for y, p in zip(labels, probs)], truth))
    return sum(losses) / len(losses)


def hinge_by_definition(logits, target):
    """The extension at the hinge errors max(0, 1 - x * sign) for the foreground set (one set)."""
    x, y = logits.reshape(-1).tolist(), target.reshape(-1).tolist()
    errors = [max(0.0, 1.0 - xi * (2 * yi - 1)) for xi, yi in zip(x, y)]
    return extension_by_definition(errors, {i for i, yi in enumerate(y) if yi == 1})


def test_extension_equals_the_jaccard_loss_on_sets():
    n = 5
    for truth in ({0, 3}, set(), {0, 1, 2, 3, 4}):
        gt = torch.tensor([float(i in truth) for i in range(n)])
        for size in range(n + 1):
            for subset in itertools.combinations(range(n), size):
                indicator = torch.tensor([float(i in subset) for i in range(n)])
                value = float(lovasz_extension(indicator, gt))
                assert value == pytest.approx(jaccard_of_sets(set(subset), truth)), (truth, subset)


def test_extension_matches_the_integral_definition():
    gen = torch.Generator().manual_seed(0)
    for trial in range(30):
        n = 1 + trial % 7
        errors = torch.rand(n, generator=gen, dtype=torch.float64)
        if trial % 3 == 0:  # ties and zeros
            errors = (errors * 3).round() / 3
        gt = (torch.rand(n, generator=gen) < 0.5).double()
        truth = {i for i in range(n) if gt[i] > 0}
        assert float(lovasz_extension(errors, gt)) == pytest.approx(extension_by_definition(errors.tolist(), truth))


def test_gradient_is_the_derivative_of_the_extension():
    errors = torch.tensor([0.9, 0.2, 0.5, 0.7, 0.1], dtype=torch.float64, requires_grad=True)
    gt = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    lovasz_extension(errors, gt).backward()
    truth, eps = {0, 2}, 1e-6
    for i in range(5):
        moved = errors.detach().clone()
        moved[i] += eps
        numeric = (extension_by_definition(moved.tolist(), truth)
                   - extension_by_definition(errors.tolist(), truth)) / eps
        assert float(errors.grad[i]) == pytest.approx(numeric, abs=1e-5)


def test_hinge_by_hand():
    # logits (0, 0.5), target (1, 0): signs (+1, -1), margins (0, -0.5), errors (1, 1.5), G = {pixel 0}.
    # decreasing errors: pixel 1 (1.5), pixel 0 (1). Jaccard: {1} -> 1 / |{0, 1}| = 1/2, {1, 0} -> 2/2 = 1
    # loss = 1.5 * (1/2 - 0) + 1 * (1 - 1/2) = 1.25
    logits = torch.tensor([0.0, 0.5]).reshape(1, 1, 1, 2)
    assert float(lovasz_hinge(logits, torch.tensor([[[1, 0]]]))) == pytest.approx(1.25)


def test_softmax_by_hand():
    # pixel 0: logits (0, 0) -> p (0.5, 0.5), class 0; pixel 1: logits (0, ln 3) -> p (0.25, 0.75), class 1.
    # class 0: G = {0}, errors (0.5, 0.25): {0} -> 1/1, {0, 1} -> 2/2: loss 0.5 * 1 + 0.25 * 0 = 0.5
    # class 1: G = {1}, errors (0.5, 0.25): {0} -> 1/|{0, 1}| = 1/2, {0, 1} -> 1: loss 0.5 * 0.5 + 0.25 * 0.5
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]]).T.reshape(1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    assert float(lovasz_softmax(logits, target)) == pytest.approx((0.5 + 0.375) / 2)
    assert float(lovasz_softmax(logits, target, classes=[1])) == pytest.approx(0.375)


@pytest.mark.parametrize("classes", ["present", "all", [0, 2]])
def test_softmax_matches_brute_force(classes):
    torch.manual_seed(1)
    logits, target = torch.randn(2, 4, 3, 3) * 2, torch.randint(0, 3, (2, 3, 3))  # class 3 never present
    expected = softmax_by_definition(logits, target, classes)
    assert float(lovasz_softmax(logits, target, classes=classes)) == pytest.approx(expected, rel=1e-5)
    per_image = sum(softmax_by_definition(logits[i:i + 1], target[i:i + 1], classes) for i in range(2)) / 2
    value = lovasz_softmax(logits, target, classes=classes, per_image=True)
    assert float(value) == pytest.approx(per_image, rel=1e-5)
    # with ignored pixels: the brute force simply drops them
    target[0, 0] = 255
    expected = softmax_by_definition(logits, target, classes, ignore=255)
    value = lovasz_softmax(logits, target, classes=classes, ignore_index=255)
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_hinge_matches_brute_force():
    torch.manual_seed(2)
    logits, target = torch.randn(3, 1, 3, 4) * 2, torch.randint(0, 2, (3, 3, 4))
    target[2] = 0  # an image without foreground
    assert float(lovasz_hinge(logits, target)) == pytest.approx(hinge_by_definition(logits, target), rel=1e-5)
    per_image = sum(hinge_by_definition(logits[i], target[i]) for i in range(3)) / 3
    assert float(lovasz_hinge(logits, target, per_image=True)) == pytest.approx(per_image, rel=1e-5)


def test_perfect_prediction_is_zero():
    fg = torch.tensor([[[1, 0, 1], [0, 0, 1]]])
    margin_one = (2.0 * fg - 1.0)[:, None]  # x * sign == 1 everywhere
    assert float(lovasz_hinge(margin_one * 3, fg)) == 0.0
    assert float(lovasz_hinge(margin_one, fg)) == 0.0
    assert float(lovasz_hinge(margin_one * 0.9, fg)) > 0.05  # inside the margin
    target = torch.tensor([[[0, 1, 2], [2, 2, 1]]])
    perfect = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() * 50
    for options in ({}, {"per_image": True}, {"classes": "all"}):
        assert float(lovasz_softmax(perfect, target, **options)) < 1e-6


def test_per_image_skips_images_with_nothing_to_score():
    torch.manual_seed(3)
    logits, target = torch.randn(2, 3, 3, 3), torch.randint(0, 3, (2, 3, 3))
    target[1] = -1  # second image fully ignored
    for classes in ("present", "all", [1]):
        both = lovasz_loss(logits, target, per_image=True, classes=classes, ignore_index=-1)
        torch.testing.assert_close(both, lovasz_loss(logits[:1], target[:1], per_image=True, classes=classes))
    binary = logits[:, :1]
    both = lovasz_loss(binary, target.clamp(max=1), per_image=True, ignore_index=-1)
    torch.testing.assert_close(both, lovasz_loss(binary[:1], target[:1].clamp(max=1), per_image=True))
    assert float(lovasz_loss(logits, torch.full_like(target, -1), ignore_index=-1)) == 0.0


def test_errors():
    with pytest.raises(ValueError, match="multi-class"):
        lovasz_loss(torch.randn(1, 1, 2, 2), torch.zeros(1, 2, 2), classes="all")
    with pytest.raises(ValueError, match="one-channel"):
        lovasz_hinge(torch.randn(1, 2, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="C >= 2"):
        lovasz_softmax(torch.randn(1, 1, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        lovasz_softmax(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2), classes=[0, 3])
    with pytest.raises(ValueError, match="classes"):
        LovaszLoss(classes="some")
    with pytest.raises(ValueError, match="per_image"):
        LovaszLoss(per_image=1)  # type: ignore[arg-type]
