"""The training loop: epochs of random patches, full-image validation, checkpoints, logs and resume."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..compilation import compile_model, compile_unavailable_reason
from ..config import Config, ConfigError, save_config
from ..fileio import atomic_write_text
from ..data.patches import PatchDataset
from ..device import resolve_device
from ..precision import autocast, resolve_precision
from ..models.apply import logits_to_labels, padded_forward
from ..metrics import ConfusionMatrix
from ..checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .logs import plot_curves, write_log_csv
from .recipe import DEFAULT_EPOCHS, Choice, choose_model, choose_training, record
from ..optim.schedules import lr_at
from ..inference.tune import tune_prediction
from .setup import RunData, build_network, build_optimizer, build_training_loss, check_config, prepare_data

log = logging.getLogger("unetseg")

LAST, BEST = "last.safetensors", "best.safetensors"


@dataclass
class TrainResult:
    """Where a finished run put its files, and its per-epoch history."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, Any]]


def _run_dir(config: Config) -> Path:
    name = config.train.name or time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(config.train.output_dir) / name
    if (run_dir / LAST).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another name")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def validate(model: torch.nn.Module, data: RunData, loss_fn: Any, device: torch.device,
             precision: str = "fp32") -> dict[str, Any]:
    """Loss and confusion-matrix metrics of ``model`` on the full validation images (prefixed ``val_``); the
    forward pass runs under bfloat16 autocast for ``precision="bf16"``, the loss and metrics in float32."""
    model.eval()
    cm = ConfusionMatrix(data.num_classes, ignore_index=data.ignore_index)
    losses = []
    with torch.inference_mode():
        for image, labels in zip(data.val_images, data.val_labels):
            with autocast(precision, device):
                logits = padded_forward(model, torch.from_numpy(image)[None].to(device))
            logits = logits.float()
            target = torch.from_numpy(labels.astype(np.int64))[None].to(device)
            losses.append(float(loss_fn(logits, target)))
            cm.update(logits_to_labels(logits), target)
    model.train()
    metrics = cm.compute()
    row: dict[str, Any] = {"val_loss": float(np.mean(losses))}
    for key in ("pixel_accuracy", "mean_class_accuracy", "mean_iou", "fw_iou", "foreground_dice"):
        row[f"val_{key}"] = metrics[key]
    for name, iou, dice in zip(data.class_names, metrics["iou"], metrics["dice"]):
        row[f"val_iou_{name}"], row[f"val_dice_{name}"] = iou, dice
    return row


def train_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    lr_of_step: Callable[[int], float],
    desc: str = "",
    progress: bool = True,
    precision: str = "fp32",
) -> tuple[float, float]:
    """One pass over ``loader``; the learning rate of step i is ``lr_of_step(i)``; the forward pass runs under
    bfloat16 autocast for ``precision="bf16"`` (weights, gradients and optimizer stay float32). Returns (mean loss,
    last lr)."""
    losses, lr = [], math.nan
    bar = tqdm(loader, desc=desc, disable=None if progress else True, leave=False, unit="batch")
    for i, batch in enumerate(bar):
        lr = lr_of_step(i)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y, *weight = (t.to(device, non_blocking=True) for t in batch)
        if precision == "bf16":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(precision, device):
            out = model(x)
        loss = loss_fn(out, y, weight_map=weight[0]) if weight else loss_fn(out, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}, step {i}: loss is {loss.item()}; try a lower train.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return float(np.mean(losses)), lr


def _score(row: dict[str, Any], monitor: str) -> float:
    """Higher is better: the monitored validation metric, or minus the training loss without validation."""
    value = row.get(f"val_{monitor}")
    if value is None:
        return -row["train_loss"]
    return -math.inf if math.isnan(value) else value


def _fit_epochs(history: list[dict[str, Any]], elapsed: float, budget: float, reserve: float) -> int:
    """Total epochs that fit in ``budget`` seconds: the epochs done plus as many more of the median recent epoch
    time as the remaining budget (less ``reserve`` for what follows training) allows."""
    recent = [row["seconds"] for row in history[-5:]]
    more = int((budget - elapsed - reserve) // max(float(np.median(recent)), 1e-6))
    return len(history) + max(more, 0)


def _write_recipe(run_dir: Path, recipe: dict[str, Any]) -> None:
    atomic_write_text(run_dir / "recipe.yaml", yaml.safe_dump(recipe, sort_keys=False))


def train(
    config: Config | None = None, resume: str | Path | None = None, epochs: int | None = None, progress: bool = True
) -> TrainResult:
    """Train a network as ``config`` says, or continue the run in directory ``resume`` exactly where it stopped.

    Settings left unset are chosen from the data by :mod:`unetseg.engine.recipe` and recorded in ``recipe.yaml``.
    With ``train.time_budget`` (minutes) the number of epochs is re-fitted after every epoch from the measured epoch
    time so that the run, including the final choice of prediction settings, ends within the budget (the first
    epoch always runs; the learning-rate schedule follows the fitted total).

    The run directory holds ``config.yaml``, ``recipe.yaml``, ``log.csv``, ``curves.png``, ``last.safetensors``
    (after every epoch) and ``best.safetensors`` (best validation ``train.monitor``). After training, with
    ``train.tune_prediction`` and validation images, test-time augmentation, small-object removal and the instance
    method are chosen on the validation set (:mod:`unetseg.engine.tune`), written to ``prediction.yaml`` and stored in
    ``best.safetensors``, where :meth:`unetseg.Predictor.from_checkpoint` finds them.

    A resumed run restores the weights, optimizer, epoch, history and random state, so it ends with the same
    weights as a run that was never stopped (on the same device and thread count; with a time budget the number
    of epochs depends on measured times and so may differ).

    Args:
        config: the run configuration (not used with ``resume``, which reads it from the checkpoint).
        resume: a run directory holding ``last.safetensors``.
        epochs: with ``resume``, a new total number of epochs (the schedule is stretched to it; ends a time budget).
        progress: show a progress bar per epoch.
    """
    started = time.perf_counter()
    previous: Checkpoint | None = None
    if resume is not None:
        run_dir = Path(resume)
        previous = load_checkpoint(run_dir / LAST)
        config = Config.from_dict(previous.run_config, source=str(run_dir / LAST))
        if epochs is not None:
            config.train.epochs, config.train.time_budget = epochs, None
    elif config is None:
        raise ConfigError("train() needs a config, or resume=RUN_DIR")
    check_config(config)
    tc = config.train
    torch.manual_seed(tc.seed)
    device = resolve_device(tc.device)
    if tc.compile and (reason := compile_unavailable_reason(device.type)):
        raise ConfigError(f"train.compile: {reason}")
    val_auto = config.data.val_fraction is None and not config.data.val
    data = prepare_data(config)
    precision = resolve_precision(tc.precision, device)
    recipe_choices: list[Choice] = []
    if val_auto:
        recipe_choices.append(Choice("data.val_fraction", config.data.val_fraction,
                                     f"{len(data.val_images)} of {len(data.val_images) + len(data.train_images)} "
                                     "images: 20%, at most max(50 images, 10%)"))
    shapes = [tuple(image.shape[-2:]) for image in data.train_images]
    recipe_choices += choose_training(config, shapes, data.num_classes, data.channels, device, precision)
    recipe_choices += choose_model(config)
    model = build_network(config, data.channels, data.num_classes).to(device)
    if precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    compile_model(model, tc.compile, device)
    recipe = previous.extra.get("recipe", {}) if previous is not None else record(recipe_choices)
    budget = tc.time_budget * 60.0 if tc.time_budget is not None else None
    if budget is not None and tc.epochs is None:
        tc.epochs = DEFAULT_EPOCHS  # provisional: re-fitted after the first epoch
    run_dir = run_dir if previous is not None else _run_dir(config)
    save_config(config, run_dir / "config.yaml")
    _write_recipe(run_dir, recipe)
    for key, choice in recipe.items():
        log.info("recipe: %s = %s (%s)", key, choice["value"], choice["reason"])
    input_size = model.input_size_for(tc.patch_size)
    dataset = PatchDataset(data.train_images, data.train_labels, input_size, model.output_size(input_size),
                           tc.samples_per_epoch or len(data.train_images), tc.augment, tc.seed, data.train_weights,
                           tc.augmentation, tc.foreground_fraction)
    loader = DataLoader(dataset, batch_size=tc.batch_size, shuffle=False, num_workers=tc.num_workers,
                        pin_memory=device.type == "cuda")
    optimizer = build_optimizer(config, model)
    loss_fn = build_training_loss(config, model.num_classes)
    history: list[dict[str, Any]] = []
    best = -math.inf
    start_epoch = 0
    if previous is not None:
        model.load_state_dict(previous.model_state)
        optimizer.load_state_dict(previous.optimizer_state)
        torch.set_rng_state(previous.torch_rng_state)
        if device.type == "cuda" and previous.cuda_rng_state is not None:
            torch.cuda.set_rng_state(previous.cuda_rng_state, device)
        history, best, start_epoch = previous.history, previous.extra["best_score"], previous.epoch
        log.info("resuming %s after epoch %d of %d", run_dir, start_epoch, tc.epochs)
    steps_per_epoch = len(loader)
    log.info("model %s (%d parameters), input tile %d -> output %d, %d steps per epoch, device %s, %s",
             model.config["name"], sum(p.numel() for p in model.parameters()), input_size,
             model.output_size(input_size), steps_per_epoch, device, precision)
    tune = tc.tune_prediction and bool(data.val_images)

    def checkpoint(epoch: int) -> Checkpoint:
        return Checkpoint(
            model_config=model.config, num_classes=data.num_classes, class_names=data.class_names,
            normalization=data.normalization.to_dict(), run_config=config.to_dict(), epoch=epoch,
            history=history, extra={"best_score": best, "recipe": recipe}, model_state=model.state_dict(),
            optimizer_state=optimizer.state_dict(), torch_rng_state=torch.get_rng_state(),
            cuda_rng_state=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        )

    model.train()
    epoch = start_epoch
    while epoch < tc.epochs:
        epoch_started = time.perf_counter()
        dataset.set_epoch(epoch)
        first_step, total_steps = epoch * steps_per_epoch, steps_per_epoch * tc.epochs
        mean_loss, lr = train_epoch(
            model, loader, optimizer, loss_fn, device,
            lambda i: lr_at(first_step + i, total_steps, tc.lr, tc.schedule, tc.warmup_epochs * steps_per_epoch),
            desc=f"epoch {epoch + 1}/{tc.epochs}", progress=progress, precision=precision,
        )
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": mean_loss}
        if data.val_images:
            val_started = time.perf_counter()
            row.update(validate(model, data, loss_fn, device, precision))
            row["val_seconds"] = round(time.perf_counter() - val_started, 3)
        row["seconds"] = round(time.perf_counter() - epoch_started, 3)
        history.append(row)
        epoch += 1
        if budget is not None:
            # after training: the tuning pass predicts each validation image 8 times (about 8 validations)
            reserve = 8 * row.get("val_seconds", 0.0) if tune else 0.0
            elapsed = time.perf_counter() - started + sum(r["seconds"] for r in history[:start_epoch])
            tc.epochs = max(epoch, _fit_epochs(history, elapsed, budget, reserve))
        score = _score(row, tc.monitor)
        improved = score > best or not (run_dir / BEST).exists()
        best = max(best, score)
        save_checkpoint(run_dir / LAST, checkpoint(epoch))
        if improved:
            save_checkpoint(run_dir / BEST, checkpoint(epoch))
        write_log_csv(run_dir / "log.csv", history)
        plot_curves(run_dir / "curves.png", history)
        log.info("epoch %d/%d  loss %.4f%s  %.1fs%s", epoch, tc.epochs, row["train_loss"],
                 f"  val loss {row['val_loss']:.4f}  val {tc.monitor} {row.get('val_' + tc.monitor, math.nan):.4f}"
                 if data.val_images else "", row["seconds"], "  (best)" if improved else "")
    save_config(config, run_dir / "config.yaml")
    if tune:
        _tune_best(run_dir, model, data, config, device, precision)
    return TrainResult(run_dir, run_dir / BEST, run_dir / LAST, history)


def _tune_best(run_dir: Path, model: torch.nn.Module, data: RunData, config: Config, device: torch.device,
               precision: str) -> None:
    """Choose the prediction settings with the best checkpoint's weights on the validation set; store them in
    ``best.safetensors`` and ``prediction.yaml``."""
    best = load_checkpoint(run_dir / BEST)
    model.load_state_dict(best.model_state)
    chosen = tune_prediction(model, data.val_images, data.val_labels, data.num_classes, data.train_labels, device,
                             precision, config.train.monitor, data.ignore_index,
                             instances=data.val_instances)
    best.extra["prediction"] = chosen
    save_checkpoint(run_dir / BEST, best)
    atomic_write_text(run_dir / "prediction.yaml", yaml.safe_dump(chosen, sort_keys=False))
