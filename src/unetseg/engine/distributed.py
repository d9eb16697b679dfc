"""Training on several processes: PyTorch's DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc-per-node N [--nnodes M ...] -m unetseg train ...`` (or a script calling
:func:`unetseg.train` under ``torchrun``) starts one process per device. :func:`distributed_training` joins them
into a process group (gloo on the CPU, NCCL on CUDA with the device ``cuda:LOCAL_RANK``) and leaves it at the end;
the rest of the run agrees through it:

- **the batch**: ``train.batch_size`` counts the patches of one step over all processes (the global batch); each
  process trains ``batch_size / N`` of them (:func:`check_split`), and the recipe records the number of processes
  (:func:`record_processes`).
- **the patches**: rank r draws the patches i with ``i % N == r`` of each epoch (:class:`RankSampler`). A patch is a
  function of the seed, the epoch and its index alone, so an epoch's patches do not depend on N and a run resumed
  on another number of processes continues with the same patches.
- **the weights**: DistributedDataParallel averages the gradients (:class:`ReplicatedNetwork`); on CUDA the batch
  norm layers are synchronised (``SyncBatchNorm``), so their statistics are those of the global batch; on the CPU
  they cannot be (PyTorch synchronises batch norm on GPUs only) and each process normalises its own patches.
- **everything that decides what happens next** (the loss of a step, a time budget's stop and learning rate, the
  number of epochs, a callback's stop) is rank 0's or the same in every process, so the processes never disagree.

Only rank 0 writes the run directory (``config.yaml``, ``recipe.yaml``, checkpoints, ``log.csv``, ``curves.png``,
the prediction settings) and logs; the checkpoints hold the network without its wrapper, exactly what one process
writes. When a process fails, ``torchrun`` stops the others; each says so with the run directory to resume
(:class:`ProcessesStopped`); checkpoints are replaced atomically, so ``last.safetensors`` stays whole.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

from ..checkpoint import CheckpointError, load_checkpoint
from ..config import Config, ConfigError
from ..device import resolve_device
from ..distributed import launched, local_rank, rank_and_world
from .state import LAST

log = logging.getLogger("unetseg")

#: the environment variable giving the process group's timeout in minutes: how long a process waits for the others
#: in one exchange (a stalled process ends the run after it)
TIMEOUT_VARIABLE = "UNETSEG_DIST_TIMEOUT"
#: the timeout without it: long enough for rank 0 to write a large checkpoint while the others wait
DEFAULT_TIMEOUT_MINUTES = 30.0

#: how long a process whose exchange with the others failed waits for torchrun to stop it (SIGTERM) before it ends
#: on its own: torchrun's report names the process that ended first as the cause
STOP_WAIT_SECONDS = 10.0

#: the process groups this process initialised so far (each gets its own keys in the rendezvous store)
_GROUPS = itertools.count()

#: words in the message of an error raised by a failed exchange between the processes
_COMMUNICATION_WORDS = ("gloo", "nccl", "connection closed", "connection reset", "timed out", "broken pipe")


class ProcessesStopped(ConfigError):
    """A process of a distributed run stopped because another one ended (or could not be reached): the message
    names this process, says that ``torchrun``'s report names the one that failed, and gives the run directory to
    resume. A :class:`~unetseg.config.ConfigError`, so the command line reports it in one line: the run is the
    user's to continue (``--resume``)."""


@dataclass
class Processes:
    """This process's place in a run: its rank, the number of processes, the backend of the process group (None
    for a process trained alone) and, once it is known, the run directory (for the messages)."""

    rank: int = 0
    world: int = 1
    backend: str | None = None
    owned: bool = False  # the group was initialised here, so it is destroyed here
    run_dir: Path | None = None

    @property
    def main(self) -> bool:
        """True for rank 0, the process that writes the run directory."""
        return self.rank == 0


def timeout_minutes() -> float:
    """The process group's timeout: ``UNETSEG_DIST_TIMEOUT`` (minutes), else :data:`DEFAULT_TIMEOUT_MINUTES`.

    Raises:
        ConfigError: the variable is not a positive number.
    """
    value = os.environ.get(TIMEOUT_VARIABLE)
    if value is None:
        return DEFAULT_TIMEOUT_MINUTES
    try:
        minutes = float(value)
    except ValueError:
        minutes = math.nan
    if not minutes > 0:
        raise ConfigError(f"environment variable {TIMEOUT_VARIABLE}={value!r}: expected a positive number of "
                          "minutes (the time a process waits for the others)")
    return minutes


def process_device(device: torch.device) -> torch.device:
    """The device of this process: under ``torchrun``, CUDA without an index is ``cuda:LOCAL_RANK`` (one GPU per
    process); any other device is returned as it is."""
    if launched() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank())
    return device


def backend_for(device: torch.device) -> str:
    """The process group's backend for training on ``device``: NCCL on CUDA, gloo on the CPU.

    Raises:
        ConfigError: another kind of device (DistributedDataParallel runs on CPUs and CUDA GPUs).
    """
    if device.type == "cuda":
        return "nccl"
    if device.type == "cpu":
        return "gloo"
    raise ConfigError(f"train.device={device.type!r}: training on several processes (torchrun) runs on the CPU "
                      "(gloo) or on CUDA GPUs (NCCL); use --device cpu or cuda")


def check_split(config: Config, world: int) -> None:
    """ConfigError unless the global batch (``train.batch_size``) and the patches per epoch divide evenly over
    ``world`` processes; the message says which numbers of processes fit."""
    if world <= 1:
        return
    tc = config.train
    for key, value in (("train.batch_size", tc.batch_size), ("train.samples_per_epoch", tc.samples_per_epoch)):
        if value is not None and value % world:
            fits = [n for n in range(1, value + 1) if value % n == 0]
            raise ConfigError(f"{key}={value} counts all processes and cannot be split evenly over the {world} "
                              f"processes torchrun started: run on a number of processes that divides it "
                              f"({', '.join(map(str, fits))}), or set --{key.split('.')[1].replace('_', '-')} to a "
                              f"multiple of {world}")


def record_processes(recipe: dict[str, Any], batch_size: int, world: int) -> dict[str, Any]:
    """``recipe`` with ``train.processes`` set to ``world`` (and the split of the batch) when the run trains on
    several processes; a run continued by one process drops it. A new dictionary; the given one is not changed."""
    recipe = {key: value for key, value in recipe.items() if key != "train.processes"}
    if world > 1:
        recipe["train.processes"] = {
            "value": world, "reason": f"torchrun started {world} processes; each trains {batch_size // world} of the "
                                     f"{batch_size} patches of a step (train.batch_size counts all processes)"}
    return recipe


class RankSampler(Sampler[int]):
    """The patches of one process: the indices ``i`` of ``dataset`` with ``i % world == rank``, in order.

    Consecutive batches of ``b`` of them, taken together over the ranks, are the consecutive batches of ``b *
    world`` patches that one process would train on. The length is read from ``dataset`` when iterated, so a
    change of the patches per epoch is followed.

    Example:
        >>> list(RankSampler(range(8), rank=1, world=2))
        [1, 3, 5, 7]
    """

    def __init__(self, dataset: Any, rank: int, world: int) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in [0, {world})")
        self.dataset, self.rank, self.world = dataset, rank, world

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.world))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.world))


def synchronise_batch_norm(model: nn.Module) -> int:
    """Replace every ``nn.BatchNorm2d`` of ``model`` (that class exactly: subclasses with behaviour of their own
    are kept) by a ``SyncBatchNorm`` with the same parameters and statistics; returns how many."""
    count = 0
    for name, child in list(model.named_children()):
        if type(child) is nn.BatchNorm2d:
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
            count += 1
        else:
            count += synchronise_batch_norm(child)
    return count


class ReplicatedNetwork:
    """The network as the processes train it: wrapped in DistributedDataParallel when a process group is
    initialised, else the network itself.

    The wrapper covers the parameters that train when it is built, so it is built again when that set changes
    (a frozen encoder released). The checkpoints, validation and prediction use ``model`` itself.

    Args:
        model: the network (already on ``device``); on CUDA with several processes its batch-norm layers are
            synchronised in place (:func:`synchronise_batch_norm`).
        device: its device.
    """

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device
        self._trainable: tuple[bool, ...] | None = None
        self._wrapped: nn.Module | None = None
        _, world = rank_and_world()
        self.distributed = dist.is_available() and dist.is_initialized()
        if self.distributed and world > 1:
            _note_batch_norm(model, device, world)

    def current(self) -> nn.Module:
        """The module to train now (every process must call this at the same point: building the wrapper
        broadcasts rank 0's weights)."""
        if not self.distributed:
            return self.model
        trainable = tuple(p.requires_grad for p in self.model.parameters())
        if trainable != self._trainable:
            self._wrapped = None  # the old wrapper's hooks go with it
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._wrapped = DistributedDataParallel(self.model, device_ids=ids)
            self._trainable = trainable
        assert self._wrapped is not None
        return self._wrapped


def _note_batch_norm(model: nn.Module, device: torch.device, world: int) -> None:
    """Synchronise the batch norm of ``model`` on CUDA; on the CPU say that it stays per process."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    if device.type == "cuda":
        log.info("distributed: %d batch-norm layers synchronised over the %d processes (SyncBatchNorm)",
                 synchronise_batch_norm(model), world)
    else:
        log.info("distributed: batch norm is not synchronised on the CPU (PyTorch does so on GPUs only): each of the "
                 "%d processes normalises its own share of the batch", world)


@contextlib.contextmanager
def distributed_training(device_name: str) -> Iterator[Processes]:
    """Join the processes ``torchrun`` started for training on ``device_name`` (``train.device``) while the
    ``with`` block runs; a process started alone gets ``Processes()`` and nothing else happens.

    Under ``torchrun`` (``WORLD_SIZE`` set), a process group is initialised unless one already is (gloo on the CPU,
    NCCL on CUDA: :func:`backend_for`; timeout :func:`timeout_minutes`), the CUDA device is ``LOCAL_RANK``, ranks
    other than 0 log only warnings and errors, and SIGTERM (what ``torchrun`` sends the others when a process
    fails) raises :class:`ProcessesStopped`, as does an exchange that failed because another process ended; a
    process whose own error ends the run logs which rank it is and where the run can be resumed. The group is
    destroyed at the end when it was initialised here. Set ``processes.run_dir`` when it is known: the messages
    name it.

    Raises:
        ConfigError: a device that cannot train on several processes, a bad ``UNETSEG_DIST_TIMEOUT``.
        ProcessesStopped: another process ended while this one was training.
    """
    if not launched() and not (dist.is_available() and dist.is_initialized()):
        yield Processes()
        return
    quiet, level = logging.getLogger("unetseg"), logging.getLogger("unetseg").level
    if rank_and_world()[0] != 0:
        quiet.setLevel(logging.WARNING)
    try:
        processes = _join(device_name)
    except BaseException:
        quiet.setLevel(level)
        raise
    previous = _on_sigterm(processes)
    try:
        yield processes
    except Exception as err:
        stopped = _ended(processes, err)
        if stopped is None:
            raise
        raise stopped from err
    finally:
        _leave(processes)  # after an error too: the others learn of it when the group closes
        quiet.setLevel(level)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _ended(processes: Processes, err: Exception) -> ProcessesStopped | None:
    """What a process does when ``err`` ends its part of the run: an exchange with the others that failed gives a
    :class:`ProcessesStopped` to raise, after a wait for torchrun to stop this process (so that torchrun's report
    names the process that failed first, not this one); its own error is logged with its rank and the run to
    resume (None: ``err`` is raised as it is)."""
    if isinstance(err, ProcessesStopped):
        return None
    if _communication_failed(err):
        _leave(processes)
        if launched():
            time.sleep(STOP_WAIT_SECONDS)  # SIGTERM raises ProcessesStopped here
        return ProcessesStopped(stopped_message(processes, f"an exchange between them failed: {err}"))
    if processes.world > 1 and processes.run_dir is not None:
        log.error("process rank %d of %d failed (%s: %s); torchrun stops the other processes. %s", processes.rank,
                  processes.world, type(err).__name__, err, resume_hint(processes.run_dir, processes.main))
    return None


def _join(device_name: str) -> Processes:
    """Initialise the process group (unless one is) for ``device_name``; this process's :class:`Processes`."""
    try:
        device = process_device(resolve_device(device_name))
    except ValueError as err:
        raise ConfigError(f"train.device: {err}") from None
    owned = not dist.is_initialized()
    if owned:
        backend = backend_for(device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        _init_group(backend, datetime.timedelta(minutes=timeout_minutes()))
    rank, world = rank_and_world()
    processes = Processes(rank, world, dist.get_backend(), owned)
    log.info("distributed: %d process(es), backend %s (rank 0 on %s)", world, processes.backend, device)
    return processes


def _init_group(backend: str, timeout: datetime.timedelta) -> None:
    """Initialise the default process group from torchrun's variables, under a key prefix of its own in the
    rendezvous store: a group initialised again in the same process (a second run) would otherwise read the keys
    the first one left and wait for peers that are gone. Every process counts its groups alike."""
    store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
    store = dist.PrefixStore(f"unetseg/{next(_GROUPS)}", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)


def _leave(processes: Processes) -> None:
    """Destroy the process group if it was initialised here (a process that exits with the group alive can be
    aborted by the backend's threads)."""
    if processes.owned and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def _on_sigterm(processes: Processes) -> Any:
    """Make SIGTERM raise :class:`ProcessesStopped` (in the main thread); the previous handler, or None."""
    def stop(number: int, frame: Any) -> None:
        raise ProcessesStopped(stopped_message(processes, "torchrun stopped it"))
    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        return None


def _communication_failed(err: BaseException) -> bool:
    """True for an error of an exchange between the processes (a peer gone, a timeout)."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(word in text for word in _COMMUNICATION_WORDS)


def stopped_message(processes: Processes, why: str) -> str:
    """The message of :class:`ProcessesStopped` for this process: which one stopped, why, and how to resume."""
    hint = resume_hint(processes.run_dir, processes.main) if processes.run_dir is not None else \
        "it stopped before the run directory was made, so there is nothing to resume"
    return (f"process rank {processes.rank} of {processes.world} stopped because another process of the run ended "
            f"or could not be reached ({why}); torchrun's report names the process that failed first. {hint}")


def resume_hint(run_dir: Path, writer: bool = True) -> str:
    """Where a stopped run keeps its last checkpoint and the command that continues it; ``writer``: said by rank 0,
    which writes the checkpoints and so knows the epoch of the last one (another process may read the file while
    rank 0 replaces it)."""
    last = run_dir / LAST
    resume = (f"continue with `unetseg train --resume {run_dir}` under torchrun on any number of processes that "
              "divides train.batch_size, or as one process")
    if not writer:
        return f"{last} holds the last epoch rank 0 finished (checkpoints are replaced whole): {resume}"
    try:
        epoch = load_checkpoint(last).epoch
    except CheckpointError:
        return f"{run_dir} holds no readable {LAST} (no epoch ended): start the run again (the folder is reused)"
    return (f"{last} holds the last finished epoch ({epoch}; checkpoints are replaced whole, never half-written): "
            f"{resume}")
