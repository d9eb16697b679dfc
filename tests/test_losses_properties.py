"""Properties every loss built by name must have: finite gradients, minimum at a perfect prediction, ignored
pixels really left out, weight maps of ones changing nothing, bad labels refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unetseg.losses import build_loss

CASES = [
    ("ce", 3, {}), ("ce", 2, {"class_weights": [1.0, 4.0]}), ("bce", 1, {}), ("bce", 1, {"class_weights": [1, 3]}),
    ("dice", 1, {}), ("dice", 3, {}), ("dice", 3, {"include_background": False, "class_weights": [1, 2, 3]}),
    ("focal", 1, {}), ("focal", 1, {"alpha": 0.25, "gamma": 0.5}), ("focal", 3, {"alpha": [0.2, 0.3, 0.5]}),
    ("tversky", 1, {}), ("tversky", 3, {"alpha": 0.7, "beta": 0.3, "include_background": False}),
    ("lovasz", 1, {}), ("lovasz", 1, {"per_image": True}), ("lovasz", 3, {}), ("lovasz", 3, {"per_image": True}),
    ("lovasz", 3, {"classes": "all"}), ("lovasz", 3, {"classes": [1, 2]}),
    ("ce_dice", 3, {}), ("bce_dice", 1, {"ce_weight": 0.5}), ("focal_dice", 3, {}), ("focal_dice", 1, {}),
    ("auto", 1, {}), ("auto", 2, {}),
]
IDS = [f"{name}-{c}-{'-'.join(opts)}" for name, c, opts in CASES]
REGION = ("dice", "tversky", "lovasz")


def _inputs(channels: int, seed: int = 0, shape=(2, 4, 6)):
    gen = torch.Generator().manual_seed(seed)
    n, h, w = shape
    logits = torch.randn(n, channels, h, w, generator=gen) * 2
    target = torch.randint(0, max(channels, 2), (n, h, w), generator=gen)
    return logits, target


@pytest.mark.parametrize(("name", "channels", "opts"), CASES, ids=IDS)
def test_finite_nonzero_gradients(name, channels, opts):
    logits, target = _inputs(channels)
    logits.requires_grad_()
    value = build_loss(name, channels, **opts)(logits, target, torch.rand(target.shape) + 0.5)
    value.backward()
    assert value.ndim == 0 and value.dtype == torch.float32 and torch.isfinite(value)
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize(("name", "channels", "opts"), CASES, ids=IDS)
def test_minimum_at_perfect_prediction(name, channels, opts):
    logits, target = _inputs(channels, seed=1)
    if channels == 1:
        perfect = (2.0 * target - 1.0)[:, None] * 50
    else:
        perfect = F.one_hot(target, channels).movedim(-1, 1).float() * 50
    loss = build_loss(name, channels, **opts)
    assert float(loss(perfect, target)) < 1e-5
    assert float(loss(logits, target)) > 1e-2


@pytest.mark.parametrize(("name", "channels", "opts"), CASES, ids=IDS)
@pytest.mark.parametrize("ignore", [255, -1])
def test_ignored_pixels_are_left_out(name, channels, opts, ignore):
    """Ignoring the last two columns equals cropping them away; their logits change neither value nor gradient."""
    loss = build_loss(name, channels, **opts, ignore_index=ignore)
    logits, target = _inputs(channels, seed=2)
    ignored = target.clone()
    ignored[..., 4:] = ignore
    x = logits.clone().requires_grad_()
    value = loss(x, ignored)
    value.backward()
    crop = logits[..., :4].clone().requires_grad_()
    reference = loss(crop, target[..., :4])
    reference.backward()
    torch.testing.assert_close(value, reference)
    torch.testing.assert_close(x.grad[..., :4], crop.grad)
    assert torch.equal(x.grad[..., 4:], torch.zeros_like(x.grad[..., 4:]))
    changed = logits.clone()
    changed[..., 4:] = torch.randn_like(changed[..., 4:]) * 10
    changed.requires_grad_()
    again = loss(changed, ignored)
    again.backward()
    torch.testing.assert_close(again, value)
    torch.testing.assert_close(changed.grad, x.grad)


@pytest.mark.parametrize(("name", "channels", "opts"), CASES, ids=IDS)
def test_weight_maps(name, channels, opts):
    loss = build_loss(name, channels, **opts)
    logits, target = _inputs(channels, seed=3)
    plain = loss(logits, target)
    torch.testing.assert_close(loss(logits, target, torch.ones(target.shape)), plain)
    doubled = loss(logits, target, weight_map=torch.full(target.shape, 2.0))
    if name in REGION:
        torch.testing.assert_close(doubled, plain)  # region losses ignore the map
    elif name in ("ce", "bce", "focal"):
        torch.testing.assert_close(doubled, 2 * plain)  # the map multiplies every per-pixel term
    else:
        assert float(plain) < float(doubled) < 2 * float(plain)  # only the CE/focal term doubles


@pytest.mark.parametrize(("name", "channels", "opts"), CASES, ids=IDS)
def test_bad_labels_and_shapes_are_refused(name, channels, opts):
    loss = build_loss(name, channels, **opts)
    logits, target = _inputs(channels, seed=4)
    bad = target.clone()
    bad[0, 0, 0] = max(channels, 2)
    with pytest.raises(ValueError, match="outside"):
        loss(logits, bad)
    bad[0, 0, 0] = -1
    with pytest.raises(ValueError, match="outside"):
        loss(logits, bad)
    with pytest.raises(ValueError, match="target must have shape"):
        loss(logits, target[:, :-1])
    with pytest.raises(ValueError, match="weight_map"):
        loss(logits, target, torch.ones(2, 4, 5))
