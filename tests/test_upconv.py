"""The up-convolution computed as a 1x1 convolution + pixel shuffle equals PyTorch's 2x2 stride-2 transposed
convolution with the same parameters: outputs and gradients, in float32 and in channels-last memory."""

import pytest
import torch
from torch import nn

from unetseg.models.blocks import UpConv2x2, upsample2x

from conftest import assert_same_outputs_and_gradients


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(2, 8, 5, 7), (1, 16, 4, 4)])
def test_same_output_and_gradients_as_conv_transpose(shape: tuple[int, int, int, int], channels_last: bool) -> None:
    torch.manual_seed(0)
    n, cin, h, w = shape
    reference = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2).double()
    ours = UpConv2x2(cin, cin // 2).double()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(shape, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got = assert_same_outputs_and_gradients(reference, ours, x, tol=1e-12)
    assert got.shape == (n, cin // 2, 2 * h, 2 * w)


def test_hand_computed_block() -> None:
    """One input pixel, one channel in and out: the output is the 2x2 kernel times the pixel, plus the bias."""
    up = UpConv2x2(1, 1)
    with torch.no_grad():
        up.weight.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
        up.bias.fill_(0.5)
    out = up(torch.full((1, 1, 1, 1), 2.0))
    torch.testing.assert_close(out, torch.tensor([[[[2.5, 4.5], [6.5, 8.5]]]]))


def test_is_the_transpose_mode_and_keeps_the_state_dict_keys() -> None:
    up = upsample2x(8, 4, "transpose")
    assert isinstance(up, UpConv2x2) and isinstance(up, nn.ConvTranspose2d)
    assert set(up.state_dict()) == {"weight", "bias"} and up.weight.shape == (8, 4, 2, 2)
