"""Cross-entropy and focal loss: hand-computed values, torch's own functions, class weights and weight maps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unetseg.losses import CrossEntropyLoss, FocalLoss, cross_entropy, focal_loss

LN3 = math.log(3.0)


def test_cross_entropy_by_hand():
    # one pixel, logits (0, ln 3): softmax = (1, 3) / 4 = (0.25, 0.75)
    logits = torch.tensor([0.0, LN3]).reshape(1, 2, 1, 1)
    assert float(cross_entropy(logits, torch.zeros(1, 1, 1, dtype=torch.long))) == pytest.approx(math.log(4))
    assert float(cross_entropy(logits, torch.ones(1, 1, 1, dtype=torch.long))) == pytest.approx(math.log(4 / 3))
    # binary: the single logit ln 3 gives p = sigmoid(ln 3) = 3 / (1 + 3) = 0.75, the same numbers
    x = torch.tensor([LN3]).reshape(1, 1, 1, 1)
    assert float(cross_entropy(x, torch.zeros(1, 1, 1))) == pytest.approx(math.log(4))  # -ln(1 - 0.75)
    assert float(cross_entropy(x, torch.ones(1, 1, 1))) == pytest.approx(math.log(4 / 3))  # -ln(0.75)


def test_class_weights_by_hand():
    # two pixels with logits (0, ln 3): pixel A of class 0 (loss ln 4), pixel B of class 1 (loss ln 4/3).
    # weights (1, 3): (1 * ln 4 + 3 * ln 4/3) / (1 + 3), torch's weighted mean
    logits = torch.tensor([0.0, LN3]).reshape(1, 2, 1, 1).expand(1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    expected = (math.log(4) + 3 * math.log(4 / 3)) / 4
    assert float(cross_entropy(logits, target, class_weights=[1, 3])) == pytest.approx(expected)
    # binary, the same two pixels with logit ln 3: the same value with (background, foreground) = (1, 3)
    x = torch.full((1, 1, 1, 2), LN3)
    assert float(cross_entropy(x, target, class_weights=(1.0, 3.0))) == pytest.approx(expected)
    # and a weight map (2, 0.5) on top: (2 * 1 * ln 4 + 0.5 * 3 * ln 4/3) / (1 + 3), the map is not normalised
    wm = torch.tensor([[[2.0, 0.5]]])
    value = cross_entropy(x, target, wm, class_weights=(1.0, 3.0))
    assert float(value) == pytest.approx((2 * math.log(4) + 1.5 * math.log(4 / 3)) / 4)


def test_matches_torch_with_weights_and_ignore_index():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 5, 6), torch.randint(0, 4, (2, 5, 6))
    target[0, :2] = 255
    w = [0.5, 1.0, 2.0, 4.0]
    ours = cross_entropy(logits, target, class_weights=w, ignore_index=255)
    ref = F.cross_entropy(logits, target, weight=torch.tensor(w), ignore_index=255)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(cross_entropy(logits, target, ignore_index=255),
                               F.cross_entropy(logits, target, ignore_index=255))


def test_binary_matches_bce_with_logits_and_two_class_softmax():
    torch.manual_seed(1)
    x, t = torch.randn(2, 1, 5, 5) * 3, torch.randint(0, 2, (2, 5, 5))
    torch.testing.assert_close(cross_entropy(x, t), F.binary_cross_entropy_with_logits(x[:, 0], t.float()))
    # class weights: torch's BCE with per-pixel weight w[t], renormalised by the sum of those weights
    w = torch.tensor([0.3, 2.0])
    ref = F.binary_cross_entropy_with_logits(x[:, 0], t.float(), weight=w[t], reduction="sum") / w[t].sum()
    torch.testing.assert_close(cross_entropy(x, t, class_weights=w.tolist()), ref)
    # ... which is the softmax CE of the logits (0, x) with the same weights
    pair = torch.cat([torch.zeros_like(x), x], dim=1)
    torch.testing.assert_close(cross_entropy(x, t, class_weights=w.tolist()), F.cross_entropy(pair, t, weight=w))


@pytest.mark.parametrize("channels", [1, 3])
def test_weight_map_scales_each_pixel(channels):
    torch.manual_seed(2)
    x, t = torch.randn(2, channels, 4, 4), torch.randint(0, max(channels, 2), (2, 4, 4))
    wm = torch.rand(2, 4, 4) * 5
    if channels == 1:
        per_pixel = F.binary_cross_entropy_with_logits(x[:, 0], t.float(), reduction="none")
    else:
        per_pixel = F.cross_entropy(x, t, reduction="none")
    torch.testing.assert_close(cross_entropy(x, t, wm), (wm * per_pixel).mean())  # sum(w * l) / n
    torch.testing.assert_close(cross_entropy(x, t, torch.ones(2, 4, 4)), cross_entropy(x, t))
    # with ignored pixels: divided by the number of counted pixels only
    t_ign = t.clone()
    t_ign[:, 0] = -1
    expected = (wm * per_pixel)[:, 1:].sum() / 24
    torch.testing.assert_close(cross_entropy(x, t_ign, wm, ignore_index=-1), expected)
    for fn in (focal_loss,):  # focal with gamma 0 is the same per-pixel CE
        torch.testing.assert_close(fn(x, t, wm, gamma=0.0), (wm * per_pixel).mean())


def test_nothing_counted_gives_zero_and_zero_gradient():
    x = torch.randn(1, 3, 2, 2, requires_grad=True)
    t = torch.full((1, 2, 2), 7)
    for fn in (cross_entropy, focal_loss):
        value = fn(x, t, ignore_index=7)
        value.backward()
        assert float(value.detach()) == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
        x.grad = None


def test_focal_by_hand():
    # binary, logit ln 3 -> p = 0.75, foreground pixel: p_t = 0.75, (1 - p_t)^2 = 1/16, -ln p_t = ln 4/3
    x = torch.tensor([LN3]).reshape(1, 1, 1, 1)
    fg = torch.ones(1, 1, 1, dtype=torch.long)
    assert float(focal_loss(x, fg)) == pytest.approx(math.log(4 / 3) / 16)
    assert float(focal_loss(x, fg, alpha=0.25)) == pytest.approx(0.25 * math.log(4 / 3) / 16)
    # background pixel: p_t = 0.25, (0.75)^2 * ln 4, alpha 0.25 -> weight 1 - 0.25 = 0.75
    assert float(focal_loss(x, 1 - fg, alpha=0.25)) == pytest.approx(0.75 * 0.5625 * math.log(4))
    # multi-class, logits (0, ln 3), class 0: p_t = 0.25 -> 0.75^2 * ln 4; gamma 1 -> 0.75 * ln 4
    logits = torch.tensor([0.0, LN3]).reshape(1, 2, 1, 1)
    assert float(focal_loss(logits, 1 - fg)) == pytest.approx(0.5625 * math.log(4))
    assert float(focal_loss(logits, 1 - fg, gamma=1.0, alpha=[0.2, 0.8])) == pytest.approx(0.2 * 0.75 * math.log(4))


def _sigmoid_focal_reference(x, t, gamma, alpha):
    """The formula of torchvision's sigmoid_focal_loss (mean reduction), written out."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss.mean()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.5])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.9])
def test_binary_focal_matches_reference(gamma, alpha):
    torch.manual_seed(3)
    x, t = torch.randn(2, 1, 4, 4) * 2, torch.randint(0, 2, (2, 4, 4))
    ref = _sigmoid_focal_reference(x[:, 0], t.float(), gamma, alpha)
    torch.testing.assert_close(focal_loss(x, t, gamma=gamma, alpha=alpha), ref)
    if alpha is not None:  # the pair form (background, foreground) of the same alpha
        torch.testing.assert_close(focal_loss(x, t, gamma=gamma, alpha=[1 - alpha, alpha]), ref)


def test_multiclass_focal_matches_formula():
    torch.manual_seed(4)
    x, t = torch.randn(2, 3, 4, 4) * 2, torch.randint(0, 3, (2, 4, 4))
    alpha = torch.tensor([0.2, 0.3, 0.5])
    p_t = torch.softmax(x, 1).gather(1, t[:, None])[:, 0]
    ref = (-alpha[t] * (1 - p_t) ** 2 * torch.log(p_t)).mean()
    torch.testing.assert_close(focal_loss(x, t, alpha=alpha.tolist()), ref)
    torch.testing.assert_close(focal_loss(x, t, gamma=0.0), F.cross_entropy(x, t))


@pytest.mark.parametrize("gamma", [0.3, 2.0])
def test_focal_gradient_finite_at_saturated_logits(gamma):
    # p_t rounds to 1 in float32; a naive (1 - p_t) ** gamma has an infinite derivative there for gamma < 1
    x = torch.tensor([[[[40.0, -40.0]]], [[[0.0, 1.0]]]], requires_grad=True)
    t = torch.tensor([[[1, 0]], [[1, 0]]])
    focal_loss(x, t, gamma=gamma).backward()
    assert torch.isfinite(x.grad).all()
    multi = torch.tensor([[100.0, 0.0], [0.0, 100.0]]).reshape(1, 2, 1, 2).requires_grad_()
    focal_loss(multi, torch.tensor([[[0, 1]]]), gamma=gamma).backward()
    assert torch.isfinite(multi.grad).all()


def test_option_errors():
    x, t = torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="one per class"):
        cross_entropy(x, t, class_weights=[1, 2])
    with pytest.raises(ValueError, match="one-channel"):
        focal_loss(x, t, alpha=0.25)
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(x[:, :1], t, alpha=1.5)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="class_weights"):
        CrossEntropyLoss(class_weights=[1, -2, 3])
    with pytest.raises(ValueError, match="ignore_index"):
        CrossEntropyLoss(ignore_index=2.5)  # type: ignore[arg-type]


def test_modules_equal_functions():
    torch.manual_seed(5)
    x, t, wm = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4)), torch.rand(2, 4, 4)
    module = CrossEntropyLoss(class_weights=[1, 2, 3], ignore_index=0)
    torch.testing.assert_close(module(x, t, wm), cross_entropy(x, t, wm, class_weights=[1, 2, 3], ignore_index=0))
    module = FocalLoss(gamma=1.5, alpha=[1, 1, 2])
    torch.testing.assert_close(module(x, t, weight_map=wm), focal_loss(x, t, wm, gamma=1.5, alpha=[1, 1, 2]))
