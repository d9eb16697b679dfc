"""FusionNet (Quan, Hildebrand and Jeong, 2016): parameter count, residual blocks, summed skips, shapes."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unetseg.models import create_model
from unetseg.models.fusionnet import ConvResidualConv, FusionNet, ResidualBlock


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv3x3(cin: int, cout: int) -> int:
    """A 3x3 convolution followed by batch norm: no bias."""
    return 9 * cin * cout


def bn(c: int) -> int:
    return 2 * c


def block(cin: int, cout: int) -> int:
    """conv (cin -> cout), residual block of three convs (cout), conv (cout): five conv + BN layers."""
    return conv3x3(cin, cout) + bn(cout) + 4 * (conv3x3(cout, cout) + bn(cout))


def up(cin: int, cout: int, kernel: int = 3) -> int:
    """Stride-2 transposed convolution (no bias) + BN."""
    return kernel * kernel * cin * cout + bn(cout)


def test_default_parameter_count_from_first_principles():
    encoder = block(1, 64) + block(64, 128) + block(128, 256) + block(256, 512)
    bridge = block(512, 1024)
    decoder = (up(1024, 512) + block(512, 512)) + (up(512, 256) + block(256, 256)) \
        + (up(256, 128) + block(128, 128)) + (up(128, 64) + block(64, 64))
    head = 64 * 2 + 2  # 1x1 conv with bias
    with torch.device("meta"):
        model = create_model("fusionnet")  # 1 input channel, 2 classes, base 64, depth 4
    assert n_params(model) == encoder + bridge + decoder + head == 78_515_522
    assert n_params(model.bridge) == bridge  # the bridge alone is more than half of the network
    with torch.device("meta"):
        small_up = create_model("fusionnet", up_kernel=2)
    decoder2 = sum(up(2 * w, w, 2) + block(w, w) for w in (512, 256, 128, 64))
    assert n_params(small_up) == encoder + bridge + decoder2 + head == 75_033_922


def test_structure():
    model = FusionNet(base_channels=4, depth=4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    convs3 = [c for c in convs if c.kernel_size == (3, 3)]
    assert len(convs3) == 5 * (4 + 1 + 4)  # five per level: 4 encoder levels, the bridge, 4 decoder levels
    assert all(c.padding == (1, 1) and c.bias is None for c in convs3)
    # every 3x3 conv is followed by BN and ReLU
    seqs = [m for m in model.modules() if isinstance(m, nn.Sequential) and isinstance(m[0], nn.Conv2d)]
    assert len([s for s in seqs if s[0].kernel_size == (3, 3)]) == len(convs3)
    assert all(isinstance(s[1], nn.BatchNorm2d) and isinstance(s[2], nn.ReLU) for s in seqs)
    assert sum(isinstance(m, ResidualBlock) for m in model.modules()) == 9
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 4
    assert all(u.kernel_size == (3, 3) and u.stride == (2, 2) and u.padding == (1, 1) for u in ups)
    assert [u.out_channels for u in ups] == [32, 16, 8, 4]
    assert [e[0][0].out_channels for e in model.encoders] == [4, 8, 16, 32]
    assert model.bridge[0][0].out_channels == 64
    # summed skips: a decoder block takes the level's width, not twice of it
    assert [d[0][0].in_channels for d in model.decoders] == [32, 16, 8, 4]
    assert model.head.kernel_size == (1, 1) and model.head.out_channels == 2
    assert not any(isinstance(m, nn.Upsample) for m in model.modules())


def test_residual_block_adds_the_identity():
    torch.manual_seed(0)
    res = ResidualBlock(3)
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(res(x), res.body(x) + x)
    for m in res.modules():
        if isinstance(m, nn.BatchNorm2d):  # the body now outputs relu(0) = 0: the block is the identity
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    assert torch.equal(res(x), x)
    assert len(list(res.body.children())) == 3


def test_level_block_is_conv_residual_conv():
    blk = ConvResidualConv(2, 6)
    first, res, last = blk
    assert first[0].in_channels == 2 and first[0].out_channels == 6
    assert isinstance(res, ResidualBlock) and last[0].in_channels == last[0].out_channels == 6
    assert blk(torch.randn(1, 2, 5, 7)).shape == (1, 6, 5, 7)


def test_decoder_adds_the_encoder_features():
    model = FusionNet(base_channels=4, depth=3)
    skips: list[torch.Tensor] = []
    upsampled: list[torch.Tensor] = []
    decoder_inputs: list[torch.Tensor] = []
    for enc in model.encoders:
        enc.register_forward_hook(lambda m, args, out: skips.append(out.detach().clone()))
    for u in model.ups:
        u.register_forward_hook(lambda m, args, out: upsampled.append(out.detach().clone()))
    for dec in model.decoders:
        dec.register_forward_pre_hook(lambda m, args: decoder_inputs.append(args[0].detach().clone()))
    model(torch.randn(2, 1, 24, 16))
    assert len(skips) == len(upsampled) == len(decoder_inputs) == 3
    for skip, u, d in zip(reversed(skips), upsampled, decoder_inputs):
        assert skip.shape == u.shape == d.shape
        assert torch.allclose(d, u + skip)


@pytest.mark.parametrize(("depth", "height", "width"), [(4, 16, 16), (4, 32, 48), (4, 64, 64), (2, 12, 4), (1, 2, 6)])
def test_output_shapes(depth, height, width):
    model = create_model("fusionnet", in_channels=3, num_classes=4, base_channels=4, depth=depth).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert tuple(out.shape) == (2, 4, height, width)
    assert model.output_size(height) == height and model.output_size(width) == width


def test_two_by_two_up_convolution_option():
    model = create_model("fusionnet", base_channels=4, up_kernel=2)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert all(u.kernel_size == (2, 2) and u.stride == (2, 2) for u in ups)
    assert model(torch.randn(1, 1, 32, 16)).shape == (1, 2, 32, 16)
    with pytest.raises(ValueError, match="up_kernel"):
        create_model("fusionnet", up_kernel=4)


@pytest.mark.parametrize("size", [8, 24, 33, 0])
def test_rejects_sizes_that_are_not_multiples_of_16(size):
    model = FusionNet(base_channels=4)
    assert model.input_size_rule() == "multiple of 16; output size == input size"
    assert not model.is_valid_input(size)
    with pytest.raises(ValueError, match=str(size)):
        model.output_size(size)
    if size:
        with pytest.raises(ValueError, match=str(size)):
            model(torch.zeros(1, 1, 16, size))
    assert model.input_size_for(33) == 48


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_trace_matches_eager():
    model = FusionNet(base_channels=4, depth=2).eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
        assert torch.allclose(traced(x), model(x), atol=1e-6)


def test_sixteen_channel_variant_trains_on_cpu():
    model = create_model("fusionnet", base_channels=16)
    assert n_params(model) < 5_000_000
    x = torch.randn(2, 1, 128, 128)
    start = time.perf_counter()
    out = model(x)
    F.cross_entropy(out, torch.randint(0, 2, (2, 128, 128))).backward()
    elapsed = time.perf_counter() - start
    assert out.shape == (2, 2, 128, 128)
    assert all(p.grad is not None for p in model.parameters())
    assert elapsed < 20  # about 1 s on two CPU cores; generous for a loaded machine
