"""DeconvNet (Noh, Hong and Han, ICCV 2015): sizes, parameters, mirrored structure, pooling switches."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from unetseg.models import create_model
from unetseg.models.deconvnet import DeconvNet, FcBatchNorm2d

TINY = {"base_channels": 4, "fc_channels": 16}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def expected_params(cin: int, k: int, base: int = 64, fc: int = 4096, fc_kernel: int = 7) -> int:
    """DeconvNet parameters layer by layer: every (de)convolution + BN (2c) has no bias; the 1x1 score layer has one."""
    w1, w2, w3, w4, w5 = base, 2 * base, 4 * base, 8 * base, 8 * base
    cbr = lambda ks, i, o: ks * ks * i * o + 2 * o  # noqa: E731  (de)convolution without bias + batch norm
    encoder = (
        cbr(3, cin, w1) + cbr(3, w1, w1)  # conv1_1, conv1_2
        + cbr(3, w1, w2) + cbr(3, w2, w2)  # conv2_x
        + cbr(3, w2, w3) + 2 * cbr(3, w3, w3)  # conv3_x
        + cbr(3, w3, w4) + 2 * cbr(3, w4, w4)  # conv4_x
        + 3 * cbr(3, w4, w5)  # conv5_x
    )
    fully_conv = cbr(fc_kernel, w5, fc) + cbr(1, fc, fc) + cbr(fc_kernel, fc, w5)  # fc6, fc7, deconv-fc6
    decoder = (
        3 * cbr(3, w5, w5)  # deconv5_1..3
        + 2 * cbr(3, w4, w4) + cbr(3, w4, w3)  # deconv4_1, 4_2 (512), deconv4_3 (512 -> 256)
        + 2 * cbr(3, w3, w3) + cbr(3, w3, w2)  # deconv3_x (256 -> 128)
        + cbr(3, w2, w2) + cbr(3, w2, w1)  # deconv2_x (128 -> 64)
        + 2 * cbr(3, w1, w1)  # deconv1_1, deconv1_2
    )
    score = w1 * k + k
    return encoder + fully_conv + decoder + score


def test_parameter_count_default_and_voc():
    with torch.device("meta"):
        default = create_model("deconvnet")
        voc = create_model("deconvnet", in_channels=3, num_classes=21)
    assert n_params(default) == expected_params(1, 2) == 251_786_562
    assert n_params(voc) == expected_params(3, 21) == 251_788_949
    # the reference Caffe model also has a bias on each of its 13 + 3 + 13 (de)convolutions followed by BN:
    biases = (2 * 64 + 2 * 128 + 3 * 256 + 6 * 512) + (4096 + 4096 + 512) + (3 * 512 + 2 * 512 + 256 + 2 * 256 + 128
                                                                             + 128 + 64 + 2 * 64)
    assert round((n_params(voc) + biases) / 1e6) == 252  # the published 252M


@pytest.mark.parametrize("fc_kernel", [1, 3, 7])
def test_parameter_count_small_width(fc_kernel):
    model = create_model("deconvnet", in_channels=3, num_classes=5, base_channels=16, fc_channels=256,
                         fc_kernel=fc_kernel)
    assert n_params(model) == expected_params(3, 5, 16, 256, fc_kernel)


@pytest.mark.parametrize("height, width", [(224, 224), (256, 224), (224, 288), (320, 256)])
def test_forward_keeps_size(height, width):
    model = create_model("deconvnet", in_channels=3, num_classes=4, **TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert out.shape == (2, 4, height, width)
    assert model.output_size(height) == height and model.output_size(width) == width


@pytest.mark.parametrize("size", [32, 64, 96])
def test_small_fc_kernel_lowers_the_minimum_size(size):
    model = create_model("deconvnet", fc_kernel=1, **TINY)
    out = model(torch.randn(2, 1, size, size))  # training mode
    assert out.shape == (2, 2, size, size) and model.output_size(size) == size
    assert model.input_size_for(1) == 32


def test_accepted_sizes_and_messages():
    model = create_model("deconvnet", **TINY)
    accepted = [s for s in range(1, 600) if model.is_valid_input(s)]
    assert accepted == list(range(224, 600, 32))
    assert model.input_size_for(1) == 224 and model.input_size_for(225) == 256
    assert model.input_size_rule() == "multiple of 32, at least 224; output size == input size"
    assert create_model("deconvnet", fc_kernel=3, **TINY).input_size_for(1) == 96
    for bad in (0, 31, 192, 223, 240, 250):
        with pytest.raises(ValueError, match=rf"input side {bad} .*multiple of 32 of at least 224"):
            model.output_size(bad)
    with pytest.raises(ValueError, match="input side 200"):
        model(torch.zeros(1, 1, 200, 224))


def test_encoder_is_vgg16_with_batch_norm_and_switches():
    model = DeconvNet(in_channels=3, **TINY)
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [len([m for m in s.modules() if isinstance(m, nn.Conv2d)]) for s in model.encoder] == [2, 2, 3, 3, 3]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is None for c in convs)
    assert [s[-1][0].out_channels for s in model.encoder] == [4, 8, 16, 32, 32]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.encoder.modules()) == 13
    assert model.pool.kernel_size == 2 and model.pool.stride == 2 and model.pool.return_indices
    fc6, fc7, dfc6 = model.fc6[0], model.fc7[0], model.deconv_fc6[0]
    assert isinstance(fc6, nn.Conv2d) and fc6.kernel_size == (7, 7) and fc6.padding == (0, 0)
    assert isinstance(fc7, nn.Conv2d) and fc7.kernel_size == (1, 1) and fc7.out_channels == 16
    assert isinstance(dfc6, nn.ConvTranspose2d) and dfc6.kernel_size == (7, 7) and dfc6.out_channels == 32
    assert all(isinstance(b[1], FcBatchNorm2d) and isinstance(b[2], nn.ReLU) for b in (model.fc6, model.fc7,
                                                                                     model.deconv_fc6))


def test_decoder_mirrors_the_encoder():
    model = DeconvNet(**TINY)
    assert isinstance(model.unpool, nn.MaxUnpool2d)
    deconvs = [[m for m in s.modules() if isinstance(m, nn.ConvTranspose2d)] for s in model.decoder]
    assert [len(d) for d in deconvs] == [3, 3, 3, 2, 2]
    assert all(d.kernel_size == (3, 3) and d.padding == (1, 1) and d.stride == (1, 1) for s in deconvs for d in s)
    widths = [[(d.in_channels, d.out_channels) for d in s] for s in deconvs]
    assert widths == [
        [(32, 32), (32, 32), (32, 32)],  # deconv5_x (512)
        [(32, 32), (32, 32), (32, 16)],  # deconv4_x (512 -> 256)
        [(16, 16), (16, 16), (16, 8)],  # deconv3_x (256 -> 128)
        [(8, 8), (8, 4)],  # deconv2_x (128 -> 64)
        [(4, 4), (4, 4)],  # deconv1_x (64)
    ]
    # batch norm + ReLU after every convolution and deconvolution: 13 + fc6 + fc7 + deconv-fc6 + 13
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 29
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 29
    assert model.score.kernel_size == (1, 1) and model.score.out_channels == 2


def test_unpooling_uses_the_recorded_switches():
    # (MaxUnpool2x2 itself is checked against torch's max_unpool2d in test_models.py)
    model = DeconvNet(**TINY).eval()
    seen: dict[str, torch.Tensor] = {}

    def keep_first_switches(module, inputs, output):
        seen.setdefault("pool1", output[1])

    def keep_decoder_input(module, inputs, output):
        seen["unpool1"] = inputs[0]

    model.pool.register_forward_hook(keep_first_switches)
    model.decoder[4].register_forward_hook(keep_decoder_input)
    with torch.no_grad():
        model(torch.randn(1, 1, 224, 224))
    unpooled, switches = seen["unpool1"], seen["pool1"]
    assert unpooled.shape[-2:] == (224, 224)
    # every 2x2 window holds at most one non-zero, at the position the first max-pool recorded
    flat = unpooled.flatten(2)
    picked = torch.zeros_like(flat).scatter_(2, switches.flatten(2), flat.gather(2, switches.flatten(2)))
    assert torch.equal(flat, picked)
    assert torch.count_nonzero(flat) > 0


def test_single_image_batch_trains_and_fc_norm_falls_back():
    bn = FcBatchNorm2d(3)
    ref = nn.BatchNorm2d(3)
    x = torch.randn(4, 3, 1, 1)
    assert torch.allclose(bn(x), ref(x)) and torch.allclose(bn.running_mean, ref.running_mean)
    before = bn.running_mean.clone()
    one = torch.randn(1, 3, 1, 1)
    assert torch.allclose(bn(one), (one - before[None, :, None, None]) / torch.sqrt(bn.running_var + bn.eps)[
        None, :, None, None])
    assert torch.equal(bn.running_mean, before)  # not updated from a single value


def test_sixteen_channel_variant_trains_on_cpu():
    model = create_model("deconvnet", base_channels=16, fc_channels=256)
    x = torch.randn(1, 1, 224, 224)  # fc6/fc7 maps are 1x1 here: a batch of one image
    times = []
    for _ in range(2):
        start = time.perf_counter()
        loss = model(x).square().mean()
        loss.backward()
        times.append(time.perf_counter() - start)
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())
    assert min(times) < 10.0  # ~0.1 s on two free cores; generous for a loaded shared machine


def test_trace_matches_eager():
    model = create_model("deconvnet", in_channels=3, num_classes=3, fc_kernel=3, **TINY)
    model(torch.randn(2, 3, 96, 128))  # one training step's statistics, so the norms are not the identity
    model.eval()
    x = torch.randn(2, 3, 96, 128)
    traced = torch.jit.trace(model, x)
    assert torch.allclose(traced(x), model(x), atol=1e-5)
    other = torch.randn(1, 3, 128, 96)  # the traced graph is not tied to the traced size
    assert torch.allclose(traced(other), model(other), atol=1e-5)
