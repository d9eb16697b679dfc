"""Optimizers by name (:data:`OPTIMIZERS`).

An optimizer is registered as a factory ``factory(params, /, lr, **settings) -> torch.optim.Optimizer``;
:func:`build_optimizer` passes it the settings among ``weight_decay`` and ``momentum`` that it takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..registry import Registry

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")


@OPTIMIZERS.register("adam", description="Adam (Kingma & Ba 2015)")
def adam(params: Params, /, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` with L2 weight decay added to the gradient."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw", description="AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019)")
def adamw(params: Params, /, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``torch.optim.AdamW``."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


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
