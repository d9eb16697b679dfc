"""Test-time augmentation: predict on flipped/rotated copies of an image, map back and average probabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..models.apply import logits_to_probabilities


@dataclass(frozen=True)
class Flip90:
    """An element of the dihedral group D4 acting on the last two axes: an optional flip of the width axis
    (left-right) followed by ``k`` counter-clockwise quarter turns. 90 and 270 degree turns swap H and W."""

    k: int = 0
    flip: bool = False

    @property
    def name(self) -> str:
        return ("flip+" if self.flip else "") + f"rot{90 * (self.k % 4)}"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Transform ``x`` (..., H, W)."""
        if self.flip:
            x = x.flip(-1)
        return torch.rot90(x, self.k % 4, dims=(-2, -1))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`apply`: ``inverse(apply(x)) == x``."""
        y = torch.rot90(y, -(self.k % 4), dims=(-2, -1))
        return y.flip(-1) if self.flip else y


IDENTITY = Flip90()
TTA_SETS: dict[str, list[Flip90]] = {
    "none": [IDENTITY],
    # identity, left-right flip, up-down flip (= flip then a half turn), both (= a half turn)
    "flips": [IDENTITY, Flip90(0, True), Flip90(2, True), Flip90(2)],
    "rot": [Flip90(k) for k in range(4)],
    "d4": [Flip90(k, flip) for flip in (False, True) for k in range(4)],
}

Transforms = str | Sequence[Flip90]


def transforms_needed(sets: Sequence[str]) -> set[str]:
    """The names of the distinct transforms that the :data:`TTA_SETS` ``sets`` average over together: one network
    pass each.

    Example:
        >>> len(transforms_needed(["none", "flips", "d4"])), len(transforms_needed(["none"]))
        (8, 1)
    """
    return {t.name for name in sets for t in TTA_SETS[name]}


def resolve_transforms(transforms: Transforms) -> list[Flip90]:
    """The transforms of a :data:`TTA_SETS` name, or the given sequence (checked to be non-empty)."""
    if isinstance(transforms, str):
        if transforms not in TTA_SETS:
            raise ValueError(f"unknown TTA set {transforms!r}; choose from {', '.join(TTA_SETS)}")
        return list(TTA_SETS[transforms])
    transforms = list(transforms)
    if not transforms:
        raise ValueError("at least one TTA transform is needed")
    return transforms


def tta_predict(predict_fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                transforms: Transforms = "flips",
                to_probabilities: Callable[[torch.Tensor], torch.Tensor] = logits_to_probabilities) -> torch.Tensor:
    """Average class probabilities over transformed copies of ``image``.

    For each transform ``t``: ``t.inverse(to_probabilities(predict_fn(t.apply(image))))``; the results are averaged
    (in probability space, not over logits). ``predict_fn`` receives images whose H and W are swapped for quarter
    turns, so it must accept any size (e.g. :func:`~unetseg.inference.tiling.predict_logits`).

    Args:
        predict_fn: logits for one image, (C, h, w) -> (K, h, w).
        image: the image.
        transforms: a :data:`TTA_SETS` name (``"none"``, ``"flips"``, ``"rot"``, ``"d4"``) or a list of
            :class:`Flip90`.
        to_probabilities: batched logits to probabilities, (N, K, H, W) -> (N, K', H, W); the default is softmax,
            or sigmoid giving (background, foreground) for a one-channel head.

    Shape:
        image (C, H, W) -> (K', H, W)
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a (C, H, W) tensor, got {shape}")
    total = None
    chosen = resolve_transforms(transforms)
    for t in chosen:
        moved = t.apply(image)
        logits = predict_fn(moved)
        if logits.ndim != 3 or logits.shape[-2:] != moved.shape[-2:]:
            raise ValueError(f"predict_fn gave {tuple(logits.shape)} for an input of {tuple(moved.shape)}; "
                             "expected (K, h, w) of the same h, w")
        probs = t.inverse(to_probabilities(logits[None])[0])
        total = probs.clone() if total is None else total + probs
    assert total is not None
    return total / len(chosen)
