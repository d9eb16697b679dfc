"""The image-by-image instance norm equals PyTorch's nn.InstanceNorm2d(affine=True): outputs, input and parameter
gradients (float64, both memory formats, batches of 1 and 3), a numerical gradient check, the same state-dict
keys, and the plain layer under tracing (export)."""

import pytest
import torch
from torch import nn

from unetseg.models.blocks import make_norm
from unetseg.models.instance_norm import InstanceNorm, _PerImageNorm

from conftest import assert_same_outputs_and_gradients


def _pair(channels: int) -> tuple[nn.InstanceNorm2d, InstanceNorm]:
    torch.manual_seed(0)
    reference = nn.InstanceNorm2d(channels, affine=True).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 2.0)
        reference.bias.uniform_(-1.0, 1.0)
    ours = InstanceNorm(channels).double()
    ours.load_state_dict(reference.state_dict())
    return reference, ours


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_equals_torch_instance_norm_forward_and_backward(batch: int, channels_last: bool) -> None:
    reference, ours = _pair(6)
    x = torch.randn(batch, 6, 7, 9, dtype=torch.float64) * 3 + 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got = assert_same_outputs_and_gradients(reference, ours, x, tol=1e-10)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last or batch == 1


def test_each_image_is_normalised_by_its_own_statistics() -> None:
    """Hand-checkable: with unit scale and zero shift, every map of every image has mean 0 and variance 1,
    whatever the other images hold."""
    norm = InstanceNorm(2)
    x = torch.stack([torch.randn(2, 5, 5) * 10 + 50, torch.randn(2, 5, 5) * 0.1 - 3])
    y = norm(x)
    torch.testing.assert_close(y.mean(dim=(2, 3)), torch.zeros(2, 2), atol=1e-5, rtol=0)
    variance = x.var(dim=(2, 3), unbiased=False)
    torch.testing.assert_close(y.var(dim=(2, 3), unbiased=False), variance / (variance + norm.eps), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm(x[1:]), y[1:])  # the first image does not change the second's result


def test_numerical_gradient() -> None:
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(3, dtype=torch.float64, requires_grad=True)
    bias = torch.rand(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w, b: _PerImageNorm.apply(a, w, b, 1e-5), (x, weight, bias))


def test_is_the_registered_instance_norm_with_the_same_keys_and_traces_as_the_plain_layer() -> None:
    norm = make_norm("instance", 4)
    assert isinstance(norm, InstanceNorm) and isinstance(norm, nn.InstanceNorm2d)
    assert set(norm.state_dict()) == set(nn.InstanceNorm2d(4, affine=True).state_dict()) == {"weight", "bias"}
    traced = torch.jit.trace(norm, torch.randn(2, 4, 6, 6))
    assert "instance_norm" in str(traced.graph)  # tracing records PyTorch's own operator, which exports
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(traced(x), norm(x))


def test_bfloat16_autocast_keeps_the_labels_of_float32() -> None:
    reference, ours = _pair(8)
    reference, ours = reference.float(), ours.float()
    x = torch.randn(2, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", torch.bfloat16):
        got = ours(x.bfloat16())
    torch.testing.assert_close(got.float(), reference(x), atol=0.05, rtol=0.02)
