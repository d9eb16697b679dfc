"""Losses against hand-computed values and torch's own functions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unetseg.losses import LOSS_CHOICES, build_loss, cross_entropy, dice_loss, focal_loss, loss_options


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
        build_loss("hinge", 2)  # "lovasz", the name used here before, is now a valid loss
    with pytest.raises(ValueError, match="one-channel"):
        build_loss("bce", 3)
    with pytest.raises(ValueError, match="multi-class head"):
        build_loss("ce_dice", 1)
    with pytest.raises(ValueError, match=r"unknown option\(s\) gama for loss='focal'; valid options: gamma, alpha, "
                                         "ignore_index"):
        build_loss("focal", 2, gama=1.0)
    with pytest.raises(ValueError, match="positive integer"):
        build_loss("dice", 0)


def test_gradients_are_finite():
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    build_loss("auto", 3)(logits, torch.randint(0, 3, (2, 8, 8))).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_loss_options_cover_every_name_and_their_defaults_build():
    for name in LOSS_CHOICES:
        options = loss_options(name)
        assert options["ignore_index"] is None
        options["ignore_index"] = 3  # a fresh dict each time
        assert loss_options(name)["ignore_index"] is None
        for channels in (1, 3):
            if (channels == 1 and name in ("ce", "ce_dice")) or (channels == 3 and name.startswith("bce")):
                continue
            build_loss(name, channels, **loss_options(name))
    assert loss_options("auto") == loss_options("ce_dice") == loss_options("bce_dice")
    assert loss_options("tversky") == {"alpha": 0.3, "beta": 0.7, "smooth": 1.0, "include_background": True,
                                       "class_weights": None, "ignore_index": None}
    with pytest.raises(ValueError, match="not one of"):
        loss_options("nope")


def test_auto_is_bce_dice_or_ce_dice():
    torch.manual_seed(1)
    x, t = torch.randn(2, 1, 4, 4), torch.randint(0, 2, (2, 4, 4))
    torch.testing.assert_close(build_loss("auto", 1)(x, t), cross_entropy(x, t) + dice_loss(x, t))
    x3, t3 = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    torch.testing.assert_close(build_loss("auto", 3)(x3, t3), cross_entropy(x3, t3) + dice_loss(x3, t3))


def test_options_reach_the_losses():
    torch.manual_seed(2)
    x, t, wm = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4)), torch.rand(2, 4, 4)
    loss = build_loss("ce", 3, class_weights=[1, 2, 3])
    torch.testing.assert_close(loss(x, t), F.cross_entropy(x, t, weight=torch.tensor([1.0, 2.0, 3.0])))
    # ce_dice: ce_weight * CE(class_weights, weight map) + dice_weight * Dice(smooth, include_background)
    loss = build_loss("ce_dice", 3, ce_weight=2.0, dice_weight=0.5, class_weights=[1, 1, 4], smooth=0.1,
                      include_background=False)
    expected = (2 * cross_entropy(x, t, wm, class_weights=[1, 1, 4])
                + 0.5 * dice_loss(x, t, smooth=0.1, include_background=False))
    torch.testing.assert_close(loss(x, t, wm), expected)
    loss = build_loss("focal_dice", 3, gamma=1.0, dice_weight=0.0)  # a zero-weight term is dropped
    torch.testing.assert_close(loss(x, t), focal_loss(x, t, gamma=1.0))


@pytest.mark.parametrize(("name", "channels", "options", "message"), [
    ("bce", 1, {"class_weights": [1, 2, 3]}, "needs 2 values"),
    ("ce", 3, {"class_weights": [1, 2]}, "needs 3 values"),
    ("focal", 3, {"alpha": 0.25}, "single focal alpha"),
    ("focal", 1, {"alpha": [0.1, 0.2, 0.7]}, "needs 2 values"),
    ("dice", 1, {"class_weights": [1, 1]}, "multi-class head"),
    ("lovasz", 1, {"classes": "all"}, "multi-class heads"),
    ("lovasz", 3, {"classes": [0, 3]}, r"\[0, 3\)"),
    ("tversky", 2, {"alpha": -0.1}, "alpha"),
    ("dice", 2, {"ignore_index": 1.5}, "ignore_index"),
    ("ce_dice", 2, {"ce_weight": 0.0, "dice_weight": 0.0}, "positive weight"),
])
def test_invalid_option_values(name, channels, options, message):
    with pytest.raises(ValueError, match=message):
        build_loss(name, channels, **options)
