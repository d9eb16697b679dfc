"""Fine-tuning: a new run that starts from the weights of a trained network (``train.init``, ``--init``).

The plan takes the network, the channels, the output layer and the normalisation from the checkpoint
(:func:`unetseg.engine.plan.plan_init`); this module reads the checkpoint (:func:`read_init`), loads its weights
into the new network, re-initialising the output layer when the classes differ (:func:`load_init_weights`, which
finds that layer generically: :func:`head_keys`), and says which weights form the encoder that
``--freeze-encoder`` freezes (:func:`encoder_parameters`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import Checkpoint, CheckpointError, load_checkpoint
from ..config import ConfigError
from ..models import SegmentationModel, create_model

log = logging.getLogger("unetseg")

#: top-level modules that hold a network's contracting path, as the networks of this package name them
ENCODER_MODULES = ("inc", "downs", "encoder", "encoders", "stages")

#: top-level modules that are a network's bottleneck, where it has one of its own (else the contracting path's
#: last block is the bottleneck)
BOTTLENECK_MODULES = ("bottleneck", "bridge", "center", "fc6", "fc7")


def read_init(path: str | Path) -> Checkpoint:
    """The checkpoint ``train.init`` names: a ``.safetensors`` file, or a run directory for its best checkpoint
    (:func:`unetseg.checkpoint.resolve_checkpoint`).

    Raises:
        ConfigError: the file is missing or is not a readable checkpoint (the message starts with ``--init``).
    """
    try:
        return load_checkpoint(path)
    except CheckpointError as err:
        raise ConfigError(f"--init: {err}") from err


def head_keys(model_config: dict[str, Any]) -> list[str]:
    """The state-dict keys of the network ``model_config`` (registry name and options, as a checkpoint holds it)
    whose shapes depend on the number of output channels: the output layer, found by building the network twice
    on the meta device (no memory) with different ``num_classes`` and comparing the shapes."""
    options = dict(model_config)
    name = options.pop("name")
    outputs = int(options.pop("num_classes"))
    with torch.device("meta"):
        shapes = [{key: tuple(value.shape) for key, value in create_model(name, num_classes=k, **options)
                   .state_dict().items()} for k in (outputs, outputs + 1)]
    return [key for key in shapes[0] if shapes[0][key] != shapes[1].get(key)]


def load_init_weights(model: SegmentationModel, init: Checkpoint, reinitialise_head: bool) -> list[str]:
    """Copy the weights of the checkpoint ``init`` into ``model`` (a network of the same architecture), all of
    them or, with ``reinitialise_head``, all but the output layer (:func:`head_keys`), which keeps the random
    weights it was built with. Returns the keys that were not loaded.

    Raises:
        ConfigError: a weight other than the output layer's is missing from the checkpoint or has another shape
            (the network is not the checkpoint's).
    """
    skipped = head_keys(model.config) if reinitialise_head else []
    target = model.state_dict()
    for key, value in target.items():
        if key in skipped:
            continue
        stored = init.model_state.get(key)
        if stored is None or tuple(stored.shape) != tuple(value.shape):
            found = "missing" if stored is None else f"of shape {tuple(stored.shape)}"
            raise ConfigError(f"--init {init.source}: weight {key} is {found}, the new network needs "
                              f"{tuple(value.shape)}; the network was not rebuilt as the checkpoint's: train "
                              "without --init")
    with torch.no_grad():
        for key, value in target.items():
            if key not in skipped:
                value.copy_(init.model_state[key])
    return skipped


def init_record(init: Checkpoint, reinitialised: list[str]) -> dict[str, Any]:
    """What a checkpoint of a fine-tuning run stores of where it started (``run_state["init"]``): the file, the
    epoch its weights are from, and the weights that were re-initialised instead of loaded."""
    return {"path": str(Path(init.source).resolve()) if init.source else "", "epoch": init.epoch,
            "reinitialised": list(reinitialised)}


def _bottleneck_of(model: torch.nn.Module, contracting: list[str]) -> str | None:
    """The name prefix of the bottleneck among the contracting modules: None when the network has a bottleneck
    module of its own, else the last block of the last contracting module (``downs.3`` of a U-Net of depth 4)."""
    children = dict(model.named_children())
    if any(name in children for name in BOTTLENECK_MODULES) or not contracting:
        return None
    last = children[contracting[-1]]
    if isinstance(last, (torch.nn.ModuleList, torch.nn.Sequential)) and len(last) > 1:
        return f"{contracting[-1]}.{len(last) - 1}."
    return None


def encoder_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The named parameters of the encoder of ``model``: the contracting path before the bottleneck.

    A network may say it itself with an ``encoder_parameters()`` method (returning named parameters). Otherwise
    the encoder is the top-level modules of :data:`ENCODER_MODULES` (``inc`` and ``downs`` of the U-Nets,
    ``encoder`` of UNet++, SegNet and DeconvNet, ``encoders`` of FusionNet, ``stages`` of FCN-8s) less the
    bottleneck: a module of :data:`BOTTLENECK_MODULES` where the network has one (FusionNet's ``bridge``, the
    ``fc6``/``fc7`` of FCN-8s and DeconvNet, which are not in the encoder anyway), else the last block of the
    contracting path (the bottom level of the U-Nets and UNet++, SegNet's last stage).

    Raises:
        ConfigError: the network has none of these modules (it needs an ``encoder_parameters()`` method).
    """
    own = getattr(model, "encoder_parameters", None)
    if callable(own):
        return list(own())
    contracting = [name for name, _ in model.named_children() if name in ENCODER_MODULES]
    bottleneck = _bottleneck_of(model, contracting)
    named = [(name, p) for name, p in model.named_parameters() if name.split(".")[0] in contracting
             and not (bottleneck and name.startswith(bottleneck))]
    if not named:
        network = getattr(model, "config", {}).get("name", type(model).__name__)
        raise ConfigError(f"--freeze-encoder: the network {network} has no encoder this version can find (no "
                          f"module named {', '.join(ENCODER_MODULES)}); leave --freeze-encoder out")
    return named


def encoder_summary(model: torch.nn.Module, named: list[tuple[str, torch.nn.Parameter]]) -> str:
    """``"inc, downs.0, downs.1: 12,345 parameters"``: the modules (a top-level module, or a block of a top-level
    module list) and the parameter count of the ``named`` parameters of ``model`` (:func:`encoder_parameters`)."""
    lists = {name for name, child in model.named_children() if isinstance(child, torch.nn.ModuleList)}
    modules: list[str] = []
    for name, _ in named:
        parts = name.split(".")
        module = ".".join(parts[:2]) if parts[0] in lists and len(parts) > 2 else parts[0]
        if module not in modules:
            modules.append(module)
    return f"{', '.join(modules)}: {sum(p.numel() for _, p in named):,} parameters"
