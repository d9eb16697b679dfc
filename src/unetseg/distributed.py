"""The process's place in a launch of several processes (``torchrun``): its rank and the number of processes.

Read from :mod:`torch.distributed` once a process group is initialised, else from the variables ``torchrun`` sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a process started alone is rank 0 of 1.
"""

from __future__ import annotations

import os

import torch.distributed as dist


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
