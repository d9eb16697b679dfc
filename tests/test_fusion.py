"""Batch norm folded into convolutions: the same outputs, the original model untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unetseg import Predictor
from unetseg.data.normalize import Normalization
from unetseg.inference.fusion import fold_batch_norm
from unetseg.models import create_model

from conftest import with_batch_norm_statistics as _with_statistics


@pytest.mark.parametrize("name, options", [("unet_bn", {"depth": 2}), ("segnet", {}), ("fusionnet", {})])
def test_folded_model_gives_the_same_logits(name, options):
    model = _with_statistics(create_model(name, base_channels=4, **options))
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        ref = model(x)
        folded, n = fold_batch_norm(model)
        out = folded(x)
    assert n > 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) < sum(
        isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(out, ref, atol=1e-4 * ref.abs().max().item())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original keeps its batch norms


def test_fold_by_hand_on_one_pair():
    """One 1x1 convolution and a batch norm: the folded weight is w * gamma / sqrt(var + eps), the bias
    (b - mean) * gamma / sqrt(var + eps) + beta."""
    conv, bn = nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1, eps=0.0)
    with torch.no_grad():
        conv.weight.fill_(2.0), conv.bias.fill_(1.0)
        bn.running_mean.fill_(3.0), bn.running_var.fill_(4.0), bn.weight.fill_(5.0), bn.bias.fill_(-1.0)
    folded, n = fold_batch_norm(nn.Sequential(conv, bn, nn.ReLU()))
    assert n == 1 and isinstance(folded[1], nn.Identity)
    assert folded[0].weight.item() == pytest.approx(2.0 * 5.0 / 2.0)
    assert folded[0].bias.item() == pytest.approx((1.0 - 3.0) * 5.0 / 2.0 - 1.0)


def test_predictor_folds_by_default_with_equal_labels():
    model = _with_statistics(create_model("unet_bn", base_channels=4, depth=2))
    image = np.random.default_rng(0).integers(0, 255, (40, 56), dtype=np.uint8)
    plain = Predictor(model, Normalization(), 2, device="cpu", precision="fp32", fold_bn=False)
    folded = Predictor(model, Normalization(), 2, device="cpu", precision="fp32")
    assert not any(isinstance(m, nn.BatchNorm2d) and m.training for m in folded.model.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.model.modules()) == 0
    np.testing.assert_allclose(folded.predict_proba(image), plain.predict_proba(image), atol=1e-5)
