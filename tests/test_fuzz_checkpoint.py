"""Property-based fuzzing of checkpoint reading: whatever is wrong with a file, ``load_checkpoint`` and
``build_model`` either work or raise CheckpointError naming the file, never another exception."""

from __future__ import annotations

import atexit
import json
import math
import shutil
import struct
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from unetseg.checkpoint import (Checkpoint, CheckpointError, PredictionSettings, build_model, load_checkpoint,
                                save_checkpoint)
from unetseg.models import create_model, list_models

FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
WORKDIR = Path(tempfile.mkdtemp(prefix="unetseg-fuzz-"))
atexit.register(shutil.rmtree, WORKDIR, True)


@lru_cache(maxsize=None)
def valid_file() -> tuple[bytes, dict[str, str], dict[str, torch.Tensor]]:
    """A complete checkpoint (optimizer state, prediction settings, run record): its bytes, metadata, tensors."""
    torch.manual_seed(0)
    model = create_model("unet_bn", base_channels=4, depth=2, num_classes=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(1, 1, 16, 16)).mean().backward()
    opt.step()
    ckpt = Checkpoint(model_config=model.config, num_classes=2, class_names=["bg", "fg"],
                      normalization={"mode": "percentile", "low": 1.0, "high": 99.8}, run_config={"train": {}},
                      epoch=3, history=[{"epoch": 1, "train_loss": 0.5}], best_score=0.25,
                      recipe={"lr": {"value": 0.01, "reason": "default"}},
                      prediction=PredictionSettings(tta="flips", min_size=4, scores={"none": 0.5}),
                      model_state=model.state_dict(), optimizer_state=opt.state_dict(),
                      torch_rng_state=torch.get_rng_state(), run_state={"epochs": 5})
    path = WORKDIR / "valid.safetensors"
    save_checkpoint(path, ckpt)
    with safe_open(str(path), framework="pt") as f:
        return path.read_bytes(), dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}


def payload_paths() -> list[tuple[Any, ...]]:
    """Every key of the valid payload down to two levels (the first item of a list stands for the list)."""
    payload = json.loads(valid_file()[1]["payload"])
    paths: list[tuple[Any, ...]] = []
    for key, value in payload.items():
        paths.append((key,))
        children = value.items() if isinstance(value, dict) else enumerate(value[:1]) if isinstance(value, list) else ()
        paths += [(key, child) for child, _ in children]
    return paths


def holds_without_error(path: Path) -> None:
    """The property: reading and building either work or raise CheckpointError naming ``path``."""
    try:
        model = build_model(load_checkpoint(path))
    except CheckpointError as err:
        assert str(err).startswith(f"{path}: "), str(err)
    else:
        assert isinstance(model, torch.nn.Module)


def write(name: str, metadata: dict[str, str] | None = None, data: bytes | None = None) -> Path:
    """A checkpoint file of the valid tensors with ``metadata``, or of the raw bytes ``data``."""
    path = WORKDIR / name
    if data is not None:
        path.write_bytes(data)
    else:
        save_file(valid_file()[2], str(path), metadata=metadata)
    return path


SCALARS = (st.none() | st.booleans() | st.integers(-3, 70) | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(list_models()))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
EDITS = st.lists(st.tuples(st.sampled_from(payload_paths()), st.sampled_from(["delete", "replace"]), VALUES),
                 min_size=1, max_size=3)


def edited(payload: Any, path: tuple[Any, ...], action: str, value: Any) -> None:
    """Delete or replace the entry at ``path`` of ``payload`` (nothing when an earlier edit removed its parent)."""
    *parents, last = path
    for key in parents:
        if not isinstance(payload, (dict, list)) or (isinstance(payload, dict) and key not in payload) or (
                isinstance(payload, list) and not (isinstance(key, int) and key < len(payload))):
            return
        payload = payload[key]
    if isinstance(payload, dict) and (last in payload or action == "replace"):
        if action == "delete":
            del payload[last]
        else:
            payload[last] = value
    elif isinstance(payload, list) and isinstance(last, int) and last < len(payload):
        payload[last:last + 1] = [] if action == "delete" else [value]


@FUZZ
@given(EDITS)
def test_edited_payloads_give_only_checkpoint_errors(edits):
    metadata = dict(valid_file()[1])
    payload = json.loads(metadata["payload"])
    for path, action, value in edits:
        edited(payload, path, action, value)
    metadata["payload"] = json.dumps(payload, allow_nan=True)
    holds_without_error(write("edited.safetensors", metadata))


@FUZZ
@given(st.text(max_size=60) | VALUES.map(json.dumps), st.sampled_from(["payload", "version", "format"]))
def test_random_metadata_strings_give_only_checkpoint_errors(text, key):
    metadata = dict(valid_file()[1])
    metadata[key] = text
    holds_without_error(write("strings.safetensors", metadata))


@FUZZ
@given(st.floats(0, 1, exclude_max=True))
def test_truncated_files_give_only_checkpoint_errors(fraction):
    data = valid_file()[0]
    holds_without_error(write("truncated.safetensors", data=data[: math.floor(len(data) * fraction)]))


@FUZZ
@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4))
def test_flipped_header_bytes_give_only_checkpoint_errors(flips):
    data = bytearray(valid_file()[0])
    header_end = 8 + struct.unpack("<Q", bytes(data[:8]))[0]  # length, then the JSON header with the metadata
    for where, mask in flips:
        data[math.floor(where * header_end)] ^= mask
    holds_without_error(write("flipped.safetensors", data=bytes(data)))


def test_the_unedited_file_loads_and_builds():
    """The fuzzed file is a good one: the properties above start from a checkpoint that works."""
    path = write("plain.safetensors", dict(valid_file()[1]))
    model = build_model(load_checkpoint(path))
    assert model.num_classes == 1 and load_checkpoint(path).prediction.tta == "flips"
