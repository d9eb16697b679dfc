"""The process's place in a launch of several processes (``torchrun``): its rank and the number of processes, and
the few collective operations the rest of the package needs to keep the processes in agreement.

Read from :mod:`torch.distributed` once a process group is initialised, else from the variables ``torchrun`` sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a process started alone is rank 0 of 1. Every collective function
below is the identity (and costs nothing) unless a process group of more than one process is initialised; when
one is, every process of the group must call it, in the same order.
"""

from __future__ import annotations

import json
import os
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

Number = TypeVar("Number", bool, int, float)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (``(0, 1)`` for a process started alone)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; 0 for a process started alone)."""
    return _env_int("LOCAL_RANK", 0)


def launched() -> bool:
    """True in a process that ``torchrun`` (or another launcher setting ``WORLD_SIZE``) started."""
    return "WORLD_SIZE" in os.environ


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected an integer, as torchrun sets it") from None


def collective() -> bool:
    """True when a process group of more than one process is initialised (the collectives below communicate)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _device() -> torch.device:
    """Where the group's tensors live: the current GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def from_rank_zero(value: Number) -> Number:
    """Rank 0's ``value`` (a bool, int or float, NumPy's too) in every process, as a Python bool, int or float: a
    decision made once, on rank 0's clock.

    Example:
        >>> from_rank_zero(0.25)  # a process started alone keeps its own value
        0.25
    """
    if not collective():
        return value
    kind = bool if isinstance(value, (bool, np.bool_)) else int if isinstance(value, (int, np.integer)) else float
    tensor = torch.tensor([kind(value)], dtype=torch.float64 if kind is float else torch.int64, device=_device())
    dist.broadcast(tensor, src=0)
    return kind(tensor.item())  # type: ignore[return-value]


def json_from_rank_zero(value: Any) -> Any:
    """Rank 0's ``value`` (anything JSON can hold: strings, numbers, lists, dicts) in every process, sent as JSON
    text (never pickled); other processes' own values are not used.

    Example:
        >>> json_from_rank_zero({"epochs": 3})
        {'epochs': 3}
    """
    if not collective():
        return value
    data = json.dumps(value).encode() if dist.get_rank() == 0 else b""
    size = from_rank_zero(len(data))
    buffer = torch.zeros(size, dtype=torch.uint8, device=_device())
    if dist.get_rank() == 0:
        buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    dist.broadcast(buffer, src=0)
    return json.loads(bytes(buffer.cpu().numpy()).decode())


def sum_over_processes(values: np.ndarray) -> np.ndarray:
    """The element-wise sum of ``values`` (an int64 or float64 array of the same shape in every process) over the
    processes.

    Example:
        >>> sum_over_processes(np.array([1.5, 2.0])).tolist()
        [1.5, 2.0]
    """
    if not collective():
        return values
    tensor = torch.from_numpy(np.ascontiguousarray(values)).to(_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def mean_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` (detached; the same shape in every process) over the processes: a new tensor when
    several processes take part, ``tensor`` itself otherwise."""
    if not collective():
        return tensor
    mean = tensor.detach().clone()
    dist.all_reduce(mean, op=dist.ReduceOp.SUM)
    return mean / dist.get_world_size()
