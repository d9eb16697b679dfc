"""The built-in named losses, registered in :data:`~unetseg.losses.registry.LOSSES` in listing order.

Each factory takes the number of output channels (positional only) and its options (keywords with defaults); the
checks that depend on the head (lengths of per-class lists, binary-only names) run in
:func:`~unetseg.losses.build.build_loss` before the factory is called.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .lovasz import Classes
from .modules import CompoundLoss, CrossEntropyLoss, DiceLoss, FocalLoss, LovaszLoss, TverskyLoss
from .registry import LOSSES

Weights = Sequence[float] | None


@LOSSES.register("ce", heads="multiclass", counterpart="bce", description="softmax cross-entropy")
def ce(num_outputs: int, /, class_weights: Weights = None, ignore_index: int | None = None) -> nn.Module:
    """Softmax cross-entropy (:class:`~unetseg.losses.modules.CrossEntropyLoss`)."""
    return CrossEntropyLoss(class_weights, ignore_index)


@LOSSES.register("bce", heads="binary", counterpart="ce", description="binary cross-entropy with logits")
def bce(num_outputs: int, /, class_weights: Weights = None, ignore_index: int | None = None) -> nn.Module:
    """Binary cross-entropy with logits (:class:`~unetseg.losses.modules.CrossEntropyLoss` on one channel)."""
    return CrossEntropyLoss(class_weights, ignore_index)


@LOSSES.register("dice", binary_class_weights=False, description="soft Dice")
def dice(num_outputs: int, /, smooth: float = 1.0, include_background: bool = True, class_weights: Weights = None,
         ignore_index: int | None = None) -> nn.Module:
    """Soft Dice (:class:`~unetseg.losses.modules.DiceLoss`)."""
    return DiceLoss(smooth, include_background, class_weights, ignore_index)


@LOSSES.register("focal", description="focal loss (Lin et al. 2017)")
def focal(num_outputs: int, /, gamma: float = 2.0, alpha: float | Weights = None,
          ignore_index: int | None = None) -> nn.Module:
    """Focal loss (:class:`~unetseg.losses.modules.FocalLoss`)."""
    return FocalLoss(gamma, alpha, ignore_index)


@LOSSES.register("tversky", binary_class_weights=False, description="Tversky loss (Salehi et al. 2017)")
def tversky(num_outputs: int, /, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0,
            include_background: bool = True, class_weights: Weights = None,
            ignore_index: int | None = None) -> nn.Module:
    """Tversky loss (:class:`~unetseg.losses.modules.TverskyLoss`)."""
    return TverskyLoss(alpha, beta, smooth, include_background, class_weights, ignore_index)


@LOSSES.register("lovasz", description="Lovasz-softmax / Lovasz hinge (Berman et al. 2018)")
def lovasz(num_outputs: int, /, per_image: bool = False, classes: Classes = "present",
           ignore_index: int | None = None) -> nn.Module:
    """Lovasz hinge for one channel, Lovasz-softmax otherwise (:class:`~unetseg.losses.modules.LovaszLoss`)."""
    return LovaszLoss(per_image, classes, ignore_index)


def _cross_entropy_dice(class_weights: Weights, smooth: float, include_background: bool, ce_weight: float,
                        dice_weight: float, ignore_index: int | None) -> nn.Module:
    """``ce_weight * CE(class_weights) + dice_weight * Dice`` (the class weights go to the CE term only)."""
    return CompoundLoss([(ce_weight, CrossEntropyLoss(class_weights, ignore_index)),
                         (dice_weight, DiceLoss(smooth, include_background, ignore_index=ignore_index))])


@LOSSES.register("ce_dice", heads="multiclass", counterpart="bce_dice", description="CE + Dice")
def ce_dice(num_outputs: int, /, class_weights: Weights = None, smooth: float = 1.0, include_background: bool = True,
            ce_weight: float = 1.0, dice_weight: float = 1.0, ignore_index: int | None = None) -> nn.Module:
    """``ce_weight * CE + dice_weight * Dice`` for a multi-class head."""
    return _cross_entropy_dice(class_weights, smooth, include_background, ce_weight, dice_weight, ignore_index)


@LOSSES.register("bce_dice", heads="binary", counterpart="ce_dice", description="BCE + Dice")
def bce_dice(num_outputs: int, /, class_weights: Weights = None, smooth: float = 1.0, include_background: bool = True,
             ce_weight: float = 1.0, dice_weight: float = 1.0, ignore_index: int | None = None) -> nn.Module:
    """``ce_weight * BCE + dice_weight * Dice`` for a one-channel head."""
    return _cross_entropy_dice(class_weights, smooth, include_background, ce_weight, dice_weight, ignore_index)


@LOSSES.register("focal_dice", description="focal + Dice")
def focal_dice(num_outputs: int, /, gamma: float = 2.0, alpha: float | Weights = None, smooth: float = 1.0,
               include_background: bool = True, focal_weight: float = 1.0, dice_weight: float = 1.0,
               ignore_index: int | None = None) -> nn.Module:
    """``focal_weight * focal + dice_weight * Dice``."""
    return CompoundLoss([(focal_weight, FocalLoss(gamma, alpha, ignore_index)),
                         (dice_weight, DiceLoss(smooth, include_background, ignore_index=ignore_index))])
