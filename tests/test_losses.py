"""Losses against hand-computed values and torch's own functions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unetseg.losses import build_loss, cross_entropy, dice_loss


def test_binary_dice_by_hand():
    # two pixels, foreground logits 0 (p = 0.5) and ln 3 (p = 0.75); target (1, 0)
    logits = torch.tensor([0.0, math.log(3.0)]).reshape(1, 1, 1, 2)
    target = torch.tensor([1, 0]).reshape(1, 1, 2)
    # intersection 0.5, sum p 1.25, sum t 1 -> 1 - (1 + 1) / (2.25 + 1)
    assert float(dice_loss(logits, target)) == pytest.approx(1 - 2 / 3.25)


def test_multiclass_dice_by_hand():
    # one pixel, 2 classes, logits (0, 0) -> p = (0.5, 0.5), target class 1
    logits = torch.zeros(1, 2, 1, 1)
    target = torch.ones(1, 1, 1, dtype=torch.long)
    # class 0: 1 - (0 + 1) / (0.5 + 1); class 1: 1 - (1 + 1) / (1.5 + 1)
    expected = ((1 - 1 / 1.5) + (1 - 2 / 2.5)) / 2
    assert float(dice_loss(logits, target)) == pytest.approx(expected)


def test_cross_entropy_matches_torch():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 5, 5), torch.randint(0, 3, (2, 5, 5))
    assert float(cross_entropy(logits, target)) == pytest.approx(float(F.cross_entropy(logits, target)))
    binary, t = torch.randn(2, 1, 5, 5), torch.randint(0, 2, (2, 5, 5))
    ref = F.binary_cross_entropy(torch.sigmoid(binary[:, 0]), t.float())
    assert float(cross_entropy(binary, t)) == pytest.approx(float(ref), rel=1e-5)


def test_perfect_prediction_gives_minimum():
    target = torch.randint(0, 3, (2, 6, 6))
    logits = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert float(build_loss("ce_dice", 3)(logits, target)) < 1e-3
    fg = torch.randint(0, 2, (2, 6, 6))
    assert float(build_loss("bce_dice", 1)((fg.float() * 100 - 50)[:, None], fg)) < 1e-3


def test_build_loss_errors():
    with pytest.raises(ValueError, match="not one of"):
        build_loss("lovasz", 2)
    with pytest.raises(ValueError, match="one-channel"):
        build_loss("bce", 3)


def test_gradients_are_finite():
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    build_loss("auto", 3)(logits, torch.randint(0, 3, (2, 8, 8))).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
