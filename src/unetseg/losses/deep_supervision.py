"""Deep supervision: apply any segmentation loss to every output head of a network and take a weighted sum.

UNet++ (Zhou et al. 2018) trains with deep supervision by giving each of its heads the same weight; other networks
weight the heads differently. :class:`DeepSupervisionLoss` wraps a loss ``loss_fn(logits, target, ...) -> scalar``
so the same training code handles both a network returning one tensor and one returning a list of heads. Any further
arguments (the per-pixel ``weight_map`` of the losses in this package, for instance) are passed unchanged to
``loss_fn`` for every head.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

LossFn = Callable[..., torch.Tensor]


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of ``loss_fn`` over a list of heads; ``loss_fn`` unchanged for a single tensor.

    Args:
        loss_fn: any loss ``loss_fn(logits, target, *args, **kwargs) -> scalar tensor`` (a function or an
            ``nn.Module``).
        weights: one non-negative weight per head, normalised to sum to 1; None gives every head the same weight
            (UNet++). Heads with weight 0 are not evaluated.

    Shape:
        logits: a tensor (N, C, H, W), or a list/tuple of such tensors, each with the target's spatial size (H, W).
        target: whatever ``loss_fn`` takes, with spatial size (H, W) in its last two dimensions.
        args, kwargs: passed to ``loss_fn`` with every head, e.g. ``weight_map=w`` with ``w`` (N, H, W).
        Returns a scalar tensor.

    Raises:
        ValueError: invalid weights, a number of weights different from the number of heads, no heads, or a head
            whose spatial size differs from the target's.

    Example:
        >>> loss = DeepSupervisionLoss(lambda x, t: x.mean(), weights=[1, 3])
        >>> float(loss([torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)], torch.zeros(1, 2, 2)))
        0.75
    """

    def __init__(self, loss_fn: LossFn, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        self.loss_fn = loss_fn
        self.weights: tuple[float, ...] | None = None
        if weights is not None:
            values = tuple(float(w) for w in weights)
            if not values:
                raise ValueError("weights must not be empty")
            if any(not math.isfinite(w) or w < 0 for w in values):
                raise ValueError(f"weights must be finite and non-negative, got {list(values)}")
            if sum(values) <= 0:
                raise ValueError(f"weights must have a positive sum, got {list(values)}")
            self.weights = values

    def normalized_weights(self, num_outputs: int) -> list[float]:
        """The weights applied to ``num_outputs`` heads (summing to 1); ValueError when the counts differ."""
        if num_outputs < 1:
            raise ValueError("deep supervision needs at least one output, got an empty list")
        if self.weights is None:
            return [1.0 / num_outputs] * num_outputs
        if len(self.weights) != num_outputs:
            raise ValueError(
                f"got {len(self.weights)} deep-supervision weights for {num_outputs} network outputs; "
                "give one weight per output"
            )
        total = sum(self.weights)
        return [w / total for w in self.weights]

    def forward(
        self, logits: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        if isinstance(logits, torch.Tensor):
            return self.loss_fn(logits, target, *args, **kwargs)
        if not isinstance(logits, (list, tuple)):
            raise TypeError(f"logits must be a tensor or a list/tuple of tensors, got {type(logits).__name__}")
        weights = self.normalized_weights(len(logits))
        size = tuple(target.shape[-2:])
        for k, head in enumerate(logits):
            if tuple(head.shape[-2:]) != size:
                raise ValueError(
                    f"output {k} of {len(logits)} has spatial size {tuple(head.shape[-2:])} but the target has "
                    f"{size}; deep-supervision heads must match the target (resize the heads or the target first)"
                )
        terms = [w * self.loss_fn(head, target, *args, **kwargs) for w, head in zip(weights, logits) if w > 0]
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total
