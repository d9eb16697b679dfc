"""The registry of the named losses (:data:`LOSSES`); the loss modules of this package register into it.

A loss is registered as a factory ``factory(num_outputs, /, **options) -> nn.Module``: ``num_outputs`` is the
number of output channels of the network (positional only, so it is not listed as an option) and every option is
a keyword with a default. Registration information read by :func:`~unetseg.losses.build.build_loss`:

* ``heads``: ``"binary"`` (one output channel only), ``"multiclass"`` (two or more only) or ``"any"`` (default);
* ``counterpart``: the loss to suggest when the head does not fit (e.g. ``"ce"`` for ``"bce"``);
* ``binary_class_weights``: False when the one-channel form refuses ``class_weights`` (default True);
* ``description``: one line for listings.
"""

from __future__ import annotations

from torch import nn

from ..registry import Registry

LOSSES: Registry[nn.Module] = Registry("loss")
