"""UNet++ (Zhou et al., DLMIA 2018): parameter counts, sizes, nested skip pathways, deep supervision and pruning."""

from __future__ import annotations

import pytest
import torch

from unetseg.models import create_model
from unetseg.models.unetpp import NestedNode, UNetPlusPlus

WIDTHS = [32, 64, 128, 256, 512]  # the paper's filters, depth 4


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv3(cin: int, cout: int, norm: bool) -> int:
    """A 3x3 convolution: no bias but BN (gamma, beta) when normalised, a bias otherwise."""
    return 9 * cin * cout + (2 * cout if norm else cout)


def double_conv(cin: int, cout: int, norm: bool) -> int:
    return conv3(cin, cout, norm) + conv3(cout, cout, norm)


def upsampler(cin: int, cout: int, mode: str) -> int:
    if mode == "transpose":  # 2x2 transposed conv with bias
        return 4 * cin * cout + cout
    return cin * cout + cout  # bilinear interpolation (no weights) + 1x1 conv with bias


def unetpp_params(norm: bool, mode: str, num_classes: int = 1, heads: int = 1, w: list[int] = WIDTHS) -> int:
    depth = len(w) - 1
    encoder = double_conv(1, w[0], norm) + sum(double_conv(w[i - 1], w[i], norm) for i in range(1, depth + 1))
    # X^{i,j}, j >= 1: upsample X^{i+1,j-1} to w[i] maps, concatenate with X^{i,0..j-1}: (j + 1) * w[i] inputs
    nodes = sum(
        upsampler(w[i + 1], w[i], mode) + double_conv((j + 1) * w[i], w[i], norm)
        for i in range(depth)
        for j in range(1, depth - i + 1)
    )
    return encoder + nodes + heads * (w[0] * num_classes + num_classes)


def test_parameter_counts_from_first_principles():
    with torch.device("meta"):
        default = create_model("unetpp", num_classes=1, up_mode="bilinear")
        keras = create_model("unetpp", num_classes=1, norm="none")
        transpose_bn = create_model("unetpp", num_classes=1)  # the registered defaults
        supervised = create_model("unetpp", num_classes=1, deep_supervision=True, up_mode="bilinear")
        two_class = create_model("unetpp", up_mode="bilinear")
        unet_bn = create_model("unet_bn", base_channels=32, num_classes=1)
    assert n_params(default) == unetpp_params(True, "bilinear") == 8_357_121
    assert n_params(two_class) == unetpp_params(True, "bilinear", num_classes=2) == 8_357_154
    assert n_params(supervised) == unetpp_params(True, "bilinear", heads=4) == 8_357_121 + 3 * 33
    # The paper's table (U-Net 7.76M, UNet++ 9.04M) comes from the authors' Keras code: 3x3 convs with bias, no
    # normalisation, 2x2 transposed-conv upsampling to w[i] maps, one sigmoid output: 7,759,521 and 9,041,601.
    # With norm="none", up_mode="transpose" our UNet++ is exactly that network.
    assert n_params(keras) == unetpp_params(False, "transpose") == 9_041_601
    # Batch norm replaces each 3x3 conv's bias (c) by gamma and beta (2c): + c per conv. UNet++ has 15 double convs,
    # sum of output channels 2 * (32+64+128+256+512) + 2 * (4*32 + 3*64 + 2*128 + 256) = 1984 + 1664 = 3648.
    assert n_params(transpose_bn) == 9_041_601 + 3648 == unetpp_params(True, "transpose")
    # The bilinear upsampler is a 1x1 conv (w[i+1] * w[i] weights) instead of a 2x2 transposed conv
    # (4 * w[i+1] * w[i]): 3 * (4*64*32 + 3*128*64 + 2*256*128 + 512*256) = 688,128 fewer weights.
    assert n_params(transpose_bn) - n_params(default) == 688_128
    # Our unet_bn (BN, transposed convs) with 32 base channels: the Keras U-Net's 7,759,521 + one channel per conv
    # output for BN: 18 convs with 2 * (32+64+128+256+512) + 2 * (256+128+64+32) = 2944 channels.
    assert n_params(unet_bn) == 7_759_521 + 2944 == 7_762_465


def test_structure_matches_the_paper():
    model = create_model("unetpp", num_classes=1, norm="none", up_mode="transpose")
    assert len(model.encoder) == 5  # X^{0..4,0}
    nested = [m for m in model.modules() if isinstance(m, NestedNode)]
    assert len(nested) == 10  # 15 nodes X^{i,j} with i + j <= 4, 5 of them on the backbone
    for i, row in enumerate(model.nodes):
        assert len(row) == 4 - i
        for j, node in enumerate(row, start=1):
            first = node.conv[0][0]
            assert first.in_channels == (j + 1) * WIDTHS[i] and first.out_channels == WIDTHS[i]
            assert isinstance(node.up, torch.nn.ConvTranspose2d)
            assert node.up.kernel_size == (2, 2) and node.up.stride == (2, 2)
            assert node.up.in_channels == WIDTHS[i + 1]
    convs3 = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 30 and all(c.padding == (1, 1) for c in convs3)
    assert len(model.heads) == 1
    bilinear = create_model("unetpp", base_channels=4, up_mode="bilinear")
    up = bilinear.nodes[0][0].up
    assert isinstance(up[0], torch.nn.Upsample) and up[0].mode == "bilinear" and up[1].kernel_size == (1, 1)
    bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in bilinear.modules())
    assert bn == 30 and all(c.bias is None for c in bilinear.modules()
                            if isinstance(c, torch.nn.Conv2d) and c.kernel_size == (3, 3))


@pytest.mark.parametrize("depth,size", [(2, 4), (2, 12), (3, 24), (4, 16), (4, 48)])
@pytest.mark.parametrize("up_mode", ["bilinear", "transpose"])
def test_output_size_matches_forward(depth, size, up_mode):
    model = create_model("unetpp", base_channels=2, depth=depth, num_classes=3, up_mode=up_mode).eval()
    out = model(torch.randn(1, 1, size, size + 2**depth))
    assert tuple(out.shape) == (1, 3, size, size + 2**depth)
    assert model.output_size(size) == size and model.margin(size) == 0
    assert model.input_size_rule() == f"multiple of {2**depth}; output size == input size"


@pytest.mark.parametrize("size", [0, 8, 20, 33])
def test_rejects_sizes_that_are_not_multiples_of_16(size):
    model = create_model("unetpp", base_channels=2)
    assert not model.is_valid_input(size)
    with pytest.raises(ValueError, match=str(size)):
        model.output_size(size)
    assert model.input_size_for(max(size, 1)) == max(16, -(-size // 16) * 16)


def test_norms_and_invalid_options():
    for norm in ("none", "batch", "instance", "group"):
        model = create_model("unetpp", base_channels=4, depth=2, norm=norm, num_classes=1)
        model.train()
        out = model(torch.randn(2, 1, 8, 8))
        assert tuple(out.shape) == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="up_mode"):
        create_model("unetpp", up_mode="nearest")
    with pytest.raises(ValueError, match="norm"):
        create_model("unetpp", norm="layer")
    with pytest.raises(ValueError, match="deep_supervision"):
        create_model("unetpp", inference_head=2)
    with pytest.raises(ValueError, match="1..4"):
        create_model("unetpp", deep_supervision=True, inference_head=5)
    with pytest.raises(ValueError, match="1..2"):
        UNetPlusPlus(base_channels=2, depth=2, deep_supervision=True).inference_head = 0


def tiny_supervised(depth: int = 3, **kwargs) -> UNetPlusPlus:
    torch.manual_seed(0)
    # no normalisation: train and eval modes compute the same function, so their heads can be compared
    return create_model("unetpp", base_channels=4, depth=depth, norm="none", num_classes=2,
                        deep_supervision=True, **kwargs)


def test_deep_supervision_training_returns_all_heads_shallow_to_deep():
    model = tiny_supervised().train()
    x = torch.randn(2, 1, 16, 24)
    outs = model(x)
    assert isinstance(outs, list) and len(outs) == 3
    assert all(tuple(o.shape) == (2, 2, 16, 24) for o in outs)
    # head j only depends on the nodes of the U-Net of depth j: it is the (pruned) sub-network's output
    for k in (1, 2, 3):
        pruned = tiny_supervised(inference_head=k).eval()
        torch.testing.assert_close(pruned(x), outs[k - 1])
    # backward through the sum of the heads' losses reaches every head and the first encoder layer
    # (bias gradients: a 4-channel net without normalisation may have dead ReLU maps feeding a head's weights)
    sum(o.square().mean() for o in outs).backward()
    assert all(h.bias.grad is not None and h.bias.grad.abs().sum() > 0 for h in model.heads)
    assert model.encoder[0][0][0].weight.grad.abs().sum() > 0


def test_eval_averages_the_heads_accurate_mode():
    model = tiny_supervised()
    x = torch.randn(1, 1, 16, 16)
    heads = model.train()(x)
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.stack(heads).mean(0))


def count_node_calls(model: UNetPlusPlus, x: torch.Tensor) -> set[str]:
    called: set[str] = set()
    named = [(f"X{i},0", m) for i, m in enumerate(model.encoder)]
    named += [(f"X{i},{j}", m) for i, row in enumerate(model.nodes) for j, m in enumerate(row, start=1)]
    hooks = [m.register_forward_hook(lambda *_, n=name: called.add(n)) for name, m in named]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return called


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_pruned_inference_equals_head_k_and_computes_only_its_nodes(k):
    model = tiny_supervised(depth=4)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        full_heads = model.train()(x)
    model.eval()
    assert len(count_node_calls(model, x)) == 15  # accurate mode computes every node
    model.inference_head = k
    with torch.no_grad():
        torch.testing.assert_close(model(x), full_heads[k - 1])
    called = count_node_calls(model, x)
    expected = {f"X{i},{j}" for i in range(k + 1) for j in range(k + 1 - i)}
    assert called == expected and len(called) == (k + 1) * (k + 2) // 2
    assert model.active_nodes() == sorted(model.active_nodes(), key=lambda n: n[0] + n[1])
    assert {f"X{i},{j}" for i, j in model.active_nodes()} == expected
    model.train()  # pruning is an inference-time choice: training still returns every head
    assert len(model(x)) == 4


def test_eval_trace_matches_eager_with_deep_supervision():
    for head in (None, 2):
        model = tiny_supervised(depth=2, inference_head=head).eval()
        x = torch.randn(1, 1, 8, 8)
        traced = torch.jit.trace(model, x)
        torch.testing.assert_close(traced(x), model(x))
        torch.testing.assert_close(traced(torch.ones(1, 1, 8, 8)), model(torch.ones(1, 1, 8, 8)))


def test_without_deep_supervision_one_head_in_both_modes():
    model = create_model("unetpp", base_channels=2, depth=2, num_classes=1)
    x = torch.randn(2, 1, 8, 8)
    assert isinstance(model.train()(x), torch.Tensor)
    assert isinstance(model.eval()(x), torch.Tensor)
    assert len(model.heads) == 1
