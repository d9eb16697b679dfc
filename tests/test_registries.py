"""The registries of losses, optimizers, schedules and instance methods: names, errors and extension."""

from __future__ import annotations

import inspect
import pkgutil
import sys

import numpy as np
import pytest
import torch
from torch import nn

import unetseg.losses
from unetseg.inference.postprocess import INSTANCE_METHODS, instances_from_semantic
from unetseg.losses import LOSS_CHOICES, LOSSES, build_loss, loss_options, resolve_loss
from unetseg.optim import OPTIMIZERS, SCHEDULES, build_optimizer
from unetseg.registry import Registry, RegistryError

BUILT_IN_LOSSES = ["ce", "bce", "dice", "focal", "tversky", "lovasz", "ce_dice", "bce_dice", "focal_dice"]


@pytest.mark.parametrize(("registry", "names"), [
    (LOSSES, BUILT_IN_LOSSES),
    (OPTIMIZERS, ["adam", "adamw", "sgd"]),
    (SCHEDULES, ["cosine", "poly", "constant"]),
    (INSTANCE_METHODS, ["components", "watershed", "seeded"]),
])
def test_registries_list_their_names_in_order(registry: Registry, names: list[str]):
    assert isinstance(registry, Registry)
    assert registry.names() == names == list(registry) and len(registry) == len(names)
    assert all(name in registry for name in names) and "nope" not in registry


@pytest.mark.parametrize("registry", [LOSSES, OPTIMIZERS, SCHEDULES, INSTANCE_METHODS])
def test_an_unknown_name_lists_the_registered_ones(registry: Registry):
    with pytest.raises(RegistryError, match=f"unknown {registry.kind} 'nope'; registered: "
                                            f"{', '.join(registry.names())}$"):
        registry.get("nope")


def test_unknown_names_in_the_builders_list_the_choices():
    with pytest.raises(RegistryError, match=f"loss='nope' is not one of {', '.join(LOSS_CHOICES)}$"):
        build_loss("nope", 2)
    with pytest.raises(RegistryError, match="registered: adam, adamw, sgd"):
        build_optimizer("nope", [nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(RegistryError, match="use one of components, watershed, seeded"):
        instances_from_semantic(np.ones((4, 4), bool), "nope")


def test_loss_choices_are_auto_then_the_registered_losses():
    assert LOSS_CHOICES == ("auto", *BUILT_IN_LOSSES)
    assert "auto" not in LOSSES
    assert [resolve_loss("auto", n) for n in (1, 2, 5)] == ["bce_dice", "ce_dice", "ce_dice"]
    assert resolve_loss("focal", 1) == "focal"


def test_every_loss_factory_follows_the_contract():
    for entry in LOSSES.entries():
        params = list(inspect.signature(entry.factory).parameters.values())
        assert params[0].kind is inspect.Parameter.POSITIONAL_ONLY, entry.name  # num_outputs is not an option
        assert all(p.default is not inspect.Parameter.empty for p in params[1:]), entry.name
        assert list(loss_options(entry.name))[-1] == "ignore_index"
        assert entry.info.get("heads", "any") in ("any", "binary", "multiclass")
        assert entry.description


def test_the_package_imports_every_module_of_its_own():
    for module in pkgutil.iter_modules(unetseg.losses.__path__):
        assert f"unetseg.losses.{module.name}" in sys.modules


class _Scaled(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor | None = None):
        return self.scale * logits.mean()


def test_one_decorator_adds_a_loss(monkeypatch):
    monkeypatch.setattr(LOSSES, "_entries", dict(LOSSES._entries))  # a throw-away copy of the entries

    @LOSSES.register("scaled", heads="binary", counterpart="ce", description="a test loss")
    def scaled(num_outputs: int, /, scale: float = 2.0, ignore_index: int | None = None) -> nn.Module:
        return _Scaled(scale)

    assert loss_options("scaled") == {"scale": 2.0, "ignore_index": None}
    loss = build_loss("scaled", 1, scale=3.0)
    assert isinstance(loss, _Scaled) and float(loss(torch.ones(1, 1, 2, 2), torch.zeros(1, 2, 2))) == 3.0
    with pytest.raises(ValueError, match=r"loss='scaled' needs a one-channel \(binary\) head, the model has 3 "
                                         "outputs; use 'ce'"):
        build_loss("scaled", 3)
    with pytest.raises(ValueError, match=r"unknown option\(s\) gain for loss='scaled'; valid options: scale, "
                                         "ignore_index"):
        build_loss("scaled", 1, gain=1.0)
    monkeypatch.undo()
    assert LOSSES.names() == BUILT_IN_LOSSES
    with pytest.raises(RegistryError, match="not one of"):
        build_loss("scaled", 1)


def test_an_optimizer_built_by_name_has_todays_settings():
    params = list(nn.Linear(2, 2).parameters())
    group = build_optimizer("sgd", params, lr=0.01, weight_decay=3e-5, momentum=0.99).param_groups[0]
    assert (group["lr"], group["weight_decay"], group["momentum"], group["nesterov"]) == (0.01, 3e-5, 0.99, True)
    group = build_optimizer("adam", params, lr=1e-3, weight_decay=1e-4).param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (1e-3, 1e-4)

