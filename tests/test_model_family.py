"""One suite over every registered model: shapes, any input size, gradients, checkpoints, tracing, training."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from unetseg import Predictor, train
from unetseg.checkpoint import Checkpoint, build_model, load_checkpoint, save_checkpoint
from unetseg.models.apply import padded_forward
from unetseg.models import create_model, list_models, model_options

from conftest import tiny_config

# Small settings for every option a model may have, so that each network runs in milliseconds on a CPU.
TINY = {"base_channels": 4, "fc_channels": 16, "fc_kernel": 1, "depth": 2}


def tiny_kwargs(name: str, **extra: Any) -> dict[str, Any]:
    options = model_options(name)
    return {**{k: v for k, v in TINY.items() if k in options}, **extra}


def variants() -> list[tuple[str, dict[str, Any]]]:
    """Every model, plus deep supervision where a model offers it."""
    out = []
    for name in list_models():
        out.append((name, {}))
        if "deep_supervision" in model_options(name):
            out.append((name, {"deep_supervision": True}))
    return out


IDS = [name + ("+ds" if extra else "") for name, extra in variants()]


def make(name: str, extra: dict[str, Any], num_classes: int = 2, in_channels: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_channels=in_channels, num_classes=num_classes, **tiny_kwargs(name, **extra))


@pytest.mark.parametrize("name, extra", variants(), ids=IDS)
@pytest.mark.parametrize("num_classes, in_channels", [(1, 1), (3, 3)])
def test_forward_shapes(name, extra, num_classes, in_channels):
    model = make(name, extra, num_classes, in_channels).eval()
    side = model.input_size_for(40)
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, side, side))
    assert isinstance(out, torch.Tensor)  # one tensor in evaluation mode, whatever the training heads
    assert out.shape == (2, num_classes, model.output_size(side), model.output_size(side))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name, extra", variants(), ids=IDS)
@pytest.mark.parametrize("shape", [(1, 1), (17, 17), (33, 50), (64, 7)])
def test_any_image_size_through_prediction(name, extra, shape):
    model = make(name, extra).eval()
    with torch.no_grad():
        out = padded_forward(model, torch.randn(1, 1, *shape))
    assert out.shape == (1, 2, *shape)


@pytest.mark.parametrize("name, extra", variants(), ids=IDS)
def test_every_parameter_gets_a_finite_gradient(name, extra):
    model = make(name, extra, num_classes=3).train()
    side = model.input_size_for(32)
    out = model(torch.randn(2, 1, side, side))
    outputs = out if isinstance(out, (list, tuple)) else [out]
    # linear in the outputs, so the gradient is non-zero even for heads initialised to zero (FCN's score layers)
    sum((o * torch.randn_like(o)).mean() for o in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad[:5]}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name, extra", variants(), ids=IDS)
def test_checkpoint_round_trip_rebuilds_the_same_network(name, extra, tmp_path):
    model = make(name, extra).eval()
    ckpt = Checkpoint(model_config=model.config, num_classes=2, class_names=["bg", "fg"],
                      normalization={"mode": "scale", "low": 1.0, "high": 99.8}, run_config={}, epoch=0,
                      model_state=model.state_dict())
    save_checkpoint(tmp_path / "m.safetensors", ckpt)
    rebuilt = build_model(load_checkpoint(tmp_path / "m.safetensors"))
    assert type(rebuilt) is type(model) and rebuilt.config == model.config
    x = torch.randn(1, 1, model.input_size_for(24), model.input_size_for(24))
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


@pytest.mark.parametrize("name, extra", variants(), ids=IDS)
def test_trace_matches_eager(name, extra):
    model = make(name, extra).eval()
    side = model.input_size_for(32)
    x = torch.randn(1, 1, side, side)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
        torch.testing.assert_close(traced(x), model(x), rtol=1e-5, atol=1e-5)
        y = torch.randn(1, 1, side, side)  # a new input through the traced graph
        torch.testing.assert_close(traced(y), model(y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, extra", variants(), ids=IDS)
def test_trains_and_predicts_from_its_checkpoint(name, extra, tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path, name, epochs=1)
    config.model.base_channels, config.model.depth = None, None
    config.model.options = tiny_kwargs(name, **extra)
    result = train(config, progress=False)
    assert np.isfinite(result.history[-1]["train_loss"])
    predictor = Predictor.from_checkpoint(result.best_checkpoint, device="cpu")
    assert type(predictor.model).__name__ == type(make(name, extra)).__name__
    labels = predictor.predict(np.random.default_rng(0).integers(0, 255, (30, 45), dtype=np.uint8))
    assert labels.shape == (30, 45)
