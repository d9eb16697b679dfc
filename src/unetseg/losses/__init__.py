"""Segmentation losses and the registry that builds them by name.

Every loss is called as ``loss(logits, target, weight_map=None)`` with ``logits`` (N, C, H, W), ``target``
(N, H, W) integer class indices and an optional float ``weight_map`` (N, H, W). C == 1 is binary (sigmoid of the
single foreground logit, target in {0, 1}); C >= 2 is multi-class (softmax). Pixels whose target equals
``ignore_index`` are left out of every loss. Per-pixel losses (CE, BCE, focal) multiply each pixel's loss by the
weight map and divide by the number of counted pixels (or by the sum of the class weights, see
:func:`cross_entropy`); region losses (Dice, Tversky, Lovasz) ignore the weight map.

Functions: :func:`cross_entropy`, :func:`focal_loss` (``pixelwise``), :func:`dice_loss`, :func:`tversky_loss`
(``region``), :func:`lovasz_loss`, :func:`lovasz_softmax`, :func:`lovasz_hinge` (``lovasz``). Modules with the
options fixed: ``CrossEntropyLoss``, ``FocalLoss``, ``DiceLoss``, ``TverskyLoss``, ``LovaszLoss`` and
``CompoundLoss`` (a weighted sum). :func:`build_loss` makes any of them from a name in :data:`LOSSES` and keyword
options; :func:`loss_options` lists the options of a name with their defaults.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .deep_supervision import DeepSupervisionLoss
from .lovasz import check_classes, lovasz_hinge, lovasz_loss, lovasz_softmax
from .modules import CompoundLoss, CrossEntropyLoss, DiceLoss, FocalLoss, LovaszLoss, TverskyLoss
from .pixelwise import cross_entropy, focal_loss
from .region import dice_loss, tversky_loss

__all__ = [
    "BINARY_ONLY",
    "LOSSES",
    "MULTICLASS_ONLY",
    "CompoundLoss",
    "CrossEntropyLoss",
    "DeepSupervisionLoss",
    "DiceLoss",
    "FocalLoss",
    "LovaszLoss",
    "TverskyLoss",
    "build_loss",
    "cross_entropy",
    "dice_loss",
    "focal_loss",
    "loss_options",
    "lovasz_hinge",
    "lovasz_loss",
    "lovasz_softmax",
    "tversky_loss",
]

LOSSES = ("auto", "ce", "bce", "dice", "focal", "tversky", "lovasz", "ce_dice", "bce_dice", "focal_dice")
BINARY_ONLY = ("bce", "bce_dice")  # need a one-channel head
MULTICLASS_ONLY = ("ce", "ce_dice")  # need a head with >= 2 channels

_DICE = {"smooth": 1.0, "include_background": True}
_OPTIONS: dict[str, dict[str, Any]] = {
    "ce": {"class_weights": None},
    "dice": {**_DICE, "class_weights": None},
    "focal": {"gamma": 2.0, "alpha": None},
    "tversky": {"alpha": 0.3, "beta": 0.7, **_DICE, "class_weights": None},
    "lovasz": {"per_image": False, "classes": "present"},
    "ce_dice": {"class_weights": None, **_DICE, "ce_weight": 1.0, "dice_weight": 1.0},
    "focal_dice": {"gamma": 2.0, "alpha": None, **_DICE, "focal_weight": 1.0, "dice_weight": 1.0},
}
_OPTIONS.update(bce=_OPTIONS["ce"], bce_dice=_OPTIONS["ce_dice"], auto=_OPTIONS["ce_dice"])
for _opts in _OPTIONS.values():
    _opts.setdefault("ignore_index", None)


def _check_name(name: str) -> None:
    if name not in LOSSES:
        raise ValueError(f"loss={name!r} is not one of {', '.join(LOSSES)}")


def loss_options(name: str) -> dict[str, Any]:
    """The options :func:`build_loss` accepts for ``name``, mapped to their defaults (a fresh dict).

    ``class_weights`` go to the cross-entropy term only in the ``*_dice`` combinations; ``*_weight`` are the
    factors of the terms of a combination. ValueError for an unknown name.
    """
    _check_name(name)
    return dict(_OPTIONS[name])


def _check_for_head(name: str, opts: dict[str, Any], num_outputs: int) -> None:
    """Refuse options that cannot apply to this head: wrong lengths, multi-class-only settings on one channel."""
    binary = num_outputs == 1
    k = 2 if binary else num_outputs
    if binary and opts.get("classes", "present") != "present":
        raise ValueError(f"loss={name!r}: classes applies to multi-class heads; a one-channel head scores the "
                         "foreground only")
    if name in ("dice", "tversky") and binary and opts["class_weights"] is not None:
        raise ValueError(f"loss={name!r}: class_weights need a multi-class head; the binary form only has the "
                         "foreground term")
    if isinstance(opts.get("classes"), (list, tuple)):
        check_classes(opts["classes"], k)
    alpha = opts.get("alpha") if "gamma" in opts else None
    if isinstance(alpha, (int, float)) and not binary:
        raise ValueError(f"loss={name!r}: a single focal alpha is for one-channel heads; give {k} values")
    for key, value in (("class_weights", opts.get("class_weights")), ("alpha", alpha)):
        if isinstance(value, (list, tuple)) and len(value) != k:
            what = "(background, foreground)" if binary else "one per class"
            raise ValueError(f"loss={name!r}: {key} needs {k} values, {what}, for a head with {num_outputs} "
                             f"output(s); got {len(value)}")


def build_loss(name: str, num_outputs: int, **options: Any) -> nn.Module:
    """The loss called ``name`` for a network with ``num_outputs`` output channels.

    Names (:data:`LOSSES`): ``ce`` (multi-class) / ``bce`` (binary) cross-entropy, ``dice``, ``focal``,
    ``tversky``, ``lovasz`` (hinge for binary, softmax otherwise), ``ce_dice`` / ``bce_dice``
    (``ce_weight * CE + dice_weight * Dice``), ``focal_dice`` and ``auto`` (``bce_dice`` for one output channel,
    ``ce_dice`` otherwise). ``options`` are those of :func:`loss_options` (the rest keep their defaults).

    Returns:
        An ``nn.Module`` called as ``loss(logits, target, weight_map=None)``.

    Raises:
        ValueError: unknown name or option (the message lists the valid ones), a binary-only name for a
            multi-channel head or a multi-class-only name for a one-channel head, or an invalid option value.
    """
    _check_name(name)
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
        raise ValueError(f"num_outputs must be a positive integer, got {num_outputs!r}")
    binary = num_outputs == 1
    if name == "auto":
        name = "bce_dice" if binary else "ce_dice"
    if name in BINARY_ONLY and not binary:
        raise ValueError(f"loss={name!r} needs a one-channel (binary) head, the model has {num_outputs} outputs; "
                         f"use {name[1:]!r}")
    if name in MULTICLASS_ONLY and binary:
        raise ValueError(f"loss={name!r} needs a multi-class head (>= 2 outputs), the model has one output "
                         f"channel; use {'b' + name!r}")
    valid = _OPTIONS[name]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for loss={name!r}; valid options: "
                         f"{', '.join(valid)}")
    opts = {**valid, **options}
    _check_for_head(name, opts, num_outputs)
    dice_opts = {key: opts[key] for key in ("smooth", "include_background", "ignore_index") if key in opts}
    if name in ("ce", "bce"):
        return CrossEntropyLoss(**opts)
    if name == "dice":
        return DiceLoss(**opts)
    if name == "focal":
        return FocalLoss(**opts)
    if name == "tversky":
        return TverskyLoss(**opts)
    if name == "lovasz":
        return LovaszLoss(**opts)
    if name == "focal_dice":
        focal = FocalLoss(opts["gamma"], opts["alpha"], opts["ignore_index"])
        return CompoundLoss([(opts["focal_weight"], focal), (opts["dice_weight"], DiceLoss(**dice_opts))])
    ce = CrossEntropyLoss(opts["class_weights"], opts["ignore_index"])
    return CompoundLoss([(opts["ce_weight"], ce), (opts["dice_weight"], DiceLoss(**dice_opts))])
