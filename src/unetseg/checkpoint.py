"""Checkpoints as one safetensors file: tensors (weights, optimizer moments, RNG state) plus JSON metadata.

Nothing is pickled, so loading a checkpoint can never execute code. A checkpoint holds everything ``predict``
needs (architecture, classes, normalisation, the run's configuration) and everything ``--resume`` needs
(optimizer state, epoch, history, random state). Files are written atomically.

Tensor keys: ``model/<state-dict key>``, ``optimizer/<param index>/<state key>``, ``rng/torch``, ``rng/cuda``.
Metadata: ``format`` = ``unetseg-checkpoint``, ``version``, and ``payload`` (a JSON document).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .fileio import atomic_path

FORMAT = "unetseg-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is not a readable unetseg checkpoint; the message names it."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file."""

    model_config: dict[str, Any]  # {"name": registry name, **options}
    num_classes: int  # classes in the label images, background included (2 = binary)
    class_names: list[str]
    normalization: dict[str, Any]
    run_config: dict[str, Any]
    epoch: int  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    model_state: dict[str, torch.Tensor] = field(default_factory=dict)
    optimizer_state: dict[str, Any] | None = None
    torch_rng_state: torch.Tensor | None = None
    cuda_rng_state: torch.Tensor | None = None


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in ckpt.model_state.items()}
    optimizer_meta = None
    if ckpt.optimizer_state is not None:
        scalars: dict[str, dict[str, Any]] = {}
        for index, state in ckpt.optimizer_state["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer/{index}/{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(index), {})[key] = value
        optimizer_meta = {"param_groups": ckpt.optimizer_state["param_groups"], "scalars": scalars}
    if ckpt.torch_rng_state is not None:
        tensors["rng/torch"] = ckpt.torch_rng_state.cpu().contiguous()
    if ckpt.cuda_rng_state is not None:
        tensors["rng/cuda"] = ckpt.cuda_rng_state.cpu().contiguous()
    payload = {
        "model_config": ckpt.model_config,
        "num_classes": ckpt.num_classes,
        "class_names": ckpt.class_names,
        "normalization": ckpt.normalization,
        "run_config": ckpt.run_config,
        "epoch": ckpt.epoch,
        "history": ckpt.history,
        "extra": ckpt.extra,
        "optimizer": optimizer_meta,
    }
    metadata = {"format": FORMAT, "version": str(VERSION), "payload": json.dumps(payload)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (no code is executed).

    Raises:
        CheckpointError: missing file, not a safetensors file, or not a unetseg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({err})") from err
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: safetensors file without unetseg metadata (format={metadata.get('format')!r})")
    if int(metadata.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {metadata['version']} is newer than supported ({VERSION})")
    payload = json.loads(metadata["payload"])
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    optimizer_state = None
    if payload["optimizer"] is not None:
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer/"):
                _, index, name = key.split("/", 2)
                state.setdefault(int(index), {})[name] = value
        for index, scalars in payload["optimizer"]["scalars"].items():
            state.setdefault(int(index), {}).update(scalars)
        optimizer_state = {"state": state, "param_groups": payload["optimizer"]["param_groups"]}
    return Checkpoint(
        model_config=payload["model_config"],
        num_classes=payload["num_classes"],
        class_names=payload["class_names"],
        normalization=payload["normalization"],
        run_config=payload["run_config"],
        epoch=payload["epoch"],
        history=payload["history"],
        extra=payload["extra"],
        model_state=model_state,
        optimizer_state=optimizer_state,
        torch_rng_state=None if tensors.get("rng/torch") is None else tensors["rng/torch"].cpu(),
        cuda_rng_state=None if tensors.get("rng/cuda") is None else tensors["rng/cuda"].cpu(),
    )


def build_model(ckpt: Checkpoint) -> torch.nn.Module:
    """Rebuild the network recorded in ``ckpt`` with its weights, in evaluation mode."""
    from .models import create_model

    config = dict(ckpt.model_config)
    model = create_model(config.pop("name"), **config)
    model.load_state_dict(ckpt.model_state)
    return model.eval()
