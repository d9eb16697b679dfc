"""The shared pieces of the networks: the checked forward of SegmentationModel, the norm registry, the one 2x
upsampler, and the model registry built on unetseg.registry.Registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unetseg.models import MODELS, create_model, list_models, model_entry, model_options, register_model
from unetseg.models.base import SameSizeModel
from unetseg.models.blocks import NORMS, Up, make_norm, upsample2x
from unetseg.models.unetpp import NestedNode
from unetseg.registry import Registry


class Doubler(SameSizeModel):
    """A network that takes multiples of 4 and doubles its input; counts the input checks."""

    def __init__(self) -> None:
        super().__init__()
        self.in_channels, self.num_classes, self.size_step = 1, 1, 4
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.checks = 0

    def check_input(self, x: torch.Tensor) -> None:
        self.checks += 1
        super().check_input(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_forward_checks_the_input_once_then_runs_the_network():
    net = Doubler()
    x = torch.ones(1, 1, 8, 12)
    assert torch.equal(net(x), 2 * x)
    assert net.checks == 1
    with pytest.raises(ValueError, match="input side 6 is not accepted"):
        net(torch.ones(1, 1, 6, 8))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, H, W\)"):
        net(torch.ones(1, 3, 8, 8))


def test_forward_skips_the_check_while_tracing():
    net = Doubler()
    traced = torch.jit.trace(net, torch.ones(1, 1, 8, 8), check_trace=False)
    assert net.checks == 0
    assert torch.equal(traced(torch.ones(1, 1, 6, 6)), torch.full((1, 1, 6, 6), 2.0))  # no check in the graph


def test_forward_skips_the_check_while_compiling(monkeypatch):
    net = Doubler()
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert net(torch.ones(1, 1, 6, 6)).shape == (1, 1, 6, 6)
    assert net.checks == 0


def test_every_registered_network_implements_forward_through_the_base():
    for name in list_models():
        with torch.device("meta"):
            cls = type(create_model(name))
        assert "forward" not in vars(cls), f"{cls.__name__} overrides forward (implement _forward instead)"
        assert "_forward" in vars(cls), cls.__name__


def test_norm_registry_builds_the_same_layers():
    assert isinstance(NORMS, Registry) and list(NORMS) == ["none", "batch", "instance", "group"]
    assert "batch" in NORMS and "layer" not in NORMS and len(NORMS) == 4
    assert make_norm("none", 8) is None
    assert type(make_norm("batch", 8)) is nn.BatchNorm2d
    instance = make_norm("instance", 8)
    assert isinstance(instance, nn.InstanceNorm2d) and type(instance).__name__ == "InstanceNorm" and instance.affine
    assert make_norm("group", 8).num_groups == 8
    assert make_norm("group", 12).num_groups == 6  # 8 does not divide 12: reduced until it does
    assert make_norm("group", 12, groups=4).num_groups == 4
    assert make_norm("group", 3).num_groups == 3


def test_unknown_norm_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match=r"norm='layer' is not one of none, batch, instance, group"):
        make_norm("layer", 8)


@pytest.mark.parametrize("up_mode, keys", [("transpose", ["bias", "weight"]), ("bilinear", ["1.bias", "1.weight"])])
def test_upsample2x_doubles_the_size(up_mode, keys):
    up = upsample2x(8, 4, up_mode)
    assert up(torch.randn(2, 8, 3, 5)).shape == (2, 4, 6, 10)
    assert sorted(up.state_dict()) == keys


def test_upsample2x_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match=r"up_mode='nearest' is not one of transpose, bilinear"):
        upsample2x(8, 4, "nearest")


@pytest.mark.parametrize("up_mode", ["transpose", "bilinear"])
def test_unet_and_unetpp_share_the_upsampler(up_mode):
    unet_up = Up(8, 4, up_mode=up_mode).up
    node_up = NestedNode(4, 8, 1, "none", up_mode).up
    shapes = {k: v.shape for k, v in unet_up.state_dict().items()}
    assert shapes == {k: v.shape for k, v in node_up.state_dict().items()}
    assert type(unet_up) is type(node_up)


def test_model_registry_is_a_sorted_registry():
    assert isinstance(MODELS, Registry) and MODELS.kind == "model"
    assert list_models() == sorted(list_models()) == MODELS.names()
    entry = model_entry("unetpp")
    assert entry.name == "unetpp" and entry.description.startswith("UNet++") and "DLMIA 2018" in entry.paper
    assert entry.factory is MODELS.get("unetpp").factory
    assert model_options("segnet") == {"in_channels": 1, "num_classes": 2, "base_channels": 64, "depth": 5}


def test_model_registry_errors():
    with pytest.raises(ValueError, match="unknown model 'unett'.*unet, unet_bn"):
        model_entry("unett")
    with pytest.raises(ValueError, match=r"model 'segnet' has no option 'up_mode'; valid options: in_channels"):
        create_model("segnet", up_mode="bilinear")
    with pytest.raises(ValueError, match="model 'unet' is already registered"):
        register_model("unet", "again", "nowhere")(lambda: None)


def test_create_model_records_the_resolved_options():
    model = create_model("segnet", base_channels=2, depth=2, num_classes=None)
    assert model.config == {"name": "segnet", "in_channels": 1, "num_classes": 2, "base_channels": 2, "depth": 2}
