"""``nn.Module`` wrappers of the loss functions, with the options fixed at construction.

Every module is called as ``loss(logits, target, weight_map=None)`` and picks its binary or multi-class form from
the channel count of ``logits`` (1: binary sigmoid, >= 2: softmax), like the functions it wraps. The options are
validated when the module is built; the checks that need the number of classes run on the first call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ._common import check_number, check_weights
from .lovasz import Classes, check_classes, lovasz_loss
from .pixelwise import cross_entropy, focal_loss
from .region import dice_loss, tversky_loss


def _check_ignore_index(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"ignore_index must be an integer or None, got {value!r}")
    return value


def _check_bool(value: bool, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


class _FunctionLoss(nn.Module):
    """Calls ``fn(logits, target, weight_map, **options)``."""

    def __init__(self, fn: Callable[..., torch.Tensor], **options: Any) -> None:
        super().__init__()
        self.fn = fn
        self.options = options

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.fn(logits, target, weight_map, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


class CrossEntropyLoss(_FunctionLoss):
    """:func:`~unetseg.losses.pixelwise.cross_entropy` (softmax CE, or BCE with logits for one channel)."""

    def __init__(self, class_weights: Sequence[float] | None = None, ignore_index: int | None = None) -> None:
        super().__init__(cross_entropy, class_weights=check_weights(class_weights, "class_weights"),
                         ignore_index=_check_ignore_index(ignore_index))


class FocalLoss(_FunctionLoss):
    """:func:`~unetseg.losses.pixelwise.focal_loss` (Lin et al. 2017)."""

    def __init__(
        self, gamma: float = 2.0, alpha: float | Sequence[float] | None = None, ignore_index: int | None = None
    ) -> None:
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
            alpha = check_number(alpha, "alpha", 0.0, 1.0)
        else:
            alpha = check_weights(alpha, "alpha")
        super().__init__(focal_loss, gamma=check_number(gamma, "gamma"), alpha=alpha,
                         ignore_index=_check_ignore_index(ignore_index))


class DiceLoss(_FunctionLoss):
    """:func:`~unetseg.losses.region.dice_loss` (soft Dice; ignores ``weight_map``)."""

    def __init__(
        self,
        smooth: float = 1.0,
        include_background: bool = True,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(dice_loss, smooth=check_number(smooth, "smooth"),
                         include_background=_check_bool(include_background, "include_background"),
                         class_weights=check_weights(class_weights, "class_weights"),
                         ignore_index=_check_ignore_index(ignore_index))


class TverskyLoss(_FunctionLoss):
    """:func:`~unetseg.losses.region.tversky_loss` (Salehi et al. 2017; ignores ``weight_map``)."""

    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.7,
        smooth: float = 1.0,
        include_background: bool = True,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(tversky_loss, alpha=check_number(alpha, "alpha"), beta=check_number(beta, "beta"),
                         smooth=check_number(smooth, "smooth"),
                         include_background=_check_bool(include_background, "include_background"),
                         class_weights=check_weights(class_weights, "class_weights"),
                         ignore_index=_check_ignore_index(ignore_index))


class LovaszLoss(_FunctionLoss):
    """:func:`~unetseg.losses.lovasz.lovasz_loss`: hinge for one channel, softmax otherwise (ignores
    ``weight_map``)."""

    def __init__(self, per_image: bool = False, classes: Classes = "present", ignore_index: int | None = None) -> None:
        if classes not in ("present", "all"):
            classes = tuple(check_classes(classes, None))  # checked against C when called
        super().__init__(lovasz_loss, per_image=_check_bool(per_image, "per_image"), classes=classes,
                         ignore_index=_check_ignore_index(ignore_index))


class CompoundLoss(nn.Module):
    """Weighted sum ``sum_k w_k * loss_k(logits, target, weight_map)``; terms with weight 0 are skipped.

    Example: ``CompoundLoss([(1.0, CrossEntropyLoss()), (1.0, DiceLoss())])`` is CE + Dice.
    """

    def __init__(self, terms: Sequence[tuple[float, nn.Module]]) -> None:
        super().__init__()
        weights = [check_number(w, "loss term weight") for w, _ in terms]
        if not weights or sum(weights) <= 0:
            raise ValueError(f"a compound loss needs at least one term with a positive weight, got {weights}")
        self.weights = tuple(weights)
        self.terms = nn.ModuleList(term for _, term in terms)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        total: torch.Tensor | None = None
        for w, term in zip(self.weights, self.terms):
            if w > 0:
                value = w * term(logits, target, weight_map)
                total = value if total is None else total + value
        assert total is not None
        return total

    def extra_repr(self) -> str:
        return f"weights={self.weights}"
