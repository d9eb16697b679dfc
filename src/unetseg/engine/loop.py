"""One epoch of training on random patches, and the metrics of a network on the full validation images."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..metrics import SCALAR_METRICS, ConfusionMatrix
from ..models.apply import logits_to_labels, padded_forward
from ..precision import autocast
from .divergence import Divergence
from .setup import RunData


def validation_metrics(model: torch.nn.Module, data: RunData, loss_fn: Any, device: torch.device,
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
    for key in SCALAR_METRICS:
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
) -> tuple[float, float, float]:
    """One pass over ``loader``; the learning rate of step i is ``lr_of_step(i)``; the forward pass runs under
    bfloat16 autocast for ``precision="bf16"`` (weights, gradients and optimizer stay float32). Returns (mean loss,
    last lr, the loss of the first step).

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
        x, y, *weight = (t.to(device, non_blocking=True) for t in batch)
        if precision == "bf16":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(precision, device):
            out = model(x)
        loss = loss_fn(out, y, weight_map=weight[0]) if weight else loss_fn(out, y)
        if not torch.isfinite(loss):
            raise Divergence(f"loss {loss.item():g}", step=i + 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
        if not torch.isfinite(norm):
            raise Divergence(f"gradient norm {norm.item():g}", step=i + 1)
        optimizer.step()
        losses.append(loss.detach().item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    if not finite_weights(model):
        raise Divergence("weights not finite", detail=f"after the epoch's last update (step {len(losses)})")
    return float(np.mean(losses)), lr, losses[0]


def finite_weights(model: torch.nn.Module) -> bool:
    """True when every floating-point weight and buffer of ``model`` (batch-norm statistics too) is finite."""
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def monitor_score(row: dict[str, Any], monitor: str) -> float:
    """Higher is better: the monitored validation metric of an epoch's ``row``, or minus the training loss
    without validation (NaN counts as the worst score)."""
    value = row.get(f"val_{monitor}")
    if value is None:
        return -row["train_loss"]
    return -math.inf if math.isnan(value) else value
