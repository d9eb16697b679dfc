"""Assembling a run from a configuration: validation, data, the recipe's plan, the network, the run directory."""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..checkpoint import Checkpoint, load_checkpoint
from ..compilation import compile_model, compile_unavailable_reason
from ..config import Config, ConfigError, save_config, validate
from ..data.dataset import SegmentationData
from ..data.patches import PatchDataset
from ..device import resolve_device
from ..distributed import json_from_rank_zero, rank_and_world
from ..fileio import remove_stale_temporaries
from ..optim.optimizers import build_optimizer
from ..precision import resolve_precision
from .callbacks.budget import fit_epoch_to_budget
from .distributed import RankSampler, check_split, process_device, record_processes
from .finetune import encoder_parameters, init_record, load_init_weights, read_init
from .plan import check_init_model, head_change, plan_run, record
from .setup import (RunData, build_network, build_training_loss, data_changes, data_facts, data_fingerprint,
                    load_datasets, prepare_data, save_data_stats)
from .state import LAST, Run, save_recipe

log = logging.getLogger("unetseg")


#: run options that may change when a run is resumed, and what a new value means
SAFE_ON_RESUME = {
    "train.epochs": "a new total number of epochs; the learning-rate schedule follows it and a time budget ends",
    "train.time_budget": "a new budget for the whole run, the time already used included",
    "train.num_workers": "data loader processes; the patches do not depend on them",
    "train.cache_size": "prepared training images kept in memory; the patches do not depend on it",
}

#: run options that cannot change when a run is resumed for a reason of their own
NOT_ON_RESUME = {
    "train.device": "a resumed run is exact only on the device it started on",
    "train.output_dir": "the run directory is the one given to --resume",
    "train.name": "the run directory is the one given to --resume",
    "train.init": "a resumed run continues from its own weights; --init starts a new run from a checkpoint",
    "train.freeze_encoder": "the epochs it froze are trained already; a new value would change them",
}

#: run options that name a file or folder (compared as paths)
PATH_KEYS = ("data.train", "data.val", "data.colormap", "train.output_dir", "train.init")


def starting_point(config: Config | None, resume: str | Path | None, epochs: int | None = None,
                   overrides: Mapping[str, Any] | None = None) -> tuple[Config, Checkpoint | None, Path | None]:
    """The configuration to run, the checkpoint to continue from and its run directory (both None for a new run).

    With ``resume`` the configuration is the one stored in ``RUN_DIR/last.safetensors``, with the ``overrides``
    (dotted keys) that may change (:func:`apply_resume_overrides`); ``epochs`` is ``train.epochs``.

    Raises:
        ConfigError: no config and no ``resume``; ``resume`` is not a run directory that can be continued; an
            override that cannot change.
        CheckpointError: ``last.safetensors`` cannot be read.
    """
    if resume is None:
        if config is None:
            raise ConfigError("train() needs a config, or resume=RUN_DIR")
        if overrides:
            raise ConfigError(f"overrides ({', '.join(overrides)}) go with resume=RUN_DIR; for a new run set them in "
                              "the config")
        return config, None, None
    run_dir = Path(resume)
    check_resumable(run_dir)
    previous = load_checkpoint(run_dir / LAST)
    config = Config.from_dict(previous.run_config, source=str(run_dir / LAST))
    check_relative_paths(config, previous.run_state.get("started_in"), run_dir)
    given = dict(overrides or {})
    if epochs is not None:
        given["train.epochs"] = epochs
    return apply_resume_overrides(config, given, run_dir), previous, run_dir


def check_resumable(run_dir: Path) -> None:
    """ConfigError unless ``run_dir`` is a run directory holding ``last.safetensors``; the message says what it is
    instead and what to do."""
    if not run_dir.exists():
        raise ConfigError(f"{run_dir} does not exist: --resume takes the directory of an earlier run "
                          "(train.output_dir/train.name, e.g. runs/NAME), which holds last.safetensors; check the path")
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file: --resume takes the run directory that holds last.safetensors "
                          f"(here perhaps {run_dir.parent})")
    if not (run_dir / LAST).is_file():
        if (run_dir / "config.yaml").is_file():
            raise ConfigError(f"{run_dir} has no {LAST}: the run stopped before its first epoch ended; start it again "
                              "(same command without --resume, the folder is reused)")
        raise ConfigError(f"{run_dir} is not a run directory: it holds no {LAST} (nor config.yaml); --resume takes "
                          "the directory of an earlier run (train.output_dir/train.name)")


def check_relative_paths(config: Config, started_in: str | None, run_dir: Path) -> None:
    """ConfigError when a relative data path of a resumed run is not found here but is in ``started_in``, the
    folder the run was started in: the message says to resume from there."""
    for key, value in (("data.train", config.data.train), ("data.val", config.data.val)):
        if not value or Path(value).is_absolute() or Path(value).exists() or not started_in:
            continue
        if (Path(started_in) / value).exists():
            raise ConfigError(f"{key}={value!r} of {run_dir} is relative to the folder the run was started in, "
                              f"{started_in}, and is not found from here ({Path.cwd()}): resume from that folder "
                              f"(cd {started_in})")


def _same(key: str, before: Any, after: Any) -> bool:
    if key in PATH_KEYS and isinstance(before, str) and isinstance(after, str) and before and after:
        return Path(before).resolve() == Path(after).resolve()
    return before == after


def apply_resume_overrides(config: Config, overrides: Mapping[str, Any], run_dir: Path) -> Config:
    """``config`` (a resumed run's) with the ``overrides`` of :data:`SAFE_ON_RESUME` applied, each logged.

    An override equal to the run's value changes nothing; ``train.epochs`` ends a time budget and
    ``train.time_budget`` replaces a fixed number of epochs.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, both ``train.epochs`` and ``train.time_budget``, or
            a change of any other key (the message names the keys, their values and what to do instead).
    """
    changed: dict[str, tuple[Any, Any]] = {}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if value is None:
            continue
        if section not in Config.section_types() or not hasattr(getattr(config, section), name):
            raise ConfigError(f"--resume: {key!r} is not a run option (expected SECTION.KEY, e.g. train.epochs)")
        before = getattr(getattr(config, section), name)
        after = getattr(getattr(config.updated(section, **{name: value}), section), name)
        if not _same(key, before, after):
            changed[key] = (before, after)
    refused = [key for key in changed if key not in SAFE_ON_RESUME]
    if refused:
        values = ", ".join(f"{key}={changed[key][1]!r} (the run has {changed[key][0]!r})" for key in refused)
        reasons = "".join(f"; {key}: {NOT_ON_RESUME[key]}" for key in refused if key in NOT_ON_RESUME)
        raise ConfigError(f"--resume continues {run_dir} exactly as it was configured; {', '.join(refused)} cannot "
                          f"change (start a new run, or fine-tune from its checkpoint); given {values}{reasons}")
    if "train.epochs" in changed and "train.time_budget" in changed:
        raise ConfigError("--resume: give a new train.epochs (--epochs) or a new train.time_budget "
                          "(--time-budget), not both")
    values = {key.partition(".")[2]: after for key, (_, after) in changed.items()}
    if "train.epochs" in changed:
        values["time_budget"] = None
    elif "train.time_budget" in changed:
        values["epochs"] = None
    for key, (before, after) in changed.items():
        log.info("resume: %s = %s (was %s): %s", key, after, before, SAFE_ON_RESUME[key])
    new = copy.deepcopy(config)
    new.train = dataclasses.replace(new.train, **values)
    return new


def run_dir_of(config: Config) -> Path:
    """``train.output_dir/train.name`` (a timestamp without a name); ConfigError if it already holds a run."""
    name = config.train.name or json_from_rank_zero(time.strftime("%Y%m%d-%H%M%S"))  # the same in every process
    run_dir = Path(config.train.output_dir) / name
    if (run_dir / LAST).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another "
                          "name (--name)")
    return run_dir


def new_run_dir(config: Config) -> Path:
    """``train.output_dir/train.name`` (:func:`run_dir_of`), created; a folder left by a run that stopped before
    its first epoch ended is reused."""
    run_dir = run_dir_of(config)
    if (run_dir / "config.yaml").is_file():
        log.info("%s: reusing the folder of a run that stopped before its first epoch ended", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def plan_and_prepare(config: Config, device: torch.device, precision: str,
                     loaded: tuple[SegmentationData, SegmentationData | None] | None = None,
                     init: Checkpoint | None = None, channels: int | None = None,
                     processes: int = 1) -> tuple[Config, RunData, dict]:
    """Read the data (unless ``loaded`` gives it), plan the run (:func:`~unetseg.engine.plan.plan_run`, from the
    checkpoint ``init`` of a fine-tuning run, for ``processes`` training processes) and prepare the data with the
    resolved configuration, with the input channels of ``init``'s network (or ``channels``, else the data's);
    returns (resolved config, data, recipe)."""
    data, val = loaded if loaded is not None else load_datasets(config)
    resolved, choices = plan_run(config, data_facts(data, val), device, precision, init, processes)
    if init is not None:
        channels = init.model_config.get("in_channels", channels)
    return resolved, prepare_data(resolved, data, val, channels), record(choices)


def check_same_data(previous: Checkpoint, data_files: dict[str, list[int]], run_dir: Path) -> None:
    """ConfigError when the training files differ from those the resumed run started with (a checkpoint written
    before they were recorded is not checked)."""
    before = previous.run_state.get("data_files")
    if before is None:
        log.info("resume: %s does not record its training files; they are not compared", run_dir)
        return
    changes = data_changes(before, data_files)
    if changes:
        raise ConfigError(f"the training data changed since {run_dir} was started: {changes}; resume needs the same "
                          "data. Start a new run.")


def _network(config: Config, data: RunData, device: torch.device, precision: str,
             init: Checkpoint | None = None) -> tuple[torch.nn.Module, dict[str, Any] | None]:
    """The network of the resolved ``config`` on ``device``, with the weights of ``init`` (a fine-tuning run: the
    output layer re-initialised when the classes differ, logged), and the record of where its weights came from."""
    model = build_network(config, data.channels, data.num_classes)
    started = None
    if init is not None:
        change = head_change(init, config, data.num_classes)
        skipped = load_init_weights(model, init, reinitialise_head=change is not None)
        started = init_record(init, skipped)
        log.info("init: the weights of %s (epoch %d)%s", init.source, init.epoch,
                 f"; the output layer ({', '.join(skipped)}) is re-initialised: {change}" if change else "")
    model = model.to(device)
    if precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    compile_model(model, config.train.compile, device)
    return model, started


def _optimizer(config: Config, params: Any) -> torch.optim.Optimizer:
    """The optimizer ``config.train`` names over ``params``, with its learning rate, weight decay and momentum."""
    tc = config.train
    return build_optimizer(tc.optimizer, params, lr=tc.lr, weight_decay=tc.weight_decay, momentum=tc.momentum)


def _write_records(run_dir: Path, config: Config, recipe: dict) -> None:
    save_config(config, run_dir / "config.yaml")
    save_recipe(run_dir, recipe)
    for key, choice in recipe.items():
        log.info("recipe: %s = %s (%s)", key, choice["value"], choice["reason"])


def assemble_run(config: Config, previous: Checkpoint | None = None, run_dir: Path | None = None) -> Run:
    """Everything a run needs, built from ``config`` in a fixed order (so that the random state, seeded by
    ``train.seed``, is the same for a resumed run); the run directory gets ``config.yaml`` (the resolved
    configuration) and ``recipe.yaml``, and loses the temporary files of writes a killed process left.
    ``previous``/``run_dir``: the checkpoint and directory of a resumed run, whose training files must be the same.
    Nothing is written before the configuration, the data and the run directory have been checked."""
    validate(config)
    tc = config.train
    if run_dir is None:
        run_dir_of(config)  # refuse an existing run before reading the data
    init = read_init(tc.init) if tc.init and previous is None else None  # a resume keeps its own weights
    if init is not None:
        check_init_model(config, init)  # before the data is read
    torch.manual_seed(tc.seed)
    device = process_device(resolve_device(tc.device))  # under torchrun: cuda:LOCAL_RANK
    rank, world = rank_and_world()
    if tc.compile and (reason := compile_unavailable_reason(device.type)):
        raise ConfigError(f"train.compile: {reason}")
    precision = resolve_precision(tc.precision, device)
    loaded = load_datasets(config)
    data_files = data_fingerprint(*loaded)
    if previous is not None and run_dir is not None:
        check_same_data(previous, data_files, run_dir)
    channels = previous.model_config.get("in_channels") if previous is not None else None
    config, data, recipe = plan_and_prepare(config, device, precision, loaded, init, channels, world)
    check_split(config, world)  # the global batch and the epoch over the processes
    model, started = _network(config, data, device, precision, init)
    if tc.freeze_encoder:
        encoder_parameters(model)  # a network without an encoder is refused before anything is written
    recipe, started = (previous.recipe, previous.run_state.get("init")) if previous is not None else (recipe, started)
    recipe = record_processes(recipe, config.train.batch_size, world)
    tc = config.train
    input_size = model.input_size_for(tc.patch_size)
    dataset = PatchDataset(data.train_images, data.train_labels, input_size, model.output_size(input_size),
                           tc.samples_per_epoch or len(data.train_images), tc.augment, tc.seed, data.train_weights,
                           tc.augmentation, tc.foreground_fraction, data.ignore_index, data.cache_bytes)
    loss_fn = build_training_loss(config, model.num_classes)
    if previous is None and tc.time_budget is not None and "train.samples_per_epoch" in recipe:
        # an epoch's length follows the budget: a few steps timed on a copy of the network (callbacks/budget.py)
        config, recipe = fit_epoch_to_budget(config, recipe, model, dataset, loss_fn, device, precision,
                                             lambda params: _optimizer(config, params))
    if rank == 0:  # with several processes, rank 0 alone writes the run directory
        run_dir = run_dir if run_dir is not None else new_run_dir(config)
        for path in remove_stale_temporaries(run_dir):
            log.info("%s: removed %s, left by a write that was interrupted", run_dir, path.name)
        _write_records(run_dir, config, recipe)
        save_data_stats(run_dir, data)
    run_dir = run_dir if run_dir is not None else run_dir_of(config)
    tc = config.train
    sampler = RankSampler(dataset, rank, world) if world > 1 else None  # each process its share of the patches
    loader = DataLoader(dataset, batch_size=tc.batch_size // world, shuffle=False, sampler=sampler,
                        num_workers=tc.num_workers, pin_memory=device.type == "cuda")
    optimizer = _optimizer(config, model.parameters())
    return Run(config, run_dir, data, model, optimizer, loss_fn, dataset, loader, device, precision, recipe,
               data_files, started)
