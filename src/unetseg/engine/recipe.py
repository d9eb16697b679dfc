"""The default recipe: training settings left unset are chosen from the data and the device, with reasons.

Every choice follows from the dataset's own statistics (image sizes, number of images, classes) and the device,
never from the name of a dataset. A key the user set (in the config file or on the command line) is never changed.
The choices are logged, written to ``recipe.yaml`` in the run directory and stored in the checkpoints.

Rules (``cap`` is 256 pixels on a CPU, 512 on a GPU):

* ``data.val_fraction`` (without ``data.val``): 20% of the images, but no more than 50 images or 10%, whichever
  is larger: enough to pick the best epoch reliably, the rest for training.
* ``model.base_channels`` of the default ``unet_bn``: 32 (nnU-Net's width; the preset's 64 costs 4x the compute).
* ``model.norm`` of the default ``unet_bn``: instance norm when the batch has fewer than 8 patches (batch norm's
  running statistics from a few, possibly very different, images do not fit single images at prediction time:
  nnU-Net's reason for instance norm), else its batch norm.
* ``train.patch_size``: the median of the training images' shorter sides, at most ``cap``, rounded down to a
  multiple of 16 (at least 32): patches as large as the typical image, so each sees whole objects in context.
* ``train.batch_size``: as many patches as make ``2 x 256^2`` pixels on a CPU (``12 x 256^2`` on a GPU), between
  2 and 32: the same pixels per step whatever the patch size.
* ``train.samples_per_epoch``: enough patches to cover the training pixels once (at least one per image), a
  whole number of batches.
* ``train.epochs``: fitted to ``train.time_budget`` while training runs (see :mod:`unetseg.engine.trainer`),
  else 50.
* ``train.loss`` ``auto``: BCE + Dice for binary masks (one sigmoid channel), CE + Dice for more classes.
* ``train.precision`` ``auto``: bfloat16 autocast where the device computes it natively, else float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import Config

DEFAULT_EPOCHS = 50
_PIXELS_PER_STEP = {"cpu": 2 * 256**2, "cuda": 12 * 256**2}


@dataclass
class Choice:
    """One setting the recipe chose: the config key, the value and why."""

    key: str
    value: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reason": self.reason}


MIN_BATCH_FOR_BATCH_NORM = 8


def choose_model(config: Config) -> list[Choice]:
    """Fill the settings of the default network (``unet_bn``) left unset, after :func:`choose_training` (the
    normalisation follows the batch size); other networks are built as their presets say."""
    mc, tc = config.model, config.train
    if mc.name != "unet_bn":
        return []
    choices = []
    if mc.base_channels is None and "base_channels" not in mc.options:
        mc.base_channels = 32
        choices.append(Choice("model.base_channels", 32,
                              "nnU-Net's width; the unet_bn preset's 64 costs 4x the compute"))
    if mc.norm is None and "norm" not in mc.options and tc.batch_size is not None \
            and tc.batch_size < MIN_BATCH_FOR_BATCH_NORM:
        mc.norm = "instance"
        choices.append(Choice("model.norm", "instance",
                              f"batches of {tc.batch_size} < {MIN_BATCH_FOR_BATCH_NORM} patches give batch norm "
                              "running statistics that do not fit single images (nnU-Net's instance norm)"))
    return choices


def val_fraction_for(n_images: int) -> float:
    """The share of ``n_images`` held out for validation: 20%, at most max(50 images, 10%).

    Example:
        >>> val_fraction_for(25), val_fraction_for(536), val_fraction_for(2000)
        (0.2, 0.1007, 0.1)
    """
    n_val = min(round(0.2 * n_images), max(50, round(0.1 * n_images)))
    return round(n_val / max(n_images, 1), 4)


def patch_size_for(image_shapes: list[tuple[int, int]], device: torch.device) -> int:
    """The median shorter image side, capped at 256 (CPU) or 512 (GPU), rounded down to a multiple of 16, >= 32.

    Example:
        >>> patch_size_for([(96, 96)] * 3, torch.device("cpu")), patch_size_for([(512, 512)], torch.device("cpu"))
        (96, 256)
    """
    cap = 512 if device.type == "cuda" else 256
    median_side = float(np.median([min(shape) for shape in image_shapes]))
    return max(32, int(min(cap, median_side)) // 16 * 16)


def batch_size_for(patch_size: int, device: torch.device) -> int:
    """Patches per step making about 2 x 256^2 pixels on a CPU (12 x 256^2 on a GPU), between 2 and 32.

    Example:
        >>> batch_size_for(96, torch.device("cpu")), batch_size_for(256, torch.device("cpu"))
        (14, 2)
    """
    pixels = _PIXELS_PER_STEP["cuda" if device.type == "cuda" else "cpu"]
    return int(min(32, max(2, pixels // patch_size**2)))


def samples_per_epoch_for(image_shapes: list[tuple[int, int]], patch_size: int, batch_size: int) -> int:
    """Patches that cover the training pixels once, at least one per image, rounded up to whole batches.

    Example:
        >>> samples_per_epoch_for([(512, 512)] * 20, 256, 2)
        80
    """
    pixels = sum(h * w for h, w in image_shapes)
    samples = max(len(image_shapes), math.ceil(pixels / patch_size**2))
    return math.ceil(samples / batch_size) * batch_size


def choose_training(config: Config, image_shapes: list[tuple[int, int]], num_classes: int, channels: int,
                    device: torch.device, precision: str) -> list[Choice]:
    """Fill the training settings left unset from the training images' shapes (H, W), the classes and the device;
    returns what was chosen and why (keys the user set are left alone and not listed)."""
    tc = config.train
    choices: list[Choice] = []
    sides = [min(shape) for shape in image_shapes]
    if tc.patch_size is None:
        tc.patch_size = patch_size_for(image_shapes, device)
        choices.append(Choice("train.patch_size", tc.patch_size,
                              f"median shorter image side {float(np.median(sides)):g} px, at most "
                              f"{512 if device.type == 'cuda' else 256} on this device, a multiple of 16"))
    if tc.batch_size is None:
        tc.batch_size = batch_size_for(tc.patch_size, device)
        choices.append(Choice("train.batch_size", tc.batch_size,
                              f"about {_PIXELS_PER_STEP['cuda' if device.type == 'cuda' else 'cpu']} pixels per step "
                              f"on {device.type}, between 2 and 32"))
    if tc.samples_per_epoch is None:
        tc.samples_per_epoch = samples_per_epoch_for(image_shapes, tc.patch_size, tc.batch_size)
        choices.append(Choice("train.samples_per_epoch", tc.samples_per_epoch,
                              f"{tc.patch_size}px patches covering the {len(image_shapes)} training images' pixels "
                              "once, whole batches"))
    if tc.epochs is None:
        if tc.time_budget is not None:
            choices.append(Choice("train.epochs", "fitted", f"as many as fit in {tc.time_budget:g} minutes, "
                                  "re-estimated after every epoch from the measured epoch time"))
        else:
            tc.epochs = DEFAULT_EPOCHS
            choices.append(Choice("train.epochs", DEFAULT_EPOCHS, "default without train.time_budget"))
    if tc.loss == "auto":
        binary = num_classes == 2 and config.model.num_classes in (None, 1)
        choices.append(Choice("train.loss", "bce_dice" if binary else "ce_dice",
                              "binary masks: one sigmoid channel" if binary else f"{num_classes} classes: softmax"))
    if tc.precision == "auto":
        choices.append(Choice("train.precision", precision,
                              "native bfloat16 on this device" if precision == "bf16"
                              else "no native bfloat16 on this device"))
    choices.append(Choice("data.normalization", f"{config.data.normalization} ({config.data.normalization_scope})",
                          f"{channels} channel(s); each image's own intensity percentiles unless set"))
    return choices


def record(choices: list[Choice]) -> dict[str, dict[str, Any]]:
    """The choices as a mapping key -> {value, reason} (what ``recipe.yaml`` holds)."""
    return {c.key: c.to_dict() for c in choices}
