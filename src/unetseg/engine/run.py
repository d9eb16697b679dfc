"""Assembling a run from a configuration: validation, data, the recipe's plan, the network, the run directory."""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader

from ..checkpoint import Checkpoint, load_checkpoint
from ..compilation import compile_model, compile_unavailable_reason
from ..config import Config, ConfigError, save_config, validate
from ..data.patches import PatchDataset
from ..device import resolve_device
from ..fileio import atomic_write_text
from ..optim.optimizers import build_optimizer
from ..precision import resolve_precision
from .plan import plan_run, record
from .setup import RunData, build_network, build_training_loss, data_facts, load_datasets, prepare_data
from .state import LAST, Run

log = logging.getLogger("unetseg")


def starting_point(config: Config | None, resume: str | Path | None, epochs: int | None
                   ) -> tuple[Config, Checkpoint | None, Path | None]:
    """The configuration to run, the checkpoint to continue from and its run directory (both None for a new run).

    With ``resume`` the configuration is the one stored in ``RUN_DIR/last.safetensors``; ``epochs`` sets a new
    total (and ends a time budget)."""
    if resume is None:
        if config is None:
            raise ConfigError("train() needs a config, or resume=RUN_DIR")
        return config, None, None
    run_dir = Path(resume)
    previous = load_checkpoint(run_dir / LAST)
    config = Config.from_dict(previous.run_config, source=str(run_dir / LAST))
    if epochs is not None:
        config = copy.deepcopy(config)
        config.train = dataclasses.replace(config.train, epochs=epochs, time_budget=None)
    return config, previous, run_dir


def new_run_dir(config: Config) -> Path:
    """``train.output_dir/train.name`` (a timestamp without a name), created; ConfigError if it holds a run."""
    name = config.train.name or time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(config.train.output_dir) / name
    if (run_dir / LAST).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another name")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def plan_and_prepare(config: Config, device: torch.device, precision: str) -> tuple[Config, RunData, dict]:
    """Read the data, plan the run (:func:`~unetseg.engine.plan.plan_run`) and prepare the data with the resolved
    configuration; returns (resolved config, data, recipe)."""
    data, val = load_datasets(config)
    resolved, choices = plan_run(config, data_facts(data, val), device, precision)
    return resolved, prepare_data(resolved, data, val), record(choices)


def _network(config: Config, data: RunData, device: torch.device, precision: str) -> torch.nn.Module:
    model = build_network(config, data.channels, data.num_classes).to(device)
    if precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    compile_model(model, config.train.compile, device)
    return model


def _write_records(run_dir: Path, config: Config, recipe: dict) -> None:
    save_config(config, run_dir / "config.yaml")
    atomic_write_text(run_dir / "recipe.yaml", yaml.safe_dump(recipe, sort_keys=False))
    for key, choice in recipe.items():
        log.info("recipe: %s = %s (%s)", key, choice["value"], choice["reason"])


def assemble_run(config: Config, previous: Checkpoint | None = None, run_dir: Path | None = None) -> Run:
    """Everything a run needs, built from ``config`` in a fixed order (so that the random state, seeded by
    ``train.seed``, is the same for a resumed run); the run directory gets ``config.yaml`` (the resolved
    configuration) and ``recipe.yaml``. ``previous``/``run_dir``: the checkpoint and directory of a resumed run."""
    validate(config)
    tc = config.train
    torch.manual_seed(tc.seed)
    device = resolve_device(tc.device)
    if tc.compile and (reason := compile_unavailable_reason(device.type)):
        raise ConfigError(f"train.compile: {reason}")
    precision = resolve_precision(tc.precision, device)
    config, data, recipe = plan_and_prepare(config, device, precision)
    model = _network(config, data, device, precision)
    recipe = previous.recipe if previous is not None else recipe
    run_dir = run_dir if run_dir is not None else new_run_dir(config)
    _write_records(run_dir, config, recipe)
    tc = config.train
    input_size = model.input_size_for(tc.patch_size)
    dataset = PatchDataset(data.train_images, data.train_labels, input_size, model.output_size(input_size),
                           tc.samples_per_epoch or len(data.train_images), tc.augment, tc.seed, data.train_weights,
                           tc.augmentation, tc.foreground_fraction)
    loader = DataLoader(dataset, batch_size=tc.batch_size, shuffle=False, num_workers=tc.num_workers,
                        pin_memory=device.type == "cuda")
    optimizer = build_optimizer(tc.optimizer, model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay,
                                momentum=tc.momentum)
    loss_fn = build_training_loss(config, model.num_classes)
    return Run(config, run_dir, data, model, optimizer, loss_fn, dataset, loader, device, precision, recipe)
