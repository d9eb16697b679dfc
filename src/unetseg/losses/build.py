"""Building a loss by name: the ``auto`` rule, the options of a name and the checks against the head."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..registry import RegistryError
from .lovasz import check_classes
from .registry import LOSSES

AUTO = "auto"  # not a registered loss: resolve_loss turns it into one for the head


def loss_choices() -> tuple[str, ...]:
    """The names :func:`build_loss` accepts: ``"auto"`` and the registered losses, in registration order."""
    return (AUTO, *LOSSES.names())


def resolve_loss(name: str, num_outputs: int) -> str:
    """The registered loss that ``name`` means for a head with ``num_outputs`` output channels.

    ``"auto"`` is ``"bce_dice"`` for one output channel and ``"ce_dice"`` otherwise; any other name is itself.

    Raises:
        RegistryError: (a ValueError) ``name`` is neither ``"auto"`` nor registered; the message lists the
            valid names.
    """
    if name != AUTO and name not in LOSSES:
        raise RegistryError(f"loss={name!r} is not one of {', '.join(loss_choices())}")
    if name == AUTO:
        return "bce_dice" if num_outputs == 1 else "ce_dice"
    return name


def loss_options(name: str) -> dict[str, Any]:
    """The options :func:`build_loss` accepts for ``name``, mapped to their defaults (a fresh dict).

    ``class_weights`` go to the cross-entropy term only in the ``*_dice`` combinations; ``*_weight`` are the
    factors of the terms of a combination. ``"auto"`` has the options of ``ce_dice`` (the same as ``bce_dice``'s).

    Raises:
        RegistryError: (a ValueError) unknown name.
    """
    return dict(LOSSES.options(resolve_loss(name, 2)))


def _check_head_kind(name: str, num_outputs: int) -> None:
    """Refuse a binary-only loss for a multi-channel head and a multi-class-only loss for a one-channel head."""
    info = LOSSES.get(name).info
    heads = info.get("heads", "any")
    use = f"; use {info['counterpart']!r}" if "counterpart" in info else ""
    if heads == "binary" and num_outputs != 1:
        raise ValueError(f"loss={name!r} needs a one-channel (binary) head, the model has {num_outputs} "
                         f"outputs{use}")
    if heads == "multiclass" and num_outputs == 1:
        raise ValueError(f"loss={name!r} needs a multi-class head (>= 2 outputs), the model has one output "
                         f"channel{use}")


def _check_for_head(name: str, opts: dict[str, Any], num_outputs: int) -> None:
    """Refuse options that cannot apply to this head: wrong lengths, multi-class-only settings on one channel."""
    binary = num_outputs == 1
    k = 2 if binary else num_outputs
    if binary and opts.get("classes", "present") != "present":
        raise ValueError(f"loss={name!r}: classes applies to multi-class heads; a one-channel head scores the "
                         "foreground only")
    weights_on_binary = LOSSES.get(name).info.get("binary_class_weights", True)
    if binary and not weights_on_binary and opts.get("class_weights") is not None:
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

    Names: ``auto`` (see :func:`resolve_loss`) and the registered losses (:data:`~unetseg.losses.LOSSES`):
    ``ce`` (multi-class) / ``bce`` (binary) cross-entropy, ``dice``, ``focal``, ``tversky``, ``lovasz`` (hinge
    for binary, softmax otherwise), ``ce_dice`` / ``bce_dice`` (``ce_weight * CE + dice_weight * Dice``) and
    ``focal_dice``. ``options`` are those of :func:`loss_options` (the rest keep their defaults).

    Returns:
        An ``nn.Module`` called as ``loss(logits, target, weight_map=None)``.

    Raises:
        ValueError: unknown name (a RegistryError) or option (the message lists the valid ones), a binary-only
            name for a multi-channel head or a multi-class-only name for a one-channel head, or an invalid option
            value.
    """
    name = resolve_loss(name, num_outputs)  # an unknown name is reported before a bad num_outputs
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
        raise ValueError(f"num_outputs must be a positive integer, got {num_outputs!r}")
    _check_head_kind(name, num_outputs)
    valid = LOSSES.options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for loss={name!r}; valid options: "
                         f"{', '.join(valid)}")
    _check_for_head(name, {**valid, **options}, num_outputs)
    return LOSSES.build(name, num_outputs, **options)
