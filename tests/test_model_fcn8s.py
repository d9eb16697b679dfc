"""FCN-8s (Long, Shelhamer and Darrell, CVPR 2015; reference network voc-fcn8s): sizes, parameters, structure."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
import torch
from torch import nn

from unetseg.models import create_model
from unetseg.models.fcn8s import FCN8s, OUTPUT_OFFSET, POOL3_OFFSET, POOL4_OFFSET
from unetseg.models.vgg import bilinear_kernel

TINY = {"base_channels": 4, "fc_channels": 16}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def expected_params(cin: int, k: int, base: int = 64, fc: int = 4096) -> int:
    """FCN-8s parameters layer by layer (every convolution has a bias, the transposed convolutions have none)."""
    w1, w2, w3, w4, w5 = base, 2 * base, 4 * base, 8 * base, 8 * base
    conv = lambda ks, i, o: ks * ks * i * o + o  # noqa: E731
    trunk = (
        conv(3, cin, w1) + conv(3, w1, w1)  # conv1_1, conv1_2
        + conv(3, w1, w2) + conv(3, w2, w2)  # conv2_x
        + conv(3, w2, w3) + 2 * conv(3, w3, w3)  # conv3_x
        + conv(3, w3, w4) + 2 * conv(3, w4, w4)  # conv4_x
        + 3 * conv(3, w4, w5)  # conv5_x
    )
    fully_conv = conv(7, w5, fc) + conv(1, fc, fc)  # fc6 (7x7), fc7 (1x1)
    scores = conv(1, fc, k) + conv(1, w4, k) + conv(1, w3, k)  # score_fr, score_pool4, score_pool3
    upsampling = 4 * 4 * k * k + 4 * 4 * k * k + 16 * 16 * k * k  # upscore2, upscore_pool4, upscore8 (no bias)
    return trunk + fully_conv + scores + upsampling


def test_parameter_count_default_and_voc():
    with torch.device("meta"):
        default = create_model("fcn8s")
        voc = create_model("fcn8s", in_channels=3, num_classes=21)
    assert n_params(default) == expected_params(1, 2) == 134_270_278
    # The paper's "134M" for FCN-VGG16: VGG16 minus its classifier fc8 (138,357,544 - 4,097,000 = 134,260,544)
    # plus the score and upsampling layers for 21 classes (229,215) = 134,489,759, i.e. 134.5M.
    assert n_params(voc) == expected_params(3, 21) == 134_489_759
    vgg16_without_fc8 = 138_357_544 - (4096 * 1000 + 1000)
    assert n_params(voc) - vgg16_without_fc8 == 229_215
    assert round(n_params(voc) / 1e6) == 134


def test_parameter_count_small_width():
    model = create_model("fcn8s", in_channels=3, num_classes=5, base_channels=16, fc_channels=256)
    assert n_params(model) == expected_params(3, 5, 16, 256)


def test_forward_keeps_every_input_size():
    model = create_model("fcn8s", **TINY).eval()
    with torch.no_grad():
        for size in [*range(1, 81), 97, 127, 160, 224, 255]:
            out = model(torch.zeros(1, 1, size, size))
            assert out.shape == (1, 2, size, size), size
            assert model.output_size(size) == size


@pytest.mark.parametrize("height, width", [(1, 80), (33, 7), (100, 65), (224, 300)])
def test_forward_non_square(height, width):
    model = create_model("fcn8s", in_channels=3, num_classes=4, **TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert out.shape == (2, 4, height, width)


def test_output_size_accepts_every_positive_side():
    model = create_model("fcn8s", **TINY)
    assert all(model.output_size(s) == s for s in range(1, 5000))
    assert model.margin(123) == 0 and model.input_size_for(57) == 57
    assert model.input_size_rule() == "any size >= 1; output size == input size"
    for bad in (0, -3):
        with pytest.raises(ValueError, match=str(bad)):
            model.output_size(bad)


def test_vgg16_trunk_and_fully_convolutional_layers():
    model = FCN8s(in_channels=3, num_classes=21, **TINY)
    convs3 = [m for m in model.stages.modules() if isinstance(m, nn.Conv2d)]
    assert [len([m for m in s.modules() if isinstance(m, nn.Conv2d)]) for s in model.stages] == [2, 2, 3, 3, 3]
    assert all(c.kernel_size == (3, 3) and c.bias is not None for c in convs3)
    assert convs3[0].padding == (100, 100) and all(c.padding == (1, 1) for c in convs3[1:])
    assert [s[-1][0].out_channels for s in model.stages] == [4, 8, 16, 32, 32]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.pool.kernel_size == 2 and model.pool.stride == 2 and model.pool.ceil_mode  # Caffe rounds up
    fc6, fc7 = model.fc6[0], model.fc7[0]
    assert fc6.kernel_size == (7, 7) and fc6.padding == (0, 0) and fc6.out_channels == 16
    assert fc7.kernel_size == (1, 1) and fc7.out_channels == 16
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    for score, cin in ((model.score_fr, 16), (model.score_pool4, 32), (model.score_pool3, 16)):
        assert score.kernel_size == (1, 1) and score.in_channels == cin and score.out_channels == 21


def test_upsampling_layers_and_initialisation():
    model = FCN8s(num_classes=3, **TINY)
    ups = [model.upscore2, model.upscore_pool4, model.upscore8]
    assert [(u.kernel_size, u.stride, u.padding) for u in ups] == [((4, 4), (2, 2), (0, 0)), ((4, 4), (2, 2), (0, 0)),
                                                                  ((16, 16), (8, 8), (0, 0))]
    assert all(u.bias is None and u.in_channels == u.out_channels == 3 for u in ups)  # sum fusion: no concat
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert torch.equal(model.upscore2.weight[1, 1], taps[:, None] * taps[None, :])
    assert torch.count_nonzero(model.upscore2.weight[0, 1]) == 0  # each class upsamples only itself
    assert torch.equal(model.upscore8.weight, bilinear_kernel(3, 16))
    for score in (model.score_fr, model.score_pool4, model.score_pool3):
        assert torch.count_nonzero(score.weight) == 0 and torch.count_nonzero(score.bias) == 0
    # at initialisation the scores are zero, so is the output
    assert torch.count_nonzero(model.eval()(torch.randn(1, 1, 40, 40))) == 0


def test_bilinear_kernel_interpolates():
    up = nn.ConvTranspose2d(1, 1, 16, stride=8, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(1, 16))
        ramp = torch.arange(6.0).repeat(6, 1)[None, None]  # value = column index
        out = up(ramp)
    # away from the borders, output pixel o lies at input coordinate (o - 7.5) / 8: a linear ramp is reproduced
    cols = torch.arange(8, 48)
    assert torch.allclose(out[0, 0, 20, cols], (cols - 7.5) / 8)


def test_crop_offsets_follow_from_the_coordinate_maps():
    """Centre of each map's pixel j in input coordinates, composed layer by layer (Caffe's coord_map): x = a*j + b."""

    def conv(m, ks, pad, stride=1):  # output j sees inputs stride*j - pad ... stride*j - pad + ks - 1
        a, b = m
        return (a * stride, b + a * (Fraction(ks - 1, 2) - pad))

    def deconv(m, ks, stride):  # output o is at input (o - (ks - 1) / 2) / stride
        a, b = m
        return (a / stride, b - a * Fraction(ks - 1, 2) / stride)

    m = (Fraction(1), Fraction(0))
    m = conv(m, 3, 100)
    maps = {}
    for stage in range(1, 6):
        m = conv(m, 2, 0, 2)  # the other 3x3 convs (padding 1) do not move the centre
        maps[f"pool{stage}"] = m
    m = conv(maps["pool5"], 7, 0)  # fc6; fc7 and score_fr are 1x1
    up2 = deconv(m, 4, 2)
    offset4 = (up2[1] - maps["pool4"][1]) / maps["pool4"][0]
    up4 = deconv(up2, 4, 2)
    offset3 = (up4[1] - maps["pool3"][1]) / maps["pool3"][0]
    up32 = deconv(up4, 16, 8)
    assert up2[0] == maps["pool4"][0] and up4[0] == maps["pool3"][0] and up32[0] == 1
    assert (offset4, offset3, -up32[1]) == (POOL4_OFFSET, POOL3_OFFSET, OUTPUT_OFFSET) == (5, 9, 31)


def test_scores_are_fused_by_summation():
    model = FCN8s(num_classes=2, **TINY).eval()
    scores = (model.score_fr, model.score_pool4, model.score_pool3)
    with torch.no_grad():
        for s in scores:
            s.weight.normal_()
            s.bias.normal_()
        x = torch.randn(1, 1, 50, 45)
        full = model(x)
        parts = []
        saved = [(s.weight.clone(), s.bias.clone()) for s in scores]
        for keep in scores:  # the network output with only one score layer left on
            for s, (w, b) in zip(scores, saved):
                s.weight.copy_(w if s is keep else torch.zeros_like(w))
                s.bias.copy_(b if s is keep else torch.zeros_like(b))
            parts.append(model(x))
    assert all(p.abs().sum() > 0 for p in parts)
    assert torch.allclose(full, sum(parts), atol=1e-4)


def test_sixteen_channel_variant_trains_on_cpu():
    model = create_model("fcn8s", base_channels=16, fc_channels=256)
    x = torch.randn(1, 1, 224, 224)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        loss = model(x).square().mean()
        loss.backward()
        times.append(time.perf_counter() - start)
    assert all(p.grad is not None for p in model.parameters())
    assert min(times) < 10.0  # ~0.1-0.2 s on two free cores; generous for a loaded shared machine


def test_trace_matches_eager():
    model = create_model("fcn8s", in_channels=3, num_classes=3, **TINY).eval()
    with torch.no_grad():
        for s in (model.score_fr, model.score_pool4, model.score_pool3):
            s.weight.normal_()
    x = torch.randn(2, 3, 37, 52)
    traced = torch.jit.trace(model, x)
    assert torch.allclose(traced(x), model(x))
    other = torch.randn(1, 3, 64, 17)  # the traced graph is not tied to the traced size
    assert torch.allclose(traced(other), model(other))
