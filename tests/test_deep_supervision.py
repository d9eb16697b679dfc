"""DeepSupervisionLoss: weighted sums over heads, identity on a single tensor, validation."""

from __future__ import annotations

import pytest
import torch

from unetseg.losses import build_loss, cross_entropy, dice_loss
from unetseg.losses.deep_supervision import DeepSupervisionLoss
from unetseg.models import create_model


def mean_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return logits.mean()


def const(value: float, size: int = 4) -> torch.Tensor:
    return torch.full((2, 1, size, size), value)


TARGET = torch.zeros(2, 4, 4, dtype=torch.long)


def test_equal_weights_by_default():
    loss = DeepSupervisionLoss(mean_loss)
    assert float(loss([const(1.0), const(2.0), const(6.0)], TARGET)) == pytest.approx((1 + 2 + 6) / 3)
    assert float(loss((const(4.0),), TARGET)) == pytest.approx(4.0)


def test_weights_are_normalised():
    loss = DeepSupervisionLoss(mean_loss, weights=[1, 3])  # -> 0.25, 0.75
    assert float(loss([const(2.0), const(10.0)], TARGET)) == pytest.approx(0.25 * 2 + 0.75 * 10)
    loss = DeepSupervisionLoss(mean_loss, weights=[0.0, 2.0, 2.0, 4.0])  # -> 0, .25, .25, .5
    value = loss([const(100.0), const(1.0), const(3.0), const(5.0)], TARGET)
    assert float(value) == pytest.approx(0.25 * 1 + 0.25 * 3 + 0.5 * 5)


def test_zero_weight_head_is_not_evaluated():
    seen = []
    loss = DeepSupervisionLoss(lambda x, t: seen.append(float(x.mean())) or x.mean(), weights=[0, 1])
    assert float(loss([const(float("nan")), const(2.0)], TARGET)) == 2.0
    assert seen == [2.0]


def test_single_tensor_is_passed_through_unchanged():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    loss = DeepSupervisionLoss(cross_entropy, weights=[1, 2, 3])  # weights are not used for one tensor
    assert torch.equal(loss(logits, target), cross_entropy(logits, target))
    sentinel = torch.tensor(42.0)
    assert DeepSupervisionLoss(lambda x, t: sentinel)(logits, target) is sentinel


def test_real_losses_and_gradients():
    torch.manual_seed(0)
    heads = [torch.randn(2, 2, 4, 4, requires_grad=True) for _ in range(3)]
    target = torch.randint(0, 2, (2, 4, 4))
    value = DeepSupervisionLoss(dice_loss, weights=[1, 1, 2])(heads, target)
    expected = (dice_loss(heads[0], target) + dice_loss(heads[1], target) + 2 * dice_loss(heads[2], target)) / 4
    torch.testing.assert_close(value, expected)
    value.backward()
    assert all(h.grad is not None for h in heads)


def test_works_with_a_loss_module_and_unetpp_heads():
    model = create_model("unetpp", base_channels=2, depth=2, deep_supervision=True).train()
    loss = DeepSupervisionLoss(torch.nn.CrossEntropyLoss())
    outs = model(torch.randn(2, 1, 8, 8))
    value = loss(outs, torch.randint(0, 2, (2, 8, 8)))
    value.backward()
    assert value.ndim == 0 and all(h.weight.grad is not None for h in model.heads)


def test_number_of_weights_must_match_outputs():
    loss = DeepSupervisionLoss(mean_loss, weights=[1, 1, 1])
    with pytest.raises(ValueError, match=r"3 deep-supervision weights for 4 network outputs"):
        loss([const(1.0)] * 4, TARGET)
    with pytest.raises(ValueError, match="at least one output"):
        DeepSupervisionLoss(mean_loss)([], TARGET)


@pytest.mark.parametrize("weights", [[1, -1], [0, 0], [], [1, float("nan")], [float("inf")]])
def test_invalid_weights(weights):
    with pytest.raises(ValueError, match="weights"):
        DeepSupervisionLoss(mean_loss, weights=weights)


def test_head_size_must_match_target():
    loss = DeepSupervisionLoss(mean_loss)
    with pytest.raises(ValueError, match=r"output 1 of 2 has spatial size \(2, 2\) but the target has \(4, 4\)"):
        loss([const(1.0), const(1.0, size=2)], TARGET)


def test_bad_types():
    with pytest.raises(TypeError):
        DeepSupervisionLoss("not a function")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DeepSupervisionLoss(mean_loss)({"a": const(1.0)}, TARGET)  # type: ignore[arg-type]


def test_weight_map_and_other_arguments_reach_every_head():
    seen = []

    def recording(x, t, weight_map=None, scale=1.0):
        seen.append((weight_map, scale))
        return x.mean() * scale

    wm = torch.rand(2, 4, 4)
    loss = DeepSupervisionLoss(recording, weights=[1, 1, 0])
    value = loss([const(1.0), const(3.0), const(5.0)], TARGET, wm, scale=2.0)
    assert float(value) == pytest.approx(4.0)  # (1 + 3) / 2 * 2
    assert len(seen) == 2 and all(w is wm and s == 2.0 for w, s in seen)
    seen.clear()
    assert float(loss(const(1.0), TARGET, weight_map=wm)) == 1.0 and seen == [(wm, 1.0)]


def test_weight_map_with_real_losses():
    torch.manual_seed(1)
    heads = [torch.randn(2, 3, 4, 4) for _ in range(2)]
    target, wm = torch.randint(0, 3, (2, 4, 4)), torch.rand(2, 4, 4) * 3
    inner = build_loss("ce_dice", 3)
    value = DeepSupervisionLoss(inner, weights=[1, 3])(heads, target, weight_map=wm)
    expected = 0.25 * inner(heads[0], target, wm) + 0.75 * inner(heads[1], target, wm)
    torch.testing.assert_close(value, expected)
    assert not torch.allclose(value, DeepSupervisionLoss(inner, weights=[1, 3])(heads, target))
