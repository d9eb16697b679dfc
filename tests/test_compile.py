"""``--compile``: a compiled network predicts like the eager one, keeps its class and state-dict keys, and the
option fails clearly where compilation is unavailable."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from unetseg import Predictor
from unetseg.compilation import compile_model, compile_unavailable_reason
from unetseg.data.normalize import Normalization
from unetseg.models import create_model

from conftest import with_batch_norm_statistics


def _tiny_unet_bn() -> nn.Module:
    """A depth-1 unet_bn (fast to compile) with batch-norm statistics far from the identity."""
    torch.manual_seed(0)
    return with_batch_norm_statistics(create_model("unet_bn", base_channels=4, depth=1))


@pytest.mark.skipif(compile_unavailable_reason() is not None, reason=str(compile_unavailable_reason()))
def test_compiled_prediction_matches_eager_float32():
    from torch._dynamo.utils import counters

    model = _tiny_unet_bn()
    eager = copy.deepcopy(model)
    image = np.random.default_rng(0).integers(0, 255, (30, 45), dtype=np.uint8)
    ref = Predictor(eager, Normalization(), 2, device="cpu", precision="fp32", fold_bn=False).predict_proba(image)
    graphs = counters["stats"]["unique_graphs"]
    predictor = Predictor(model, Normalization(), 2, device="cpu", precision="fp32", compile=True, fold_bn=False)
    out = predictor.predict_proba(image)
    assert counters["stats"]["unique_graphs"] > graphs  # a graph was really compiled
    assert predictor.model is model and type(model) is type(eager)  # compiled in place, size rules intact
    assert list(model.state_dict()) == list(eager.state_dict())  # checkpoints keep their keys
    assert np.abs(out - ref).max() <= 1e-4
    assert (out.argmax(0) == ref.argmax(0)).mean() >= 0.999


def test_compile_model_is_a_no_op_when_disabled_and_fails_clearly_when_unavailable(monkeypatch):
    model = _tiny_unet_bn()
    assert compile_model(model, enabled=False) is model and model._compiled_call_impl is None
    monkeypatch.setattr("unetseg.compilation.shutil.which", lambda name: None)
    assert "C++ compiler" in compile_unavailable_reason("cpu")
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler"):
        compile_model(model, enabled=True, device="cpu")
    assert model._compiled_call_impl is None


def test_compile_on_cuda_needs_triton(monkeypatch):
    monkeypatch.setattr("torch.utils._triton.has_triton", lambda: False)
    assert "needs Triton" in compile_unavailable_reason("cuda")
    monkeypatch.setattr("torch.utils._triton.has_triton", lambda: True)
    assert compile_unavailable_reason("cuda") is None or "Triton" not in compile_unavailable_reason("cuda")


@pytest.mark.skipif(compile_unavailable_reason() is not None, reason=str(compile_unavailable_reason()))
def test_train_compile_gives_a_plain_checkpoint(tiny_data, tmp_path):
    """``train --compile`` trains and writes a checkpoint with the plain network's keys: it loads into an
    uncompiled model, which predicts."""
    from conftest import tiny_config
    from unetseg import train

    config = tiny_config(tiny_data, tmp_path, epochs=1)
    config.model.depth, config.train.compile, config.train.precision = 1, True, "fp32"
    config.train.tune_prediction = False
    result = train(config, progress=False)
    assert np.isfinite(result.history[-1]["train_loss"])
    plain = Predictor.from_checkpoint(result.last_checkpoint, device="cpu", precision="fp32")
    image = np.random.default_rng(1).integers(0, 255, (48, 48), dtype=np.uint8)
    assert plain.predict_proba(image).shape == (2, 48, 48)
