"""Optimizers and learning-rate schedules built by name (unetseg.optim)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from unetseg.optim import OPTIMIZERS, SCHEDULES, build_optimizer, lr_at, match_parameter_layout
from unetseg.registry import RegistryError


def _old_lr_at(step: int, total_steps: int, base_lr: float, schedule: str, warmup_steps: int) -> float:
    """The closed forms lr_at had before the schedules became a registry (resuming relies on equal values)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    t = min(max(step - warmup_steps, 0) / span, 1.0)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "poly":
        return base_lr * (1.0 - t) ** 0.9
    return base_lr


def test_lr_at_is_bit_identical_to_the_closed_forms():
    rng = random.Random(0)
    for _ in range(3000):
        total = rng.randint(1, 3000)
        warmup = rng.choice([0, rng.randint(0, total)])
        step = rng.randint(0, total + 5)
        base = rng.choice([1e-3, 3e-4, 0.01, 10 ** rng.uniform(-8, 1)])
        for schedule in SCHEDULES:
            assert lr_at(step, total, base, schedule, warmup).hex() == \
                _old_lr_at(step, total, base, schedule, warmup).hex()


def test_lr_at_values():
    assert lr_at(0, 100, 1.0, "cosine") == 1.0 and lr_at(50, 100, 1.0, "cosine") == 0.5
    assert lr_at(100, 100, 1.0, "cosine") == 0.0 and lr_at(100, 100, 1.0, "poly") == 0.0
    assert lr_at(70, 100, 0.3, "constant") == 0.3
    assert [lr_at(s, 100, 1.0, "cosine", warmup_steps=4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, 100, 1.0, "poly", warmup_steps=4) == 1.0  # the schedule starts after the warm-up


def test_unknown_schedule_lists_the_names():
    with pytest.raises(RegistryError, match=r"schedule='step' is not one of cosine, poly, constant"):
        lr_at(0, 10, 1.0, "step")


def _params() -> list[torch.nn.Parameter]:
    return list(torch.nn.Linear(3, 2).parameters())


def test_sgd_has_nesterov_momentum():
    opt = build_optimizer("sgd", _params(), lr=0.01, weight_decay=1e-4, momentum=0.9)
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["momentum"], group["nesterov"]) == (0.01, 1e-4, 0.9, True)
    assert build_optimizer("sgd", _params(), lr=0.1).param_groups[0]["momentum"] == 0.99  # the paper's value


@pytest.mark.parametrize(("name", "kind"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_adam_variants_take_lr_and_weight_decay(name, kind):
    opt = build_optimizer(name, _params(), lr=3e-4, weight_decay=0.05, momentum=0.5)  # momentum is not theirs
    assert type(opt) is kind
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (3e-4, 0.05) and "momentum" not in group


def test_sgd_steps_with_nesterov_momentum():
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    opt = build_optimizer("sgd", [weight], lr=0.1, momentum=0.5)
    (weight ** 2).sum().backward()
    opt.step()
    # Nesterov: gradient g = 2, buffer b = g, step g + momentum * b = 3 (plain momentum would step 2)
    assert float(weight.detach()) == pytest.approx(1.0 - 0.1 * 3.0)


def test_unknown_optimizer_lists_the_names():
    with pytest.raises(RegistryError, match=r"unknown optimizer 'rmsprop'; registered: adam, adamw, sgd"):
        build_optimizer("rmsprop", _params(), lr=0.1)
    assert OPTIMIZERS.names() == ["adam", "adamw", "sgd"]



def _channels_last_conv() -> torch.nn.Conv2d:
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)


def _steps(conv: torch.nn.Conv2d, opt: torch.optim.Optimizer, steps: range) -> None:
    x = torch.linspace(-1, 1, 2 * 3 * 9 * 9).reshape(2, 3, 9, 9).contiguous(memory_format=torch.channels_last)
    for i in steps:
        opt.zero_grad()
        conv(x * (i + 1)).square().mean().backward()
        opt.step()


def _resumed(stored: dict, fix_layout: bool) -> torch.nn.Conv2d:
    conv = _channels_last_conv()
    conv.load_state_dict(stored["model"])
    opt = build_optimizer("adamw", conv.parameters(), lr=1e-2)
    opt.load_state_dict(stored["optimizer"])
    if fix_layout:
        match_parameter_layout(opt)
    _steps(conv, opt, range(2, 4))
    return conv


def test_adam_is_fused_on_the_cpu_and_a_contiguous_state_resumes_exactly() -> None:
    """A checkpoint stores the moments contiguous; the parameters of a channels-last network are not."""
    assert build_optimizer("adamw", torch.nn.Linear(2, 2).parameters(), lr=1e-3).defaults["fused"] is True
    full = _channels_last_conv()
    _steps(full, build_optimizer("adamw", full.parameters(), lr=1e-2), range(4))
    half = _channels_last_conv()
    opt = build_optimizer("adamw", half.parameters(), lr=1e-2)
    _steps(half, opt, range(2))
    state = opt.state_dict()
    stored = {"model": {k: v.clone() for k, v in half.state_dict().items()},
              "optimizer": {"state": {i: {k: v.clone().contiguous() for k, v in s.items()}
                                      for i, s in state["state"].items()},
                            "param_groups": state["param_groups"]}}
    resumed = _resumed(stored, fix_layout=True)
    assert torch.equal(resumed.weight, full.weight) and torch.equal(resumed.bias, full.bias)
    broken = _resumed(stored, fix_layout=False)  # the fused kernel would pair the wrong moments with the weights
    assert not torch.equal(broken.weight, full.weight)
