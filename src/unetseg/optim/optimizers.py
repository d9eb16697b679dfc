"""Optimizers by name (:data:`OPTIMIZERS`).

An optimizer is registered as a factory ``factory(params, /, lr, **settings) -> torch.optim.Optimizer``;
:func:`build_optimizer` passes it the settings among ``weight_decay`` and ``momentum`` that it takes.

Adam and AdamW run PyTorch's fused implementation (one kernel for the whole update) when every parameter is a
floating-point tensor on the CPU or a CUDA device: the same update as the per-tensor loop, with fewer passes over
memory (about 2% of a default training step on a CPU, measured in ``bench/speed.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..registry import Registry

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")


def _fusable(params: Params) -> tuple[list[Any], bool]:
    """``params`` as a list, and whether PyTorch's fused Adam/AdamW can update all of them (floating point, on the
    CPU or a CUDA device)."""
    params = [{**g, "params": list(g["params"])} if isinstance(g, dict) else g for g in params]
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    fusable = bool(tensors) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)
    return params, fusable


@OPTIMIZERS.register("adam", description="Adam (Kingma & Ba 2015)")
def adam(params: Params, /, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` with L2 weight decay added to the gradient (fused where it can be)."""
    params, fused = _fusable(params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


@OPTIMIZERS.register("adamw", description="AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019)")
def adamw(params: Params, /, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``torch.optim.AdamW`` (fused where it can be)."""
    params, fused = _fusable(params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


@OPTIMIZERS.register("sgd", description="SGD with Nesterov momentum")
def sgd(params: Params, /, lr: float, weight_decay: float = 0.0, momentum: float = 0.99) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` with Nesterov momentum (0.99 as in the U-Net paper)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)


def build_optimizer(
    name: str, params: Params, lr: float, weight_decay: float = 0.0, momentum: float = 0.99
) -> torch.optim.Optimizer:
    """The optimizer called ``name`` over ``params``.

    Args:
        name: a name in :data:`OPTIMIZERS` (``adam``, ``adamw``, ``sgd``).
        params: the parameters (or parameter groups) to optimise, e.g. ``model.parameters()``.
        lr: the learning rate.
        weight_decay: the weight decay.
        momentum: the momentum, for the optimizers that take one (``sgd``); the others ignore it.

    Returns:
        The optimizer.

    Raises:
        RegistryError: (a ValueError) unknown name; the message lists the registered ones.
    """
    accepted = OPTIMIZERS.options(name)
    settings = {key: value for key, value in {"weight_decay": weight_decay, "momentum": momentum}.items()
                if key in accepted}
    return OPTIMIZERS.build(name, params, lr=lr, **settings)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, then :func:`match_parameter_layout`: what a resumed or rolled-back
    run needs, whatever layout the stored moments have."""
    optimizer.load_state_dict(state)
    match_parameter_layout(optimizer)


def match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give every state tensor of ``optimizer`` that has its parameter's shape the parameter's memory layout
    (strides), in place; call it after ``optimizer.load_state_dict``.

    A checkpoint stores tensors contiguous, while the parameters of a channels-last network are not; the fused
    Adam/AdamW kernels walk a parameter and its moments as flat memory, so their layouts must agree (the
    per-tensor implementation does not need it, and the values are the same either way).
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
