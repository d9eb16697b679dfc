"""Soft Dice and Tversky: hand-computed values, per-class options, the Tversky/Dice identity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unetseg.losses import DiceLoss, TverskyLoss, dice_loss, tversky_loss

# binary example: foreground logits 0 (p = 0.5) and ln 3 (p = 0.75); target (1, 0)
# TP = 0.5 * 1 = 0.5, FP = 0.75 * 1 (second pixel) = 0.75, FN = (1 - 0.5) * 1 (first pixel) = 0.5
BIN_LOGITS = torch.tensor([0.0, math.log(3.0)]).reshape(1, 1, 1, 2)
BIN_TARGET = torch.tensor([1, 0]).reshape(1, 1, 2)
# multi-class example: one pixel, logits (0, 0) -> p = (0.5, 0.5), target class 1
# class 0: TP 0, FP 0.5, FN 0; class 1: TP 0.5, FP 0, FN 0.5
ONE_PIXEL = torch.zeros(1, 2, 1, 1)
CLASS_1 = torch.ones(1, 1, 1, dtype=torch.long)


def test_tversky_by_hand():
    # 1 - (0.5 + 1) / (0.5 + 0.3 * 0.75 + 0.7 * 0.5 + 1) = 1 - 1.5 / 2.075
    assert float(tversky_loss(BIN_LOGITS, BIN_TARGET)) == pytest.approx(1 - 1.5 / 2.075)
    # alpha = beta = 1 is the soft Jaccard: 1 - 1.5 / (0.5 + 0.75 + 0.5 + 1)
    assert float(tversky_loss(BIN_LOGITS, BIN_TARGET, alpha=1, beta=1)) == pytest.approx(1 - 1.5 / 2.75)
    # multi-class, smooth 0: class 0: 1 - 0 / (0 + 0.3 * 0.5) = 1; class 1: 1 - 0.5 / (0.5 + 0.7 * 0.5) = 1 - 1/1.7
    value = tversky_loss(ONE_PIXEL, CLASS_1, smooth=0.0)
    assert float(value) == pytest.approx((1 + 1 - 0.5 / 0.85) / 2)


def test_dice_options_by_hand():
    # class 0: 1 - (0 + 1) / (0.5 + 1); class 1: 1 - (1 + 1) / (1.5 + 1)
    d0, d1 = 1 - 1 / 1.5, 1 - 2 / 2.5
    assert float(dice_loss(ONE_PIXEL, CLASS_1, include_background=False)) == pytest.approx(d1)
    assert float(dice_loss(ONE_PIXEL, CLASS_1, class_weights=[1, 3])) == pytest.approx((d0 + 3 * d1) / 4)
    # with the background excluded its weight is dropped too
    assert float(dice_loss(ONE_PIXEL, CLASS_1, class_weights=[5, 3], include_background=False)) == pytest.approx(d1)
    # smooth 0: class 0: 1 - 0 / 0.5 = 1, class 1: 1 - 1 / 1.5
    assert float(dice_loss(ONE_PIXEL, CLASS_1, smooth=0)) == pytest.approx((1 + 1 - 1 / 1.5) / 2)
    # include_background has no effect on the binary form (foreground only): 1 - 2 / 3.25
    assert float(dice_loss(BIN_LOGITS, BIN_TARGET, include_background=False)) == pytest.approx(1 - 2 / 3.25)


def _dice_numpy(logits: torch.Tensor, target: torch.Tensor, smooth: float) -> list[float]:
    """Per-class soft Dice loss with explicit loops over classes (batch and pixels summed)."""
    x = logits.double().numpy()
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    out = []
    for c in range(x.shape[1]):
        t = (target.numpy() == c).astype(float)
        inter, total = float((p[:, c] * t).sum()), float(p[:, c].sum() + t.sum())
        out.append(1 - (2 * inter + smooth) / (total + smooth))
    return out


@pytest.mark.parametrize("smooth", [0.0, 1.0, 10.0])
def test_dice_against_numpy(smooth):
    torch.manual_seed(0)
    x, t = torch.randn(2, 4, 5, 5), torch.randint(0, 4, (2, 5, 5))
    per_class = _dice_numpy(x, t, smooth)
    assert float(dice_loss(x, t, smooth=smooth)) == pytest.approx(np.mean(per_class), rel=1e-5)
    assert float(dice_loss(x, t, smooth=smooth, include_background=False)) == pytest.approx(
        np.mean(per_class[1:]), rel=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("smooth", [0.0, 0.5, 1.0])
def test_tversky_half_half_is_dice_with_double_smoothing(channels, smooth):
    torch.manual_seed(1)
    x, t = torch.randn(2, channels, 4, 4), torch.randint(0, max(channels, 2), (2, 4, 4))
    tversky = tversky_loss(x, t, alpha=0.5, beta=0.5, smooth=smooth)
    torch.testing.assert_close(tversky, dice_loss(x, t, smooth=2 * smooth))
    # at the defaults, TverskyLoss(0.5, 0.5, smooth=0.5) is DiceLoss()
    torch.testing.assert_close(TverskyLoss(0.5, 0.5, smooth=0.5)(x, t), DiceLoss()(x, t))
    assert not torch.allclose(tversky_loss(x, t), dice_loss(x, t))  # the default 0.3/0.7 is something else


@pytest.mark.parametrize("fn", [dice_loss, tversky_loss])
def test_absent_class_contributes_zero(fn):
    # class 2 is absent from the target and predicted nowhere (logit -100): its loss is 0 thanks to smoothing
    logits = torch.zeros(1, 3, 2, 2)
    logits[:, 2] = -100.0
    target = torch.tensor([[[0, 1], [1, 0]]])
    assert float(fn(logits, target, class_weights=[0, 0, 1])) == pytest.approx(0.0, abs=1e-6)
    assert float(fn(logits, target, class_weights=[1, 0, 0])) > 0.1  # class 0 is not perfect
    # without smoothing the tiny probabilities (~e^-100) are a pure false positive: loss 1
    assert float(fn(logits, target, smooth=0.0, class_weights=[0, 0, 1])) == pytest.approx(1.0)
    # ... unless every sum is exactly 0 (all pixels ignored): 0/0 counts as a perfect score
    assert float(fn(logits, torch.full_like(target, -1), smooth=0.0, ignore_index=-1)) == 0.0


@pytest.mark.parametrize("fn", [dice_loss, tversky_loss])
def test_weight_map_is_ignored(fn):
    torch.manual_seed(2)
    x, t = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    torch.testing.assert_close(fn(x, t, torch.rand(2, 4, 4) * 7), fn(x, t))


def test_errors():
    with pytest.raises(ValueError, match="multi-class head"):
        dice_loss(BIN_LOGITS, BIN_TARGET, class_weights=[1, 1])
    with pytest.raises(ValueError, match="one per class"):
        tversky_loss(ONE_PIXEL, CLASS_1, class_weights=[1, 1, 1])
    with pytest.raises(ValueError, match="zero total weight"):
        dice_loss(ONE_PIXEL, CLASS_1, class_weights=[1, 0], include_background=False)
    with pytest.raises(ValueError, match="smooth"):
        dice_loss(ONE_PIXEL, CLASS_1, smooth=-1)
    with pytest.raises(ValueError, match="include_background"):
        DiceLoss(include_background="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta"):
        TverskyLoss(beta=float("nan"))
