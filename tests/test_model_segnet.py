"""SegNet (Badrinarayanan, Kendall and Cipolla, TPAMI 2017): parameter counts, shapes and the pooling-index decoder."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unetseg.models import create_model
from unetseg.models.segnet import SegNet


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv3x3(cin: int, cout: int) -> int:
    """A 3x3 convolution with bias."""
    return 9 * cin * cout + cout


def bn(c: int) -> int:
    """Batch norm: a scale and a shift per channel."""
    return 2 * c


# VGG16's 13 convolutions (input channels, output channels), stage by stage, for 3 input channels.
VGG16_CONVS = [
    (3, 64), (64, 64),
    (64, 128), (128, 128),
    (128, 256), (256, 256), (256, 256),
    (256, 512), (512, 512), (512, 512),
    (512, 512), (512, 512), (512, 512),
]


def segnet_decoder_params(num_classes: int) -> int:
    """The mirrored decoder, deepest stage first; every conv has BN + ReLU except conv1_1_D (the classifier)."""
    with_bn = [
        (512, 512), (512, 512), (512, 512),  # stage 5: conv5_3_D .. conv5_1_D
        (512, 512), (512, 512), (512, 256),  # stage 4: the last conv reduces to stage 3's width
        (256, 256), (256, 256), (256, 128),  # stage 3
        (128, 128), (128, 64),               # stage 2
        (64, 64),                            # stage 1: conv1_2_D
    ]
    return sum(conv3x3(a, b) + bn(b) for a, b in with_bn) + conv3x3(64, num_classes)  # conv1_1_D: no BN


def segnet_encoder_params(in_channels: int) -> int:
    convs = [(in_channels, 64)] + VGG16_CONVS[1:]
    return sum(conv3x3(a, b) + bn(b) for a, b in convs)


def test_encoder_is_vgg16_bn():
    vgg16_conv = sum(conv3x3(a, b) for a, b in VGG16_CONVS)
    vgg16_bn = sum(bn(b) for _, b in VGG16_CONVS)
    assert vgg16_conv == 14_714_688  # the well-known size of VGG16's convolutional part
    assert vgg16_bn == 8_448
    with torch.device("meta"):
        model = create_model("segnet", in_channels=3, num_classes=12)
    encoder_convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in encoder_convs] == VGG16_CONVS
    assert all(c.bias is not None for c in encoder_convs)  # VGG16-BN keeps the conv biases
    assert sum(c.weight.numel() + c.bias.numel() for c in encoder_convs) == vgg16_conv
    assert n_params(model.encoder) == vgg16_conv + vgg16_bn == segnet_encoder_params(3)


@pytest.mark.parametrize(
    ("in_channels", "num_classes", "expected"),
    [(3, 12, 29_449_932), (3, 11, 29_449_355), (1, 2, 29_443_010)],
)
def test_parameter_count_from_first_principles(in_channels, num_classes, expected):
    with torch.device("meta"):
        model = create_model("segnet", in_channels=in_channels, num_classes=num_classes)
    total = segnet_encoder_params(in_channels) + segnet_decoder_params(num_classes)
    assert n_params(model) == total == expected
    # the paper's table quotes 29.5M parameters for SegNet
    assert abs(total - 29.5e6) / 29.5e6 < 0.002


def test_structure_pooling_indices_and_no_learned_upsampling():
    model = create_model("segnet", in_channels=3, num_classes=12, base_channels=4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 26  # 13 encoder + 13 decoder convolutions
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is not None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 25  # all but the classifier
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 5 and all(p.kernel_size == 2 and p.stride == 2 and p.return_indices for p in pools)
    unpools = [m for m in model.modules() if isinstance(m, nn.MaxUnpool2d)]
    assert len(unpools) == 5
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.Upsample)) for m in model.modules())
    # decoder stages see only the unpooled features: input width == the mirrored encoder width (no concatenation)
    widths = [4, 8, 16, 32, 32]
    firsts = [next(m for m in stage.modules() if isinstance(m, nn.Conv2d)) for stage in model.decoder]
    assert [c.in_channels for c in firsts] == widths[::-1]
    lasts = [[m for m in stage.modules() if isinstance(m, nn.Conv2d)][-1].out_channels for stage in model.decoder]
    assert lasts == [32, 16, 8, 4, 12]
    # the classifier is a bare 3x3 conv: the logits come straight out of it (no BN, no ReLU)
    classifier = model.decoder[-1].convs[-1]
    assert isinstance(classifier, nn.Conv2d) and classifier.out_channels == 12
    out = model(torch.randn(1, 3, 32, 32))
    assert out.min() < 0 < out.max()


def test_depth_uses_the_first_vgg_stages():
    model = SegNet(in_channels=1, num_classes=2, base_channels=64, depth=3)
    enc = [(c.in_channels, c.out_channels) for c in model.encoder.modules() if isinstance(c, nn.Conv2d)]
    assert enc == [(1, 64)] + VGG16_CONVS[1:7]
    dec = [(c.in_channels, c.out_channels) for c in model.decoder.modules() if isinstance(c, nn.Conv2d)]
    assert dec == [(256, 256), (256, 256), (256, 128), (128, 128), (128, 64), (64, 64), (64, 2)]
    assert model.input_size_rule() == "multiple of 8; output size == input size"
    with pytest.raises(ValueError, match="depth"):
        SegNet(depth=6)
    with pytest.raises(ValueError, match="base_channels"):
        SegNet(base_channels=0)


@pytest.mark.parametrize(("depth", "height", "width"), [(5, 32, 32), (5, 64, 96), (5, 96, 64), (3, 24, 40), (1, 6, 2)])
def test_output_shapes(depth, height, width):
    model = create_model("segnet", in_channels=3, num_classes=5, base_channels=4, depth=depth).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert tuple(out.shape) == (2, 5, height, width)
    assert model.output_size(height) == height and model.output_size(width) == width


@pytest.mark.parametrize("size", [16, 48, 100, 0])
def test_rejects_sizes_that_are_not_multiples_of_32(size):
    model = SegNet(base_channels=4)
    assert not model.is_valid_input(size)
    with pytest.raises(ValueError, match=str(size)):
        model.output_size(size)
    assert model.input_size_for(100) == 128
    if size:
        with pytest.raises(ValueError, match=str(size)):
            model(torch.zeros(1, 1, size, 32))


def test_unpooling_puts_values_at_the_argmax_positions_by_hand():
    model = SegNet(base_channels=1, depth=1)
    x = torch.tensor([[1.0, 5.0, 2.0, 0.0],
                      [3.0, 4.0, 8.0, 1.0],
                      [0.0, 2.0, 9.0, 6.0],
                      [7.0, 1.0, 3.0, 4.0]]).view(1, 1, 4, 4)
    pooled, indices = model.encoder[0].pool(x)
    assert pooled.view(-1).tolist() == [5.0, 8.0, 7.0, 9.0]
    assert indices.view(-1).tolist() == [0 * 4 + 1, 1 * 4 + 2, 3 * 4 + 0, 2 * 4 + 2]
    # new values (as the decoder would have) go exactly where the maxima were, zeros everywhere else
    up = model.decoder[0].unpool(torch.tensor([[10.0, 20.0], [30.0, 40.0]]).view(1, 1, 2, 2), indices)
    expected = torch.tensor([[0.0, 10.0, 0.0, 0.0],
                             [0.0, 0.0, 20.0, 0.0],
                             [0.0, 0.0, 40.0, 0.0],
                             [30.0, 0.0, 0.0, 0.0]]).view(1, 1, 4, 4)
    assert torch.equal(up, expected)


def test_decoder_unpools_with_the_encoder_indices_end_to_end():
    model = SegNet(base_channels=4, depth=3)
    pooled_indices: list[torch.Tensor] = []
    unpool_calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for stage in model.encoder:
        stage.pool.register_forward_hook(lambda m, args, out: pooled_indices.append(out[1]))
    for stage in model.decoder:
        stage.unpool.register_forward_hook(lambda m, args, out: unpool_calls.append((args[0], args[1], out)))
    model(torch.randn(2, 1, 32, 24))
    assert len(pooled_indices) == len(unpool_calls) == 3
    for indices, (x, used, out) in zip(reversed(pooled_indices), unpool_calls):
        assert used is indices  # the decoder stage uses the mirrored encoder stage's indices
        assert out.shape[-2:] == (2 * x.shape[-2], 2 * x.shape[-1])
        flat_out, flat_idx = out.flatten(2), indices.flatten(2)
        assert torch.equal(flat_out.gather(2, flat_idx), x.flatten(2))
        hit = torch.zeros_like(flat_out, dtype=torch.bool).scatter(2, flat_idx, True)
        assert hit.sum() == x.numel()  # one position per value, exactly one per 2x2 window
        assert torch.all(flat_out[~hit] == 0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_trace_matches_eager_for_other_sizes():
    model = SegNet(base_channels=4, depth=3).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.randn(1, 1, 32, 32))
        for shape in [(1, 1, 32, 32), (2, 1, 16, 40)]:
            x = torch.randn(*shape)
            assert torch.allclose(traced(x), model(x), atol=1e-6)


def test_sixteen_channel_variant_trains_on_cpu():
    model = create_model("segnet", base_channels=16)
    assert n_params(model) < 2_000_000
    x = torch.randn(2, 1, 128, 128)
    start = time.perf_counter()
    out = model(x)
    F.cross_entropy(out, torch.randint(0, 2, (2, 128, 128))).backward()
    elapsed = time.perf_counter() - start
    assert out.shape == (2, 2, 128, 128)
    assert all(p.grad is not None for p in model.parameters())
    assert elapsed < 20  # about 1 s on two CPU cores; generous for a loaded machine
