"""Planning a run: the default recipe chooses the settings left unset from the data and the device, with reasons.

:func:`plan_run` is pure: it takes the configuration as given, the facts of the data (:class:`DataFacts`) and the
device, and returns a NEW resolved configuration with the list of choices; the given configuration is not
changed. The trainer, ``--show-augmentations`` and ``recipe.yaml`` all use it.


Every choice follows from the dataset's own statistics (image sizes, number of images, classes) and the device,
never from the name of a dataset. A key the user set (in the config file or on the command line) is never changed.
The choices are logged, written to ``recipe.yaml`` in the run directory and stored in the checkpoints.
They are made in this order: the validation split, the training settings, then the network (its normalisation
follows the batch size).

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
  2 and 32: the same pixels per step whatever the patch size. It is the batch of all processes together when
  several train (``torchrun``), rounded up to a multiple of their number so that each trains an equal share.
* ``train.samples_per_epoch``: enough patches to cover the training pixels once (at least one per image), a
  whole number of batches. With ``train.time_budget``, capped right after the network is built (outside this pure
  module: :func:`unetseg.engine.callbacks.budget.fit_epoch_to_budget`) to the whole batches whose training steps
  take at most a tenth of the budget, at least one batch, from a step timed on a copy of the network; the
  measured seconds per step are in the choice's reason.
* ``train.epochs``: with ``train.time_budget``, as many as fit: training stops when the budget's training share is
  spent, inside an epoch if need be (:mod:`unetseg.engine.callbacks.budget`); else 50.
* ``train.loss`` ``auto``: BCE + Dice for binary masks (one sigmoid channel), CE + Dice for more classes.
* ``train.num_workers``: no loader process on a machine of 4 cores or fewer (the training step's threads use them;
  measured on 2 cores), else a quarter of the cores, at most 8 (:func:`workers_for`).
* ``train.cache_size``: 2 GiB of prepared training images kept in memory, at most an eighth of the machine's memory.
* ``train.precision`` ``auto``: bfloat16 autocast where the device computes it natively, else float32.
* ``train.weight_map``: on when the training images have instance labels (the paper's border weight map, with gaps
  between touching objects); ``train.weight_map_balance``: the map's class-balance term, on when the foreground is
  under 5% of the annotated training pixels (:func:`instance_target`; fine-tuned runs too).

A run started from a trained network (``train.init``, fine-tuning) is planned from its checkpoint
(:func:`plan_init`), right after the split:

* the network (name and every option) is the checkpoint's; a model option the user set to another value is refused
  (the default network's rules above are not applied);
* the images must have the network's input channels (grey images are repeated to RGB, RGB images averaged to grey,
  as prediction does);
* the output layer is re-initialised when the classes differ (their number, their names, or the head's output
  channels), and loaded otherwise;
* the normalisation (mode, scope, percentiles) is the checkpoint's, except each key the user set to other than
  its default; dataset-scope statistics are fitted on the new training images.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..config import Config, ConfigError, DataConfig, ModelConfig, flags_of
from ..data.cache import DEFAULT_CACHE_GIB, GIB, default_cache_gib, memory_bytes
from ..data.masks import default_class_names
from ..data.normalize import Normalization
from ..losses import resolve_loss

DEFAULT_EPOCHS = 50
MIN_BATCH_FOR_BATCH_NORM = 8
_PIXELS_PER_STEP = {"cpu": 2 * 256**2, "cuda": 12 * 256**2}


@dataclass
class Choice:
    """One setting the recipe chose: the config key, the value and why."""

    key: str
    value: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """``{"value", "reason"}``, as ``recipe.yaml`` holds it."""
        return {"value": self.value, "reason": self.reason}


@dataclass(frozen=True)
class DataFacts:
    """What planning needs to know of the data: the (H, W) of every image of the training dataset (in dataset
    order, before the validation split), the classes (background included), the image channels, and the layout's
    own "not annotated" label value, if any."""

    shapes: tuple[tuple[int, int], ...]
    num_classes: int
    channels: int
    layout_ignore_index: int | None = None
    instance_labels: bool = False  # the training images have instance labels (touching objects can be told apart)
    foreground_share: float | None = None  # foreground pixels / annotated pixels of the training labels


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (training, validation) of a random hold-out of ``fraction`` of ``n`` images (at least one when the
    fraction is positive and there are two images or more), in dataset order.

    Raises:
        ValueError: the fraction leaves no training image.
    """
    n_val = int(round(n * fraction))
    if fraction > 0 and n_val == 0 and n > 1:
        n_val = 1
    if n_val >= n:
        raise ValueError(f"data.val_fraction={fraction} leaves no training image out of {n}")
    held_out = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    return [i for i in range(n) if i not in held_out], [i for i in range(n) if i in held_out]


def head_outputs(config: Config, num_classes: int) -> int:
    """Output channels of the network: ``model.num_classes`` when set, else 1 (sigmoid) for binary data."""
    if config.model.num_classes is not None:
        return config.model.num_classes
    return 1 if num_classes == 2 else num_classes


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


def batch_size_for(patch_size: int, device: torch.device, processes: int = 1) -> int:
    """Patches per step making about 2 x 256^2 pixels on a CPU (12 x 256^2 on a GPU), between 2 and 32; with
    several ``processes`` (each on such a device), that batch rounded up to a multiple of their number.

    Example:
        >>> batch_size_for(96, torch.device("cpu")), batch_size_for(256, torch.device("cpu"))
        (14, 2)
        >>> batch_size_for(96, torch.device("cpu"), processes=4)
        16
    """
    pixels = _PIXELS_PER_STEP["cuda" if device.type == "cuda" else "cpu"]
    return math.ceil(int(min(32, max(2, pixels // patch_size**2))) / processes) * processes


def samples_per_epoch_for(image_shapes: list[tuple[int, int]], patch_size: int, batch_size: int) -> int:
    """Patches that cover the training pixels once, at least one per image, rounded up to whole batches.

    Example:
        >>> samples_per_epoch_for([(512, 512)] * 20, 256, 2)
        80
    """
    pixels = sum(h * w for h, w in image_shapes)
    samples = max(len(image_shapes), math.ceil(pixels / patch_size**2))
    return math.ceil(samples / batch_size) * batch_size


def plan_split(config: Config, facts: DataFacts) -> tuple[Config, list[Choice]]:
    """The validation hold-out and the label value meaning "not annotated"; returns (new config, choices)."""
    dc = config.data
    choices, values = [], {}
    if dc.val_fraction is None and not dc.val:
        n = len(facts.shapes)
        values["val_fraction"] = val_fraction_for(n)
        n_val = len(split_indices(n, values["val_fraction"], config.train.seed)[1])
        choices.append(Choice("data.val_fraction", values["val_fraction"],
                              f"{n_val} of {n} images: 20%, at most max(50 images, 10%)"))
    if dc.ignore_index is None and facts.layout_ignore_index is not None:
        values["ignore_index"] = facts.layout_ignore_index
        choices.append(Choice("data.ignore_index", facts.layout_ignore_index,
                              "the layout's own 'not annotated' value: left out of losses and metrics"))
    return _with(config, "data", values), choices


def training_shapes(config: Config, facts: DataFacts) -> list[tuple[int, int]]:
    """The (H, W) of the images that train (all of them with a separate ``data.val``, else the split's share)."""
    if config.data.val or not config.data.val_fraction:
        return list(facts.shapes)
    train_idx, _ = split_indices(len(facts.shapes), config.data.val_fraction, config.train.seed)
    return [facts.shapes[i] for i in train_idx]


def _with(config: Config, section: str, values: dict[str, Any]) -> Config:
    """A copy of ``config`` with ``values`` set in ``section`` (the given config is not changed)."""
    new = copy.deepcopy(config)
    setattr(new, section, dataclasses.replace(getattr(new, section), **values))
    return new


def choose_training(config: Config, image_shapes: list[tuple[int, int]], num_classes: int, channels: int,
                    device: torch.device, precision: str, processes: int = 1) -> tuple[Config, list[Choice]]:
    """The training settings left unset, from the training images' shapes (H, W), the classes, the device and the
    number of training processes; returns (new config, what was chosen and why). Keys the user set are left alone
    and not listed."""
    tc = config.train
    values: dict[str, Any] = {}
    choices = _choose_sizes(tc, image_shapes, device, values, processes)
    if tc.epochs is None:
        if tc.time_budget is not None:
            choices.append(Choice("train.epochs", "fitted", f"as many as fit in {tc.time_budget:g} minutes: training "
                                  "stops on time, the learning-rate schedule over the training time spent"))
        else:
            values["epochs"] = DEFAULT_EPOCHS
            choices.append(Choice("train.epochs", DEFAULT_EPOCHS, "default without train.time_budget"))
    if tc.loss == "auto":
        name = resolve_loss("auto", head_outputs(config, num_classes))
        choices.append(Choice("train.loss", name, "binary masks: one sigmoid channel" if name == "bce_dice"
                              else f"{num_classes} classes: softmax"))
    if tc.precision == "auto":
        choices.append(Choice("train.precision", precision, "native bfloat16 on this device" if precision == "bf16"
                              else "no native bfloat16 on this device"))
    choices += _choose_loading(tc, values)
    choices.append(Choice("data.normalization", f"{config.data.normalization} ({config.data.normalization_scope})",
                          f"{channels} channel(s); each image's own intensity percentiles unless set"))
    return _with(config, "train", values), choices


def workers_for(cores: int) -> int:
    """Data loader processes for a machine of ``cores`` cores: none up to 4 cores (the training step's own threads
    use them: on 2 cores, drawing the patches in the training process was measured fastest), else a quarter of the
    cores, at most 8.

    Example:
        >>> workers_for(2), workers_for(4), workers_for(16), workers_for(64)
        (0, 0, 4, 8)
    """
    return 0 if cores <= 4 else min(8, cores // 4)


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _choose_loading(tc: Any, values: dict[str, Any]) -> list[Choice]:
    """Loader processes and the cache of prepared training images, left unset (written into ``values``)."""
    choices = []
    if tc.num_workers is None:
        cores = available_cores()
        values["num_workers"] = workers_for(cores)
        choices.append(Choice("train.num_workers", values["num_workers"],
                              f"{cores} cores: none up to 4, else a quarter of them, at most 8"))
    if tc.cache_size is None:
        memory = memory_bytes()
        values["cache_size"] = default_cache_gib(memory)
        choices.append(Choice("train.cache_size", values["cache_size"],
                              f"GiB of prepared training images kept: {DEFAULT_CACHE_GIB:g}, at most an eighth of the "
                              + (f"{memory / GIB:.1f} GiB of memory" if memory else "memory")))
    return choices


def _choose_sizes(tc: Any, image_shapes: list[tuple[int, int]], device: torch.device,
                  values: dict[str, Any], processes: int = 1) -> list[Choice]:
    """Patch size, batch size and patches per epoch left unset (written into ``values``)."""
    choices = []
    sides = [min(shape) for shape in image_shapes]
    patch, batch = tc.patch_size, tc.batch_size
    if patch is None:
        patch = values["patch_size"] = patch_size_for(image_shapes, device)
        choices.append(Choice("train.patch_size", patch,
                              f"median shorter image side {float(np.median(sides)):g} px, at most "
                              f"{512 if device.type == 'cuda' else 256} on this device, a multiple of 16"))
    if batch is None:
        batch = values["batch_size"] = batch_size_for(patch, device, processes)
        split = f"; the batch of all {processes} processes, a multiple of their number" if processes > 1 else ""
        choices.append(Choice("train.batch_size", batch,
                              f"about {_PIXELS_PER_STEP['cuda' if device.type == 'cuda' else 'cpu']} pixels per step "
                              f"on {device.type}, between 2 and 32{split}"))
    if tc.samples_per_epoch is None:
        values["samples_per_epoch"] = samples_per_epoch_for(image_shapes, patch, batch)
        choices.append(Choice("train.samples_per_epoch", values["samples_per_epoch"],
                              f"{patch}px patches covering the {len(image_shapes)} training images' pixels "
                              "once, whole batches"))
    return choices


def choose_model(config: Config) -> tuple[Config, list[Choice]]:
    """The settings of the default network (``unet_bn``) left unset, after :func:`choose_training` (the
    normalisation follows the batch size); other networks are built as their presets say."""
    mc, tc = config.model, config.train
    if mc.name != "unet_bn":
        return config, []
    values, choices = {}, []
    if mc.base_channels is None and "base_channels" not in mc.options:
        values["base_channels"] = 32
        choices.append(Choice("model.base_channels", 32,
                              "nnU-Net's width; the unet_bn preset's 64 costs 4x the compute"))
    if mc.norm is None and "norm" not in mc.options and tc.batch_size is not None \
            and tc.batch_size < MIN_BATCH_FOR_BATCH_NORM:
        values["norm"] = "instance"
        choices.append(Choice("model.norm", "instance",
                              f"batches of {tc.batch_size} < {MIN_BATCH_FOR_BATCH_NORM} patches give batch norm "
                              "running statistics that do not fit single images (nnU-Net's instance norm)"))
    return _with(config, "model", values), choices


def plan_run(config: Config, facts: DataFacts, device: torch.device, precision: str,
             init: Checkpoint | None = None, processes: int = 1) -> tuple[Config, list[Choice]]:
    """The resolved configuration of a run and the recipe's choices, in order: the validation split, the network of
    ``init`` (when fine-tuning), the training settings, the network. Pure: ``config`` is not changed, and planning a
    resolved config again chooses nothing new (only the always-reported loss, precision and normalisation, and the
    ``init`` choices, are listed again).

    Args:
        config: the configuration as the user gave it (validated).
        facts: the data's facts (:class:`DataFacts`).
        device: where the run trains (the caps of the patch and batch sizes differ on a GPU).
        precision: the resolved training precision (``fp32`` or ``bf16``).
        init: the checkpoint ``train.init`` names, for a new run that starts from its weights (:func:`plan_init`);
            None for random weights, and for a resumed run (whose configuration is resolved already).
        processes: how many processes train together (``torchrun``); the batch is theirs together.

    Raises:
        ConfigError: with ``init``, a model option that would change its network, or images it cannot take.
    """
    config, choices = plan_split(config, facts)
    if init is not None:
        config, more = plan_init(config, facts, init)
        choices += more
    shapes = training_shapes(config, facts)
    config, more = choose_training(config, shapes, facts.num_classes, facts.channels, device, precision, processes)
    config, target = instance_target(config, facts)
    if init is not None:  # the network is the checkpoint's; its normalisation replaces the default one
        config, norm = init_normalization(config, init)
        return config, choices + [c for c in more if c.key != "data.normalization"] + norm + target
    choices += more
    config, more = choose_model(config)
    return config, choices + more + target


#: foreground under this share of the annotated training pixels turns on the weight map's class balance
SPARSE_FOREGROUND = 0.05

#: what the choice of the training target for instance data rests on (docs/benchmarks.md)
INSTANCE_TARGET_EVIDENCE = (
    "in the same 15-minute budget the border term with gaps kept AP 0.5:0.95 on DSB2018 nuclei (0.505 against "
    "0.501-0.504 with plain masks) and raised SEG on Cell Tracking Challenge HeLa cells from 0.729 to 0.758 (gold)")
BALANCE_EVIDENCE = (
    "the paper's class-balance term raised HeLa SEG further to 0.799, where foreground is 1.2% of the annotated "
    "pixels, and lowered DSB2018 AP to 0.441, where it is 12.7%")


def instance_target(config: Config, facts: DataFacts) -> tuple[Config, list[Choice]]:
    """The training target: for data with instance labels the paper's border weight map with gaps between
    touching objects (``train.weight_map``), its class-balance term only when the foreground is sparse
    (``train.weight_map_balance``: under :data:`SPARSE_FOREGROUND` of the annotated pixels); plain masks for data
    without. Values the configuration sets are kept."""
    tc = config.train
    choices: list[Choice] = []
    if tc.weight_map is None:
        on = facts.instance_labels
        why = ("the data has instance labels: " + INSTANCE_TARGET_EVIDENCE if on
               else "no instance labels (DATA/labels) to make the border weight map from")
        tc = dataclasses.replace(tc, weight_map=on)
        choices.append(Choice("train.weight_map", on, why))
    if tc.weight_map and tc.weight_map_balance is None:
        share = facts.foreground_share
        on = share is not None and share < SPARSE_FOREGROUND
        if share is None:
            seen = "the foreground share of the training labels is not known"
        else:
            seen = (f"foreground is {share:.1%} of the annotated training pixels, "
                    f"{'under' if on else 'not under'} {SPARSE_FOREGROUND:.0%}")
        tc = dataclasses.replace(tc, weight_map_balance=on)
        choices.append(Choice("train.weight_map_balance", on, f"{seen}; {BALANCE_EVIDENCE}"))
    return dataclasses.replace(config, train=tc), choices


#: the model options that are keys of the ``model`` section (the others go in ``model.options``)
MODEL_KEYS = ("depth", "base_channels", "norm", "up_mode", "dropout")

#: the channel conversions prediction makes too (:func:`unetseg.data.io.to_channels`): (images, network)
CONVERTIBLE_CHANNELS = {(1, 3): "repeated to 3 channels", (3, 1): "averaged to 1 channel"}


def _and(items: list[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _flag(section_type: type, key: str) -> str:
    """The primary command-line flag of ``key`` in ``section_type``."""
    return flags_of(next(f for f in dataclasses.fields(section_type) if f.name == key))[0]


def _described(name: str, architecture: dict[str, Any]) -> str:
    """``"unet_bn (depth 4, base_channels 32, ...)"``: a network and its options (channels and classes left out)."""
    options = ", ".join(f"{k} {v}" for k, v in architecture.items() if k not in ("in_channels", "num_classes"))
    return f"{name} ({options})" if options else name


def check_init_model(config: Config, init: Checkpoint) -> None:
    """ConfigError when a key of ``config.model`` the user set differs from the network of the checkpoint ``init``
    (``train.init``): the message names both values of each and what to do. ``model.name`` counts as set when it
    is not its default; ``model.num_classes`` may differ (the output layer is re-initialised then)."""
    model, source = config.model, config.train.init or init.source
    architecture = dict(init.model_config)
    name = architecture.pop("name")
    missing = object()
    given, held = [], []
    if model.name != ModelConfig().name and model.name != name:
        given.append(f"--model {model.name}")
    changed = {key: getattr(model, key) for key in MODEL_KEYS if getattr(model, key) is not None}
    for key, value in [*changed.items(), *model.options.items()]:
        if architecture.get(key, missing) == value:
            continue
        given.append(f"{_flag(ModelConfig, key)} {value}" if key in changed
                     else f"{_flag(ModelConfig, 'options')} {key}={value}")
        held.append(f"{key} {architecture[key]}" if key in architecture else f"no option {key}")
    if given:
        with_keys = f" with {_and(held)}" if held else ""
        raise ConfigError(f"--init {source} is a {name}{with_keys}; {_and(given)} cannot change it: leave "
                          f"{'it' if len(given) == 1 else 'them'} out (the network comes from the checkpoint), or "
                          "train a new network without --init")


def plan_init(config: Config, facts: DataFacts, init: Checkpoint) -> tuple[Config, list[Choice]]:
    """The network of the checkpoint ``init`` (``train.init``) as the model section, the input channels and the
    output layer; returns (new config, choices).

    Raises:
        ConfigError: a model key the user set differs from the checkpoint's (:func:`check_init_model`), or the
            images have channels the network cannot take.
    """
    check_init_model(config, init)
    source = config.train.init or init.source
    architecture = dict(init.model_config)
    name = architecture.pop("name")
    choices = [Choice("train.init", init.source or source,
                      f"a {_described(name, architecture)} trained for {init.epoch} epoch(s): its network and "
                      "weights start this run, with a new learning-rate schedule and optimizer state")]
    in_channels = int(architecture.pop("in_channels", facts.channels))
    architecture.pop("num_classes", None)
    if facts.channels != in_channels:
        how = CONVERTIBLE_CHANNELS.get((facts.channels, in_channels))
        if how is None:
            raise ConfigError(f"--init {source} takes {in_channels}-channel images; {config.data.train} has "
                              f"{facts.channels}: give images with {in_channels} channel(s), or train a new "
                              "network without --init")
        choices.append(Choice("data.channels", in_channels, f"the --init network takes {in_channels}-channel "
                              f"images: the {facts.channels}-channel images are {how}, as prediction does"))
    named = {key: architecture.pop(key) for key in MODEL_KEYS if key in architecture}
    config = _with(config, "model", {"name": name, **named, "options": architecture})
    change = head_change(init, config, facts.num_classes)
    choices.append(Choice("model.head", "re-initialised" if change else "from --init",
                          f"{change}: the output layer starts from random weights, every other weight is loaded"
                          if change else "the same classes and output channels: every weight is loaded"))
    return config, choices


def head_change(init: Checkpoint, config: Config, num_classes: int) -> str | None:
    """How the classes of a run with ``config`` on data of ``num_classes`` classes differ from those of the
    checkpoint ``init`` (their number, their names or the head's output channels), or None when they do not."""
    names = config.data.class_names or default_class_names(num_classes)
    outputs = head_outputs(config, num_classes)
    before = init.model_config.get("num_classes")
    if init.num_classes == num_classes and list(init.class_names) == list(names) and before == outputs:
        return None
    return (f"the checkpoint has {init.num_classes} classes ({', '.join(init.class_names)}) in {before} output "
            f"channel(s), this run {num_classes} ({', '.join(names)}) in {outputs}")


#: the normalisation keys of the ``data`` section and the :class:`Normalization` fields they set
NORMALIZATION_KEYS = {"normalization": "mode", "normalization_scope": "scope", "percentile_low": "low",
                      "percentile_high": "high"}


def init_normalization(config: Config, init: Checkpoint) -> tuple[Config, list[Choice]]:
    """The normalisation of a run started from ``init``: the checkpoint's mode, scope and percentiles, except each
    key the user set to other than its default; dataset-scope statistics are fitted on the new training images
    (the checkpoint's describe its own data). Returns (new config, the ``data.normalization`` choice)."""
    stored = Normalization.from_dict(init.normalization)
    inherited = {key: getattr(stored, field) for key, field in NORMALIZATION_KEYS.items()}
    defaults, dc = DataConfig(), config.data
    user = {key: getattr(dc, key) for key in NORMALIZATION_KEYS if getattr(dc, key) != getattr(defaults, key)}
    values = {**inherited, **user}
    config = _with(config, "data", values)
    refit = values["normalization_scope"] == "dataset" and values["normalization"] != "scale"
    after = "; its dataset statistics are fitted on the new training images" if refit else ""
    changed = [key for key in user if user[key] != inherited[key]]
    if not changed:
        reason = "kept from --init: the network was trained on images normalised this way" + after
    else:
        reason = (f"set here ({', '.join(f'{_flag(DataConfig, key)} {user[key]}' for key in changed)}); the --init "
                  f"network was trained with {stored.mode} ({stored.scope})" + after)
    return config, [Choice("data.normalization", f"{values['normalization']} ({values['normalization_scope']})",
                           reason)]


def record(choices: list[Choice]) -> dict[str, dict[str, Any]]:
    """The choices as a mapping key -> {value, reason} (what ``recipe.yaml`` holds)."""
    return {c.key: c.to_dict() for c in choices}
