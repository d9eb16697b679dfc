"""Segmentation losses: cross-entropy, soft Dice and their sum, in binary (one sigmoid channel) and multi-class
(softmax over K channels) form.

``logits`` is (N, C, H, W); ``target`` is (N, H, W) class indices. C == 1 means binary: the single channel is the
foreground logit and target values are {0, 1}.

Soft Dice per class c: ``1 - (2 * sum(p_c * t_c) + s) / (sum(p_c) + sum(t_c) + s)`` with sums over the batch and
all pixels and smoothing ``s = 1``; a class absent from both prediction and target therefore contributes 0. The
multi-class loss averages over all classes (background included); the binary loss uses the foreground only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("auto", "ce", "dice", "ce_dice", "bce", "bce_dice")


def _probs_and_onehot(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.shape[1] == 1:
        return torch.sigmoid(logits), target.unsqueeze(1).to(logits.dtype)
    onehot = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    return torch.softmax(logits, dim=1), onehot


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss (see the module docstring), mean over classes."""
    probs, onehot = _probs_and_onehot(logits.float(), target)
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    return (1.0 - (2.0 * intersection + smooth) / (total + smooth)).mean()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross-entropy, mean over pixels: softmax CE for C >= 2, binary CE with logits for C == 1."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0].float(), target.float())
    return F.cross_entropy(logits.float(), target.long())


def build_loss(name: str, num_outputs: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss function called ``name`` for a network with ``num_outputs`` channels.

    ``auto`` is CE + Dice (BCE + Dice for one output channel). ``ce``/``bce`` and ``ce_dice``/``bce_dice`` are
    the same functions; the name only documents the head they are meant for.

    Raises:
        ValueError: unknown name (lists the valid ones), or a ``bce`` loss for a multi-channel head.
    """
    if name not in LOSSES:
        raise ValueError(f"loss={name!r} is not one of {', '.join(LOSSES)}")
    if name.startswith("bce") and num_outputs != 1:
        raise ValueError(f"loss={name!r} needs a one-channel (binary) head, the model has {num_outputs} outputs")
    if name == "dice":
        return dice_loss
    if name in ("ce", "bce"):
        return cross_entropy
    return lambda logits, target: cross_entropy(logits, target) + dice_loss(logits, target)
