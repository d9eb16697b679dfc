"""One epoch of training on random patches (which a time budget may end early), the metrics of a network on the
full validation images (or a given subset), and the measured time of one training step."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from ..distributed import collective, from_rank_zero, mean_over_processes, rank_and_world, sum_over_processes
from ..metrics import SCALAR_METRICS, ConfusionMatrix, segmentation_metrics
from ..models.apply import logits_to_labels, padded_forward
from ..precision import autocast
from .divergence import Divergence
from .setup import RunData


def validation_metrics(model: torch.nn.Module, data: RunData, loss_fn: Any, device: torch.device,
                       precision: str = "fp32", images: Sequence[int] | None = None,
                       enough: Callable[[int, float], bool] | None = None) -> dict[str, Any]:
    """Loss and confusion-matrix metrics of ``model`` on the full validation images (prefixed ``val_``); the
    forward pass runs under bfloat16 autocast for ``precision="bf16"``, the loss and metrics in float32.

    ``images``: the indices of the validation images to use, in that order (default: all, in order);
    ``enough(done, seconds)``: asked after each image with the images done and the seconds taken so far, ends the
    pass when it returns True. With either, the row also holds ``val_images``, the number of images used.

    In a run of several processes (:mod:`unetseg.engine.distributed`) each process validates every N-th image of
    the list, the confusion matrices and loss sums are added up over the processes, ``enough`` is asked after each
    round of N images and rank 0's answer holds for all; every process returns the same row."""
    model.eval()
    order = list(range(len(data.val_images)) if images is None else images)
    rank, world = rank_and_world() if collective() else (0, 1)
    cm = ConfusionMatrix(data.num_classes, ignore_index=data.ignore_index)
    losses: list[float] = []
    done, started = 0, time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(order), world):
            share = order[first:first + world]
            if rank < len(share):
                losses.append(_validate_image(model, data, share[rank], loss_fn, device, precision, cm))
            done = first + len(share)
            if enough is not None and from_rank_zero(enough(done, time.perf_counter() - started)):
                break
    model.train()
    matrix, loss = _summed(cm.matrix, losses, done) if world > 1 else (cm.matrix, float(np.mean(losses)))
    metrics = segmentation_metrics(matrix)
    row: dict[str, Any] = {"val_loss": loss}
    if images is not None or enough is not None:
        row["val_images"] = done
    for key in SCALAR_METRICS:
        row[f"val_{key}"] = metrics[key]
    for name, iou, dice in zip(data.class_names, metrics["iou"], metrics["dice"]):
        row[f"val_iou_{name}"], row[f"val_dice_{name}"] = iou, dice
    return row


def _summed(matrix: np.ndarray, losses: list[float], done: int) -> tuple[np.ndarray, float]:
    """The confusion matrix and the mean loss of the ``done`` images the processes validated together, from each
    process's ``matrix`` and image ``losses``."""
    total = float(sum_over_processes(np.array([sum(losses)], dtype=np.float64))[0])
    return sum_over_processes(matrix), total / done if done else math.nan


def _validate_image(model: torch.nn.Module, data: RunData, index: int, loss_fn: Any, device: torch.device,
                    precision: str, cm: ConfusionMatrix) -> float:
    """The loss of ``model`` on validation image ``index``, whose confusion matrix is added to ``cm``."""
    with autocast(precision, device):
        logits = padded_forward(model, torch.from_numpy(data.val_images[index])[None].to(device))
    logits = logits.float()
    target = torch.from_numpy(data.val_labels[index].astype(np.int64))[None].to(device)
    cm.update(logits_to_labels(logits), target)
    return float(loss_fn(logits, target))


@dataclass
class EpochResult:
    """What :func:`train_steps` did: the mean loss, the last learning rate, the first step's loss and the steps
    taken (fewer than the loader's batches when ``stop`` ended the epoch)."""

    mean_loss: float
    lr: float
    first_loss: float
    steps: int


def train_steps(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    lr_of_step: Callable[[int], float],
    desc: str = "",
    progress: bool = True,
    precision: str = "fp32",
    stop: Callable[[], bool] | None = None,
) -> EpochResult:
    """One pass over ``loader``, which ``stop`` may end early: it is asked after every step (so at least one step
    is taken) and ends the epoch when it returns True (a time budget spent). The learning rate of step i is
    ``lr_of_step(i)``; the forward pass runs under bfloat16 autocast for ``precision="bf16"`` (weights, gradients
    and optimizer stay float32).

    Raises:
        Divergence: a step's loss or gradient norm is not finite (the step is not taken), or the weights are not
            finite after the last step.
    """
    losses, lr = [], math.nan
    bar = tqdm(loader, desc=desc, disable=None if progress else True, leave=False, unit="batch")
    for i, batch in enumerate(bar):
        lr = lr_of_step(i)
        for group in optimizer.param_groups:
            group["lr"] = lr
        losses.append(training_step(model, batch, optimizer, loss_fn, device, precision, i + 1))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if stop is not None and stop():
            break
    bar.close()
    if not finite_weights(model):
        raise Divergence("weights not finite", detail=f"after the epoch's last update (step {len(losses)})")
    return EpochResult(float(np.mean(losses)), lr, losses[0], len(losses))


def training_step(model: torch.nn.Module, batch: Sequence[torch.Tensor], optimizer: torch.optim.Optimizer,
                  loss_fn: Callable[..., torch.Tensor], device: torch.device, precision: str = "fp32",
                  step: int = 1) -> float:
    """One optimisation step on ``batch`` (images, labels[, weight map]) at the learning rate already set in
    ``optimizer``; returns the loss. ``step`` (1-based) is what a :class:`Divergence` names. In a run of several
    processes ``model`` is the DistributedDataParallel wrapper (which averages the gradients) and the loss returned
    and checked is the mean over the processes, so that every process takes the same decision.

    Raises:
        Divergence: the loss or the gradient norm is not finite (the step is not taken).
    """
    x, y, *weight = (t.to(device, non_blocking=True) for t in batch)
    if precision == "bf16":
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(precision, device):
        out = model(x)
    loss = loss_fn(out, y, weight_map=weight[0]) if weight else loss_fn(out, y)
    value = mean_over_processes(loss.detach())  # several processes: the loss of the whole batch, in every one
    if not torch.isfinite(value):
        raise Divergence(f"loss {value.item():g}", step=step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    if not torch.isfinite(norm):
        raise Divergence(f"gradient norm {norm.item():g}", step=step)
    optimizer.step()
    return value.item()


def seconds_per_step(model: torch.nn.Module, dataset: Dataset, batch_size: int,
                     optimizer_factory: Callable[[Any], torch.optim.Optimizer], loss_fn: Callable[..., torch.Tensor],
                     device: torch.device, precision: str = "fp32", workers: int = 0, steps: int = 2) -> float:
    """Wall seconds of one training step of ``batch_size`` patches of ``dataset`` (drawing the patches and the
    step), measured on a deep copy of ``model`` with its own optimizer (``optimizer_factory(parameters)``): one
    warm-up step, then the median of ``steps`` timed steps. The patches are the first ones of the dataset's current
    epoch (each a pure function of its index); ``model``, its optimizer and the random state are left exactly as
    they were. With ``workers`` loader processes drawing patches beside the steps, a step takes
    ``max(compute, drawing / workers)``, else ``compute + drawing``. A compiled network is timed uncompiled (an
    over-estimate: fewer steps per epoch)."""
    clone = copy.deepcopy(model)
    if getattr(clone, "_compiled_call_impl", None) is not None:
        # a copied compiled call could still be bound to the original network (torch 2.13 drops it from copies):
        # the copy is timed eagerly
        clone._compiled_call_impl = None
    clone.train()
    optimizer = optimizer_factory(clone.parameters())
    draws, computes = [], []
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" \
        else []
    with torch.random.fork_rng(devices=cuda):
        for k in range(1 + steps):
            started = time.perf_counter()
            batch = default_collate([dataset[k * batch_size + j] for j in range(batch_size)])
            drawn = time.perf_counter()
            try:
                training_step(clone, batch, optimizer, loss_fn, device, precision)
            except Divergence:  # the time is what counts here; training itself reports the problem
                pass
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            draws.append(drawn - started)
            computes.append(time.perf_counter() - drawn)
    draw, compute = float(np.median(draws[1:])), float(np.median(computes[1:]))
    return max(compute, draw / workers) if workers > 0 else compute + draw


def finite_weights(model: torch.nn.Module) -> bool:
    """True when every floating-point weight and buffer of ``model`` (batch-norm statistics too) is finite."""
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


#: validated epochs whose mean monitored score ranks an epoch for ``best.safetensors``: it and the ones before it
BEST_WINDOW = 3


def windowed_means(scores: Sequence[float], window: int = BEST_WINDOW) -> list[float]:
    """For each of the monitored ``scores`` of validated epochs (in order), the mean of it and the ``window - 1``
    before it (fewer at the start): what ranks the epochs for ``best.safetensors``, so that one noisy validation
    (a few images, a flat curve) does not decide which weights are kept. A -inf score (a NaN metric) makes its
    windows -inf.

    Example:
        >>> windowed_means([0.5, 0.7, 0.9, 0.5], window=2)
        [0.5, 0.6, 0.8, 0.7]
    """
    return [sum(scores[max(0, i + 1 - window):i + 1]) / (i + 1 - max(0, i + 1 - window)) for i in range(len(scores))]


def is_best(scores: Sequence[float], window: int = BEST_WINDOW) -> bool:
    """Whether the last of the validated epochs with these monitored ``scores`` is the best so far: its windowed
    mean (:func:`windowed_means`) is at least every earlier one, so that on a tie (a plateau) the later weights,
    trained longer at a lower learning rate, are kept. The first epoch always is; a -inf mean never is after it."""
    means = windowed_means(scores, window)
    return len(means) == 1 or (means[-1] > -math.inf and means[-1] >= max(means[:-1]))


def monitor_score(row: dict[str, Any], monitor: str) -> float:
    """Higher is better: the monitored validation metric of an epoch's ``row``, or minus the training loss
    without validation (NaN counts as the worst score)."""
    value = row.get(f"val_{monitor}")
    if value is None:
        return -row["train_loss"]
    return -math.inf if math.isnan(value) else value
