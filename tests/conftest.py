"""Shared fixtures: tiny synthetic datasets and fast configurations."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from unetseg import Config
from unetseg.cli.main import main
from unetseg.data.synthetic import write_synthetic_dataset

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight 48x48 synthetic nuclei images with {0,255} masks."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("tiny") / "data", 8, 48, 48, seed=5)


def tiny_config(data: Path, out: Path, model: str = "unet_bn", epochs: int | None = 3) -> Config:
    """A configuration that trains in about a second."""
    config = Config()
    config.model.name, config.model.base_channels, config.model.depth = model, 4, 2
    if model == "unet_bn":
        config.model.norm = "batch"  # the preset's norm (the recipe's instance-norm rule is tested in test_recipe.py)
    config.data.train, config.data.val_fraction = str(data), 0.25
    tc = config.train
    tc.epochs, tc.batch_size, tc.patch_size, tc.samples_per_epoch, tc.lr = epochs, 2, 24, 6, 1e-2
    tc.output_dir, tc.name, tc.device = str(out), "run", "cpu"
    return config


def with_batch_norm_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in evaluation mode with batch-norm statistics and affine parameters far from the identity, so that
    folding or compiling them has something to get right."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.3, 3.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return model.eval()


def shared_data() -> Path:
    """The real datasets: $UNETSEG_SHARED_DATA, else ../shared/data beside the repository (tests skip without it)."""
    import os

    return Path(os.environ.get("UNETSEG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def cli():
    """``unetseg.cli.main.main``; the logging set-up it installs (writing to the captured stderr) is undone after
    the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield main
    root.handlers[:] = handlers
    root.setLevel(level)


def randomize_weights(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Weights that make every layer matter: He-initialised convolutions (activations neither vanish nor explode
    through the depth), batch-norm statistics far from the identity, and a head bias that balances the classes."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel() if isinstance(m, torch.nn.Conv2d) else m.weight.shape[0] * 4
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
        model.eval()
        side = model.input_size_for(48)  # shift the head so that noise images get both classes in equal parts
        logits = model(torch.randn(1, 1, side, side, generator=gen))
        model.head.bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    return model


def assert_same_outputs_and_gradients(reference: torch.nn.Module, ours: torch.nn.Module, x: torch.Tensor,
                                      tol: float) -> torch.Tensor:
    """``ours`` computes ``reference``'s function: the same output on ``x`` and the same gradients of the input,
    weight and bias for a random upstream gradient, within ``tol``; returns ``ours``' output."""
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected, got = reference(xa), ours(xb)
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol)
    upstream = torch.randn_like(expected)
    (expected * upstream).sum().backward()
    (got * upstream).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(ours.bias.grad, reference.bias.grad, rtol=tol, atol=tol)
    return got
