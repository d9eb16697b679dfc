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
``CompoundLoss`` (a weighted sum). :func:`build_loss` makes any of them from a name in :data:`LOSS_CHOICES`
(``"auto"``, see :func:`resolve_loss`, and the names registered in :data:`LOSSES`) and keyword options;
:func:`loss_options` lists the options of a name with their defaults.

Every module of this package is imported here, the built-in losses (``named``) first: adding a loss takes one new
module with a factory registered by ``@LOSSES.register(name)`` (see :mod:`.registry` for the contract).
"""

import importlib
import pkgutil

from . import named  # noqa: F401  (the built-in losses register first, in listing order)
from .build import build_loss, loss_choices, loss_options, resolve_loss
from .deep_supervision import DeepSupervisionLoss
from .lovasz import lovasz_hinge, lovasz_loss, lovasz_softmax
from .modules import CompoundLoss, CrossEntropyLoss, DiceLoss, FocalLoss, LovaszLoss, TverskyLoss
from .pixelwise import cross_entropy, focal_loss
from .region import dice_loss, tversky_loss
from .registry import LOSSES

for _module in pkgutil.iter_modules(__path__):  # sorted by name, so the registration order is fixed
    importlib.import_module(f"{__name__}.{_module.name}")

#: the names :func:`build_loss` accepts (``"auto"`` first, then the registered losses), for choices in the config
#: and on the command line
LOSS_CHOICES: tuple[str, ...] = loss_choices()

__all__ = [
    "LOSSES",
    "LOSS_CHOICES",
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
    "resolve_loss",
    "tversky_loss",
]
