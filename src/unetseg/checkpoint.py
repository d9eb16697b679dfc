"""Checkpoints as one safetensors file: tensors (weights, optimizer moments, RNG state) plus JSON metadata.

Nothing is pickled, so loading a checkpoint can never execute code. Every checkpoint holds what prediction needs
(weights, architecture, classes, normalisation, the prediction settings chosen on validation) and the record of
its run (configuration, recipe, history, best score); ``last.safetensors`` also holds the training state that
``--resume`` needs (optimizer moments, random state), ``best.safetensors`` does not (:meth:`Checkpoint.for_prediction`).
Files are written atomically.

Tensor keys: ``model/<state-dict key>``, ``optimizer/<param index>/<state key>``, ``rng/torch``, ``rng/cuda``.
Metadata: ``format`` = ``unetseg-checkpoint``, ``version``, and ``payload`` (a JSON document). Version 1 files
(an untyped ``extra`` mapping) are read too.

Reading checks everything before anything is used: the payload's keys and types (:func:`check_payload`), and, by
building the network on the meta device (no memory), that the weights fit it and its head fits the classes
(:func:`check_model`). Every fault is a :class:`CheckpointError` naming the file, the key or weight and what to
do. A run directory stands for its ``best.safetensors`` (else ``last.safetensors``): :func:`resolve_checkpoint`.
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

from .data.normalize import Normalization
from .fileio import atomic_path
from .registry import RegistryError

FORMAT = "unetseg-checkpoint"
VERSION = 2

#: what a run directory given as a checkpoint resolves to, in this order (:func:`resolve_checkpoint`)
RUN_DIR_FILES = ("best.safetensors", "last.safetensors")

#: the end of a message about a damaged checkpoint: what to do
DAMAGED = "the file is damaged or was not written by unetseg: train again or use another checkpoint"

#: keys every payload holds
REQUIRED_KEYS = ("model_config", "num_classes", "class_names", "normalization", "run_config", "epoch", "history")

#: the type of every payload key (keys of :data:`RECORD_KEYS` are under ``extra`` in version-1 files)
PAYLOAD_TYPES = {
    "model_config": "an object", "num_classes": "an integer >= 2", "class_names": "a list of strings",
    "normalization": "an object", "run_config": "an object", "epoch": "an integer >= 0",
    "history": "a list of objects", "best_score": "a number or null", "recipe": "an object or null",
    "prediction": "an object or null", "run_state": "an object or null", "optimizer": "an object or null",
    "extra": "an object or null",
}
RECORD_KEYS = ("best_score", "recipe", "prediction")


class CheckpointError(ValueError):
    """The file is not a readable unetseg checkpoint; the message names it."""


@dataclass
class PredictionSettings:
    """Prediction settings a training run chose on its validation set (:mod:`unetseg.inference.tune`).

    ``tta``, ``min_size``, ``instances``, ``instance_threshold`` and ``seed_threshold`` are what
    :class:`unetseg.Predictor` uses by default; ``monitor`` and
    ``score`` are the validation metric and its value with these settings, ``scores`` the value of every candidate
    tried, ``instance_metric`` the metric the instance method was chosen by (``ap``, ``seg`` or ``rand``: see
    :mod:`unetseg.inference.instance_choice`) and ``instance_scores`` its value for every method,
    (at its chosen thresholds), ``threshold_scores`` its value for every threshold tried with every method
    (``"<method> t=<instance threshold> s=<seed threshold>"``; empty in files written before they were chosen),
    ``instance_rand_errors`` the adapted Rand error of every instance method (when that was the metric, and in
    files written before the metric could be chosen) and ``cost`` the network
    seconds per validation image of each test-time augmentation, measured on the training device (empty in
    files written before it was recorded). ``tuned_on`` is set when a time budget limited the choice: ``images``
    (the validation images it was made on), ``of`` (the validation images there are) and ``passes`` (network
    passes per image: 8 with every test-time augmentation tried, 1 with ``none`` alone); empty otherwise.
    """

    tta: str = "none"
    min_size: int = 0
    instances: str = "components"
    instance_threshold: float = 0.5
    seed_threshold: float = 0.9
    monitor: str = "foreground_dice"
    score: float = math.nan
    scores: dict[str, float] = field(default_factory=dict)
    instance_metric: str = ""
    instance_scores: dict[str, float] = field(default_factory=dict)
    threshold_scores: dict[str, float] = field(default_factory=dict)
    instance_rand_errors: dict[str, float] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    tuned_on: dict[str, int] = field(default_factory=dict)

    def predictor_options(self) -> dict[str, Any]:
        """The settings a :class:`unetseg.Predictor` takes: ``{"tta", "min_size", "instances",
        "instance_threshold", "seed_threshold"}``."""
        return {"tta": self.tta, "min_size": self.min_size, "instances": self.instances,
                "instance_threshold": self.instance_threshold, "seed_threshold": self.seed_threshold}

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
    for prediction only. ``source`` is the file it was read from ('' when made in memory); error messages name it.
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
    source: str = field(default="", compare=False, repr=False)  # the file it was read from; messages name it

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


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint file ``path`` names: the file itself, or for a run directory its ``best.safetensors``
    (else its ``last.safetensors``).

    Raises:
        CheckpointError: ``path`` does not exist, or is a folder holding neither file (the message lists what was
            looked for).
    """
    path = Path(path)
    if path.is_dir():
        for name in RUN_DIR_FILES:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: a folder without a checkpoint (looked for {' and '.join(RUN_DIR_FILES)}); "
                              "give a .safetensors file or the directory of a training run")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found; give a .safetensors file written by "
                              "unetseg train, or its run directory")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (no code is executed) and check it.

    ``path`` may be a run directory (:func:`resolve_checkpoint`). The metadata is checked (every key present with
    the right type, classes that fit the network's head) and the network is built without allocating memory to
    check that the stored weights fit it, so a checkpoint that loads also builds (:func:`build_model`).

    Raises:
        CheckpointError: missing file, not a safetensors file, not a unetseg checkpoint, or damaged metadata or
            weights; the message names the file and the key or value.
    """
    path = resolve_checkpoint(path)
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({err}); the file is damaged or of "
                              "another kind: give a .safetensors file written by unetseg train") from err
    payload = _read_payload(path, metadata)
    ckpt = _from_payload(payload, tensors, str(path))
    check_model(ckpt)
    return ckpt


def _read_payload(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """The checked JSON payload of the metadata of the file ``path``."""
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: safetensors file without unetseg metadata (format={metadata.get('format')!r}); "
                              "give a checkpoint written by unetseg train")
    version = metadata.get("version", "0")
    if not version.isdecimal():
        raise CheckpointError(f"{path}: metadata 'version' must be a whole number, got {version!r}; {DAMAGED}")
    if int(version) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version} is newer than supported ({VERSION}); "
                              "upgrade unetseg to read it")
    if "payload" not in metadata:
        raise CheckpointError(f"{path}: metadata key 'payload' is missing; {DAMAGED}")
    try:
        payload = json.loads(metadata["payload"])
    except ValueError as err:  # json.JSONDecodeError, and RecursionError's kin for absurd nesting
        raise CheckpointError(f"{path}: metadata 'payload' is not valid JSON ({err}); {DAMAGED}") from err
    except RecursionError as err:
        raise CheckpointError(f"{path}: metadata 'payload' is nested too deeply to read; {DAMAGED}") from err
    check_payload(payload, str(path))
    return payload


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_problem(key: str, value: Any) -> str | None:
    """What is wrong with the payload entry ``key`` (None when it is right); see :data:`PAYLOAD_TYPES`."""
    rule = PAYLOAD_TYPES[key]
    optional = rule.endswith(" or null")
    if value is None:
        return None if optional else f"must be {rule}, got null"
    kind = rule.removesuffix(" or null")
    ok = {"an object": isinstance(value, dict), "a list of objects": isinstance(value, list)
          and all(isinstance(v, dict) for v in value), "a list of strings": isinstance(value, list)
          and all(isinstance(v, str) for v in value), "an integer >= 0": _is_int(value) and value >= 0,
          "an integer >= 2": _is_int(value) and value >= 2, "a number": _is_number(value)}[kind]
    return None if ok else f"must be {rule}, got {_shown(value)}"


def _shown(value: Any, limit: int = 80) -> str:
    """``value`` for a message, cut to ``limit`` characters."""
    text = json.dumps(value) if isinstance(value, (dict, list, str, bool)) or value is None else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_payload(payload: Any, source: str = "checkpoint") -> None:
    """Check the JSON payload of a checkpoint: required keys present, every key of the right type
    (:data:`PAYLOAD_TYPES`), ``class_names`` one per class, readable normalisation and prediction settings.

    Raises:
        CheckpointError: the first problem, naming ``source`` and the key.
    """
    if not isinstance(payload, dict):
        raise CheckpointError(f"{source}: metadata 'payload' must be a JSON object, got {_shown(payload)}; {DAMAGED}")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{source}: metadata key {missing[0]!r} is missing; {DAMAGED}")
    record = payload.get("extra") if isinstance(payload.get("extra"), dict) else payload
    for key in PAYLOAD_TYPES:
        value = record.get(key) if key in RECORD_KEYS else payload.get(key)
        problem = _type_problem(key, value)
        if problem:
            raise CheckpointError(f"{source}: metadata key {key!r} {problem}; {DAMAGED}")
    name = payload["model_config"].get("name")
    if not isinstance(name, str):
        raise CheckpointError(f"{source}: metadata key 'model_config' needs a 'name' string (the network), got "
                              f"{_shown(name)}; {DAMAGED}")
    if len(payload["class_names"]) != payload["num_classes"]:
        raise CheckpointError(f"{source}: metadata key 'class_names' lists {len(payload['class_names'])} name(s) "
                              f"but num_classes is {payload['num_classes']}; {DAMAGED}")
    _check_settings(payload, record, source)


def _check_settings(payload: dict[str, Any], record: dict[str, Any], source: str) -> None:
    """CheckpointError unless the normalisation, the prediction settings and the optimizer record can be read."""
    try:
        Normalization.from_dict(payload["normalization"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: metadata key 'normalization' is not valid ({err}); {DAMAGED}") from err
    defaults = PredictionSettings()
    for key, value in (record.get("prediction") or {}).items():
        expected = getattr(defaults, key, None)
        if hasattr(defaults, key) and not _same_kind(value, expected):
            raise CheckpointError(f"{source}: metadata key 'prediction.{key}' must be of type "
                                  f"{type(expected).__name__}, got {_shown(value)}; {DAMAGED}")
    optimizer = payload.get("optimizer")
    if optimizer is not None and not (isinstance(optimizer.get("param_groups"), list)
                                      and isinstance(optimizer.get("scalars"), dict)
                                      and all(k.isdecimal() and isinstance(v, dict)
                                              for k, v in optimizer["scalars"].items())):
        raise CheckpointError(f"{source}: metadata key 'optimizer' needs 'param_groups' (a list) and 'scalars' "
                              f"(an object of objects keyed by parameter index); {DAMAGED}")


def _same_kind(value: Any, default: Any) -> bool:
    """True when ``value`` may stand where ``default`` does (ints count as floats; dicts map names to numbers)."""
    if isinstance(default, float):
        return _is_number(value)
    if isinstance(default, dict):
        return isinstance(value, dict) and all(_is_number(v) or v is None for v in value.values())
    return type(value) is type(default)


def _optimizer_state(payload: dict[str, Any], tensors: dict[str, torch.Tensor], source: str) -> dict[str, Any] | None:
    if payload.get("optimizer") is None:
        return None
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            _, index, name = (key.split("/", 2) + ["", ""])[:3]
            if not index.isdecimal() or not name:
                raise CheckpointError(f"{source}: tensor {key!r} is not named optimizer/<index>/<state>; {DAMAGED}")
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


def _from_payload(payload: dict[str, Any], tensors: dict[str, torch.Tensor], source: str = "") -> Checkpoint:
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
        optimizer_state=_optimizer_state(payload, tensors, source or "checkpoint"),
        torch_rng_state=rng["torch"],
        cuda_rng_state=rng["cuda"],
        run_state=payload.get("run_state") or {},
        source=source,
    )


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(int(n)) for n in shape) + ")"


def _check_weights(where: str, name: str, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    """CheckpointError naming the first stored weight that is missing, unexpected or of the wrong shape."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    wrong = [key for key in expected if key in found and tuple(found[key].shape) != tuple(expected[key].shape)]
    hint = "the weights belong to another network or the file is damaged: train again or use another checkpoint"
    if wrong:
        key = wrong[0]
        raise CheckpointError(f"{where}: weight model/{key} has shape {_shape(found[key].shape)} but the network "
                              f"{name!r} of model_config needs {_shape(expected[key].shape)}"
                              f"{f' ({len(wrong) - 1} more mismatches)' if len(wrong) > 1 else ''}; {hint}")
    for keys, what in ((missing, "is missing"), (unexpected, "is not a weight of")):
        if keys:
            more = f" ({len(keys) - 1} more)" if len(keys) > 1 else ""
            target = f"the network {name!r}" if what == "is not a weight of" else f"(the network {name!r} needs it)"
            raise CheckpointError(f"{where}: weight model/{keys[0]} {what} {target}{more}; {hint}")


def _check_head(where: str, head: int, num_classes: Any) -> None:
    """CheckpointError unless a head of ``head`` output channels can give ``num_classes`` classes."""
    fits = num_classes == 2 if head == 1 else num_classes == head
    if not fits:
        expected = "2 (a 1-channel head is binary)" if head == 1 else f"{head} (one per output channel)"
        raise CheckpointError(f"{where}: num_classes is {num_classes} but the network's head has {head} output "
                              f"channel(s), so num_classes must be {expected}; {DAMAGED}")


def _skeleton(ckpt: Checkpoint) -> tuple[str, torch.nn.Module]:
    """``(name, network)`` of ``ckpt.model_config``, built on the meta device (no memory, no weights)."""
    from .models import create_model

    where = ckpt.source or "checkpoint"
    config = dict(ckpt.model_config)
    name = config.pop("name", None)
    if not isinstance(name, str):
        raise CheckpointError(f"{where}: model_config needs a 'name' string (the network), got {_shown(name)}; "
                              f"{DAMAGED}")
    try:
        with torch.device("meta"):
            return name, create_model(name, **config)
    except RegistryError as err:
        raise CheckpointError(f"{where}: model_config names a network this version cannot build ({err}); use the "
                              "unetseg version that wrote the checkpoint, or another checkpoint") from err
    except (ValueError, TypeError, RuntimeError, ArithmeticError) as err:
        raise CheckpointError(f"{where}: the network {name!r} cannot be built with the options of model_config "
                              f"{_shown(config, 200)} ({err}); {DAMAGED}") from err


def check_model(ckpt: Checkpoint) -> None:
    """Check, without allocating the network, that ``ckpt.model_config`` builds a registered network, that
    ``ckpt.model_state`` holds exactly its weights with their shapes, and that its head fits ``ckpt.num_classes``
    (a 1-channel head is binary: 2 classes; a K-channel head, K > 1: K classes).

    Raises:
        CheckpointError: naming the file (:attr:`Checkpoint.source`), the option or the first mismatching weight.
    """
    where = ckpt.source or "checkpoint"
    name, skeleton = _skeleton(ckpt)
    _check_weights(where, name, skeleton.state_dict(), ckpt.model_state)
    _check_head(where, int(getattr(skeleton, "num_classes", ckpt.num_classes)), ckpt.num_classes)


def build_model(ckpt: Checkpoint) -> torch.nn.Module:
    """Rebuild the network recorded in ``ckpt`` with its weights, in evaluation mode.

    Raises:
        CheckpointError: an unknown network or options, weights that do not fit it, or classes that do not fit its
            head (:func:`check_model`); the message names the file.
    """
    from .models import create_model

    check_model(ckpt)
    config = dict(ckpt.model_config)
    model = create_model(config.pop("name"), **config)
    model.load_state_dict(ckpt.model_state)
    return model.eval()
