"""Facts of the registered networks: the paper's sizes and parameter counts, input-size rules, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unetseg.models import UNet, create_model, list_models
from unetseg.models.blocks import MaxUnpool2x2, center_crop


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_paper_unet_parameter_count_and_tile_size():
    model = create_model("unet")  # 1 input channel, 2 classes
    assert n_params(model) == 31_030_658
    assert model.output_size(572) == 388
    assert model.margin(572) == 92
    with torch.device("meta"):
        meta = create_model("unet")
        out = meta(torch.empty(1, 1, 572, 572))
    assert tuple(out.shape) == (1, 2, 388, 388)


def test_unet_bn_parameter_count():
    model = create_model("unet_bn", in_channels=1, num_classes=1, base_channels=64, depth=4)
    assert n_params(model) == 31_036_481
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs and all(c.bias is None for c in convs)  # BN convs have no bias
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == len(convs)


def test_paper_unet_structure():
    model = create_model("unet")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.padding == (0, 0) for c in convs if c.kernel_size == (3, 3))
    assert len([c for c in convs if c.kernel_size == (3, 3)]) == 18  # 23 conv layers in total, as in the paper:
    ups = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(ups) == 4 and all(u.kernel_size == (2, 2) and u.stride == (2, 2) for u in ups)
    assert model.head.kernel_size == (1, 1)
    assert len(convs) + len(ups) == 23
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 1
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("size", [188, 204, 220, 252])
def test_valid_output_size_matches_forward(size):
    model = UNet(base_channels=2, padding="valid").eval()
    out = model(torch.zeros(1, 1, size, size))
    assert out.shape[-1] == model.output_size(size) == size - 184


@pytest.mark.parametrize("size", [187, 190, 196, 100])
def test_valid_rejects_sizes_that_break_pooling(size):
    model = UNet(base_channels=2, padding="valid")
    assert not model.is_valid_input(size)
    with pytest.raises(ValueError, match=str(size)):
        model.check_input(torch.zeros(1, 1, size, size))


def test_input_size_for_gives_smallest_covering_input():
    model = UNet(base_channels=2, padding="valid")
    assert model.input_size_for(388) == 572
    assert model.input_size_for(389) == 588  # next valid size (step 16)
    assert model.input_size_for(1) == 188
    same = UNet(base_channels=2, padding="same", depth=3)
    assert same.input_size_for(17) == 24 and same.output_size(24) == 24
    assert "multiple of 8" in same.input_size_rule()


@pytest.mark.parametrize("norm", ["none", "batch", "instance", "group"])
@pytest.mark.parametrize("up_mode", ["transpose", "bilinear"])
def test_same_padding_variants_keep_size_and_train(norm, up_mode):
    model = UNet(in_channels=3, num_classes=3, depth=2, base_channels=4, padding="same", norm=norm, up_mode=up_mode)
    x = torch.randn(2, 3, 20, 20)
    out = model(x)
    assert out.shape == (2, 3, 20, 20)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_registry_errors_name_the_valid_choices():
    assert {"unet", "unet_bn"} <= set(list_models())
    with pytest.raises(ValueError, match="unet_bn"):
        create_model("unett")
    with pytest.raises(ValueError, match="base_channels"):
        create_model("unet", base_chanels=8)
    model = create_model("unet", base_channels=None, depth=2)  # None means: the preset's default
    assert model.config["base_channels"] == 64 and model.config["depth"] == 2


def test_bad_options_raise():
    with pytest.raises(ValueError, match="padding"):
        UNet(padding="full")
    with pytest.raises(ValueError, match="norm"):
        UNet(norm="layer")
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)


def test_center_crop():
    x = torch.arange(36).reshape(1, 1, 6, 6)
    assert center_crop(x, 2, 2).flatten().tolist() == [14, 15, 20, 21]
    with pytest.raises(ValueError):
        center_crop(x, 7, 2)


def test_unpool_equals_torch_max_unpool2d():
    x = torch.randn(3, 5, 12, 8)
    pooled, indices = F.max_pool2d(x, 2, 2, return_indices=True)
    ours = MaxUnpool2x2()(pooled, indices)
    assert torch.equal(ours, F.max_unpool2d(pooled, indices, 2, 2))
    assert torch.equal(ours[ours != 0], x[ours != 0])  # pool then unpool keeps exactly the maxima
