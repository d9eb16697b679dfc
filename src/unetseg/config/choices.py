"""The accepted values of every configuration choice, taken from the registries that define them.

Each name is a collection supporting ``in`` and iteration (a tuple or a :class:`unetseg.registry.Registry`), used
by the field metadata of :mod:`.sections` and :mod:`.commands`; none is a copied list.
"""

from __future__ import annotations

from ..data.layouts import LAYOUTS as _LAYOUTS
from ..data.layouts.ctc import TRUTHS as CTC_TRUTHS
from ..data.normalize import MODES as NORMALIZATIONS
from ..data.normalize import SCOPES
from ..inference.backends import BACKENDS
from ..inference.postprocess import INSTANCE_METHODS as _INSTANCE_METHODS
from ..inference.tiling import BLENDINGS
from ..inference.tta import TTA_SETS
from ..losses import LOSS_CHOICES as LOSSES
from ..metrics import SCALAR_METRICS
from ..models.blocks import NORMS, UP_MODES
from ..optim.optimizers import OPTIMIZERS
from ..optim.schedules import SCHEDULES
from ..precision import PRECISIONS

#: validation metrics that can pick the best checkpoint (higher is better)
MONITORS = SCALAR_METRICS
#: dataset layouts, with ``auto`` (detect from the folder contents)
LAYOUTS = ("auto", *_LAYOUTS)
#: whose statistics normalise an image
NORMALIZATION_SCOPES = SCOPES
#: instance methods of prediction, with ``auto`` (the method training chose on its validation set)
INSTANCE_METHODS = ("auto", *_INSTANCE_METHODS)

__all__ = ["BACKENDS", "BLENDINGS", "CTC_TRUTHS", "INSTANCE_METHODS", "LAYOUTS", "LOSSES", "MONITORS",
           "NORMALIZATIONS", "NORMALIZATION_SCOPES", "NORMS", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "TTA_SETS", "UP_MODES"]
