"""Checkpoints as one safetensors file: tensors (weights, optimizer moments, RNG state) plus JSON metadata.

Nothing is pickled, so loading a checkpoint can never execute code. Every checkpoint holds what prediction needs
(weights, architecture, classes, normalisation, the prediction settings chosen on validation) and the record of
its run (configuration, recipe, history, best score); ``last.safetensors`` also holds the training state that
``--resume`` needs (optimizer moments, random state), ``best.safetensors`` does not (:meth:`Checkpoint.for_prediction`).
Files are written atomically.

Tensor keys: ``model/<state-dict key>``, ``optimizer/<param index>/<state key>``, ``rng/torch``, ``rng/cuda``.
Metadata: ``format`` = ``unetseg-checkpoint``, ``version``, and ``payload`` (a JSON document). Version 1 files
(an untyped ``extra`` mapping) are read too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .fileio import atomic_path

FORMAT = "unetseg-checkpoint"
VERSION = 2


class CheckpointError(ValueError):
    """The file is not a readable unetseg checkpoint; the message names it."""


@dataclass
class PredictionSettings:
    """Prediction settings a training run chose on its validation set (:mod:`unetseg.inference.tune`).

    ``tta``, ``min_size`` and ``instances`` are what :class:`unetseg.Predictor` uses by default; ``monitor`` and
    ``score`` are the validation metric and its value with these settings, ``scores`` the value of every candidate
    tried and ``instance_rand_errors`` the adapted Rand error of every instance method.
    """

    tta: str = "none"
    min_size: int = 0
    instances: str = "components"
    monitor: str = "foreground_dice"
    score: float = math.nan
    scores: dict[str, float] = field(default_factory=dict)
    instance_rand_errors: dict[str, float] = field(default_factory=dict)

    def predictor_options(self) -> dict[str, Any]:
        """The settings a :class:`unetseg.Predictor` takes: ``{"tta", "min_size", "instances"}``."""
        return {"tta": self.tta, "min_size": self.min_size, "instances": self.instances}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "PredictionSettings":
        """The settings of a dict written by :meth:`to_dict`; unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass
class Checkpoint:
    """The contents of a checkpoint file.

    The training state (``optimizer_state``, ``torch_rng_state``, ``cuda_rng_state``) is None in a checkpoint made
    for prediction only.
    """

    model_config: dict[str, Any]  # {"name": registry name, **options}
    num_classes: int  # classes in the label images, background included (2 = binary)
    class_names: list[str]
    normalization: dict[str, Any]
    run_config: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None  # the best value of the monitored validation metric so far
    recipe: dict[str, Any] = field(default_factory=dict)  # settings the recipe chose: key -> {value, reason}
    prediction: PredictionSettings | None = None
    model_state: dict[str, torch.Tensor] = field(default_factory=dict)
    optimizer_state: dict[str, Any] | None = None
    torch_rng_state: torch.Tensor | None = None
    cuda_rng_state: torch.Tensor | None = None
    run_state: dict[str, Any] = field(default_factory=dict)  # what resuming needs beyond the config (e.g. epochs)

    def for_prediction(self) -> "Checkpoint":
        """A copy without the training state (optimizer moments, random state): what ``best.safetensors`` holds."""
        return dataclasses.replace(self, optimizer_state=None, torch_rng_state=None, cuda_rng_state=None)


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
        "best_score": ckpt.best_score,
        "recipe": ckpt.recipe,
        "prediction": ckpt.prediction.to_dict() if ckpt.prediction is not None else None,
        "run_state": ckpt.run_state,
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
    return _from_payload(payload, tensors)


def _optimizer_state(payload: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    if payload.get("optimizer") is None:
        return None
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for index, scalars in payload["optimizer"]["scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    return {"state": state, "param_groups": payload["optimizer"]["param_groups"]}


def _run_record(payload: dict[str, Any]) -> dict[str, Any]:
    """best_score, recipe and prediction settings: typed fields since version 2, an ``extra`` mapping before."""
    record = (payload.get("extra") or {}) if "extra" in payload else payload
    prediction = record.get("prediction")
    return {"best_score": record.get("best_score"), "recipe": record.get("recipe") or {},
            "prediction": PredictionSettings.from_dict(prediction) if prediction else None}


def _from_payload(payload: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Checkpoint:
    rng = {key: None if tensors.get(f"rng/{key}") is None else tensors[f"rng/{key}"].cpu() for key in ("torch", "cuda")}
    return Checkpoint(
        model_config=payload["model_config"],
        num_classes=payload["num_classes"],
        class_names=payload["class_names"],
        normalization=payload["normalization"],
        run_config=payload["run_config"],
        epoch=payload["epoch"],
        history=payload["history"],
        **_run_record(payload),
        model_state={k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")},
        optimizer_state=_optimizer_state(payload, tensors),
        torch_rng_state=rng["torch"],
        cuda_rng_state=rng["cuda"],
        run_state=payload.get("run_state") or {},
    )


def build_model(ckpt: Checkpoint) -> torch.nn.Module:
    """Rebuild the network recorded in ``ckpt`` with its weights, in evaluation mode."""
    from .models import create_model

    config = dict(ckpt.model_config)
    model = create_model(config.pop("name"), **config)
    model.load_state_dict(ckpt.model_state)
    return model.eval()
