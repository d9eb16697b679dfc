"""How much memory predicting an image takes, and the memory budget that decides when an image is predicted block by
block instead of whole.

The estimate is measured, not derived: the peak resident memory of ``unetseg predict`` on whole images of
1024^2 to 4096^2 pixels grows linearly with the pixels, by about ``element bytes x ACTIVATION_FACTOR x widest``
per pixel plus a few bytes per channel and class, where *widest* is the largest activation of the network in
elements per input pixel (64 for ``unet_bn`` at base 32: the concatenation of the last decoder level) and the element
bytes are 2 under bfloat16 autocast and 4 in float32 (docs/benchmarks.md, "Prediction at scale"). Measured against
the estimate: ``unet_bn`` base 32 with instance norm in bfloat16 needs 533-550 bytes per pixel (estimated 505),
with batch norm 427 (505); base 8 113-133 (159); in float32 base 32 962 (966) and base 8 300 (274). The budget
applies to the estimate.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..data.errors import DataError
from ..data.io import TIFF_SUFFIXES
from ..data.ome import is_zarr, open_zarr
from ..data.tiff import tiff_layout
from ..models.base import SegmentationModel
from .bigimage import region_read_problem
from .predictor import Predictor

log = logging.getLogger("unetseg")

#: bytes of the network's activations per input pixel, per element of its widest activation (fitted to the
#: measurements above)
ACTIVATION_FACTOR = 3.6
#: bytes per pixel and input channel (the image as read, normalised to float32) and per class (logits,
#: probabilities, their float32 copy) besides the network, and per pixel for the labels and the class argmax
PER_CHANNEL_BYTES, PER_CLASS_BYTES, PER_PIXEL_BYTES = 4, 12, 16
#: bytes per pixel of the outputs made from the whole image: an overlay (float32 RGB), instance labels (distance
#: transform, watershed), a float16 probability copy per class
OVERLAY_BYTES, INSTANCE_BYTES, PROBABILITY_BYTES = 40, 40, 2
#: the default budget: DEFAULT_BUDGET, or this fraction of the machine's memory (or of the container's limit) when
#: that is less. 2 GiB is about what the default network (unet_bn base 32, instance norm, bfloat16) needs to predict
#: a 2048 x 2048 image whole (estimated: 1.97 GiB; measured: 2.2 GiB beyond the program's own 0.4 GiB); larger
#: images gain nothing from whole-image prediction but memory. A fixed number keeps the choice, and so the labels,
#: the same on every machine with 8 GiB or more.
DEFAULT_BUDGET, DEFAULT_FRACTION = 2 * 2**30, 0.25
#: the share of the machine's memory the workers of a local Dask cluster may fill together
CLUSTER_FRACTION = 0.5
#: block side chosen when an image is predicted block by block without --block; blocks are multiples of BLOCK_STEP
DEFAULT_BLOCK, BLOCK_STEP = 2048, 256
#: side of the input used to measure the widest activation of a network
PROBE_SIDE = 64
UNITS = {"": 2**20, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
         "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}
SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_memory(text: str | int | float) -> int:
    """Bytes of a memory size: ``"800MiB"``, ``"4GiB"``, ``"1.5G"`` (G, M, K: binary units, as GiB, MiB, KiB;
    GB, MB, kB: decimal), or a plain number of MiB (``"512"``, ``512``).

    Raises:
        ValueError: not a positive size with a known unit (the message shows the accepted forms).
    """
    match = SIZE_PATTERN.match(str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in UNITS or float(match.group(1)) <= 0:
        raise ValueError(f"memory size {text!r}: expected a positive number with a unit, e.g. 4GiB, 800MiB or 1.5G "
                         "(a plain number is MiB)")
    return int(float(match.group(1)) * UNITS[unit])


def format_memory(size: float) -> str:
    """``size`` bytes as text in MiB or GiB, e.g. ``"1.5 GiB"``."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def machine_memory() -> int | None:
    """The memory of this machine in bytes, or of its container when a cgroup limit is lower; None if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        total = None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = int(Path(limit_file).read_text().strip())
        except (OSError, ValueError):  # no cgroup file, or "max"
            continue
        total = limit if total is None else min(total, limit)
    return total


def default_budget() -> int:
    """The memory budget when none is given: :data:`DEFAULT_BUDGET`, or :data:`DEFAULT_FRACTION` of
    :func:`machine_memory` when that is less."""
    total = machine_memory()
    return min(DEFAULT_BUDGET, int(total * DEFAULT_FRACTION)) if total else DEFAULT_BUDGET


def resolve_budget(budget: str | int | float | None) -> int:
    """Bytes of ``budget`` (:func:`parse_memory`), or :func:`default_budget` for None."""
    return default_budget() if budget is None else parse_memory(budget)


def widest_activation(model: SegmentationModel) -> float:
    """The largest tensor going into or out of any layer of ``model``, in elements per input pixel (channels for
    a layer at full resolution), measured on a :data:`PROBE_SIDE` input."""
    side = model.input_size_for(PROBE_SIDE)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    widest = [0.0]

    def record(module: torch.nn.Module, inputs: tuple, output: object) -> None:
        for tensor in (*inputs, output):
            if isinstance(tensor, torch.Tensor):
                widest[0] = max(widest[0], tensor.numel() / (side * side))

    hooks = [module.register_forward_hook(record) for module in model.modules()]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, model.in_channels, side, side, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return widest[0]


@dataclass(frozen=True)
class PredictionCost:
    """Estimated peak memory of predicting an image: ``per_pixel`` bytes for each pixel of the image plus
    ``constant`` bytes (the tiles in flight when predicting in tiles)."""

    per_pixel: float
    constant: float = 0.0

    def bytes(self, height: int, width: int) -> float:
        """The estimate for an image of ``height`` x ``width`` pixels."""
        return self.per_pixel * height * width + self.constant

    def with_outputs(self, overlays: bool = False, instances: bool = False, probabilities: int = 0
                     ) -> PredictionCost:
        """The cost with the outputs made from the whole image added (``probabilities``: the number of classes
        written, 0 for none)."""
        extra = OVERLAY_BYTES * overlays + INSTANCE_BYTES * instances + PROBABILITY_BYTES * probabilities
        return PredictionCost(self.per_pixel + extra, self.constant)


def prediction_cost(model: SegmentationModel, precision: str, num_classes: int, channels: int,
                    tile: int | None = None, batch_size: int = 1, tta: str = "none",
                    widest: float | None = None) -> PredictionCost:
    """The :class:`PredictionCost` of predicting an image with ``channels`` channels with ``model``.

    Args:
        model: the network (its widest activation is measured: :func:`widest_activation`).
        precision: ``"bf16"`` (2-byte activations) or ``"fp32"``.
        num_classes: classes of the output.
        channels: channels of the image.
        tile, batch_size: tiled prediction (the network's memory is then that of ``batch_size`` tiles); None:
            the whole image in one pass.
        tta: test-time augmentation (anything but ``"none"`` keeps a sum of the probabilities).
        widest: :func:`widest_activation` of ``model``, when known (it is measured otherwise).
    """
    element = 2 if precision == "bf16" else 4
    network = element * ACTIVATION_FACTOR * (widest_activation(model) if widest is None else widest)
    arrays = PER_CHANNEL_BYTES * channels + PER_CLASS_BYTES * num_classes + PER_PIXEL_BYTES
    arrays += 4 * num_classes * (tta != "none")
    if tile is None:
        return PredictionCost(network + arrays)
    window = model.input_size_for(tile)
    return PredictionCost(arrays, network * batch_size * window * window)


def choose_block(cost: PredictionCost, budget: float, halo: int, height: int, width: int) -> int:
    """The block side for block-wise prediction: the largest multiple of :data:`BLOCK_STEP` up to
    :data:`DEFAULT_BLOCK` (and not beyond the image) whose block, with ``halo`` pixels of context on every side,
    fits ``budget``; the smallest (a multiple of :data:`BLOCK_STEP`, at least ``halo``) when none does."""
    smallest = max(BLOCK_STEP, math.ceil(halo / BLOCK_STEP) * BLOCK_STEP)
    largest = max(smallest, min(DEFAULT_BLOCK, math.ceil(max(height, width) / BLOCK_STEP) * BLOCK_STEP))
    for block in range(largest, smallest - 1, -BLOCK_STEP):
        if cost.bytes(block + 2 * halo, block + 2 * halo) <= budget:
            return block
    return smallest


def workers_for_budget(block_bytes: float, budget: float, cpus: int | None = None) -> int:
    """Worker processes of a local Dask cluster: one per core (``cpus``, default this machine's), fewer when
    their blocks (``block_bytes`` each) would not fit ``budget`` together; at least one."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus, int(budget // max(block_bytes, 1))))


def image_geometry(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """(height, width, channels) of the image file (or OME-Zarr folder) ``path``, from its header only; None when
    it cannot be read that way (reading the image names the problem)."""
    path = Path(path)
    try:
        if is_zarr(path):
            axes = open_zarr(path).axes
            return axes.height, axes.width, axes.channels
        if path.suffix.lower() in TIFF_SUFFIXES:
            layout = tiff_layout(path)
            return layout.height, layout.width, layout.channels
        with warnings.catch_warnings():  # a decompression-bomb warning: the size is what is wanted here
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                return image.height, image.width, len(image.getbands())
    except (DataError, OSError, ValueError, Image.DecompressionBombError):
        return None


def region_readable(path: str | os.PathLike) -> bool:
    """Whether ``path`` is of a format block-wise prediction reads by regions: a TIFF or an OME-Zarr image."""
    return Path(path).suffix.lower() in TIFF_SUFFIXES or is_zarr(path)


def budget_text(budget: int, given: bool) -> str:
    """How the budget was set, for the log: e.g. ``"2.0 GiB (the default; set it with --memory-budget)"``."""
    if given:
        return f"{format_memory(budget)} (--memory-budget)"
    whose = "the default" if budget == DEFAULT_BUDGET else "a quarter of this machine's memory"
    return f"{format_memory(budget)} ({whose}; set it with --memory-budget)"


class BlockPlanner:
    """Chooses, image by image, whether ``predict`` predicts it whole or block by block, from its size (read from
    the header) and the :class:`PredictionCost` of the predictor.

    Args:
        predictor: what predicts (its network, precision, tiling and classes set the cost).
        budget: bytes the prediction of one image may use (:func:`resolve_budget`).
        block: the block side the user chose (``--block``): every TIFF and OME-Zarr image is then predicted by
            blocks of it; None: only images whose whole-image prediction exceeds ``budget`` (or, with ``dask``,
            every TIFF and OME-Zarr image), by blocks of :func:`choose_block`.
        halo: context pixels around each block.
        dask: block-wise prediction runs on a Dask cluster.
        whole_outputs: the options asked for that need the whole image (e.g. ``--overlay``).
        verbose: log each choice the budget makes (False: warnings only).
    """

    def __init__(self, predictor: Predictor, budget: int, block: int | None = None, halo: int = 64,
                 dask: bool = False, whole_outputs: Sequence[str] = (), verbose: bool = True) -> None:
        self.predictor, self.budget, self.block, self.halo = predictor, budget, block, halo
        self.dask, self.whole_outputs, self.verbose = dask, list(whole_outputs), verbose
        self._widest: float | None = None

    def cost(self, channels: int = 1) -> PredictionCost:
        """The cost of predicting an image of ``channels`` channels with the outputs asked for (the network is
        measured once)."""
        p = self.predictor
        if self._widest is None:
            self._widest = widest_activation(p.model)
        cost = prediction_cost(p.model, p.precision, p.num_classes, max(channels, p.model.in_channels), p.tile,
                               p.batch_size, p.tta, self._widest)
        wanted = set(self.whole_outputs)
        return cost.with_outputs("--overlay" in wanted, bool(wanted & {"--instances", "--rois"}),
                                 p.num_classes if "--probabilities" in wanted else 0)

    def block_for(self, path: Path) -> int | None:
        """The block side ``path`` is predicted with, None for whole (logged when chosen by the budget).

        Raises:
            DataError: the image needs more than the budget whole, and outputs that need the whole image were
                asked for (naming them and what to do).
        """
        if self.block is not None:
            return self.block if region_readable(path) else None
        geometry = image_geometry(path)
        if geometry is None:
            return None  # reading it names the problem
        height, width, channels = geometry
        cost = self.cost(channels)
        need = cost.bytes(height, width)
        if self.dask and region_readable(path):
            return choose_block(cost, self.budget, self.halo, height, width)
        if need <= self.budget:
            return None
        about = (f"{path}: predicting it whole needs about {format_memory(need)} ({width}x{height} pixels), more "
                 f"than the memory budget of {format_memory(self.budget)}")
        if self.whole_outputs:
            raise DataError(f"{about}, and {', '.join(self.whole_outputs)} need(s) the whole image: leave "
                            f"{'it' if len(self.whole_outputs) == 1 else 'them'} out to predict it block by block "
                            "with bounded memory, or raise --memory-budget (e.g. --memory-budget "
                            f"{math.ceil(need / 2**30)}GiB) if the machine has that much")
        problem = region_read_problem(path, self.budget)
        if problem is not None:
            if self.verbose:
                log.warning("%s; it is predicted whole. %s", about, problem)
            return None
        block = choose_block(cost, self.budget, self.halo, height, width)
        if self.verbose:
            norm = self.predictor.normalization
            own = ("; each block is normalised by its own statistics, as the checkpoint normalises each image"
                   if norm.scope == "image" and norm.mode != "scale" else "")
            log.info("%s: it is read, predicted and written block by block (blocks of %dx%d pixels with %d pixels "
                     "of context, about %s each) into a tiled TIFF%s", about, block, block, self.halo,
                     format_memory(cost.bytes(block + 2 * self.halo, block + 2 * self.halo)), own)
        return block

    def plan(self, files: Sequence[Path]) -> dict[Path, int | None]:
        """:meth:`block_for` of every file."""
        return {path: self.block_for(path) for path in files}

    def workers(self, blocks: Mapping[Path, int | None]) -> int:
        """Worker processes of a local Dask cluster for the ``blocks`` planned (:func:`workers_for_budget` for the
        largest, in :data:`CLUSTER_FRACTION` of the machine's memory)."""
        largest = max((block for block in blocks.values() if block is not None), default=DEFAULT_BLOCK)
        side = largest + 2 * self.halo
        total = machine_memory() or self.budget / CLUSTER_FRACTION
        return workers_for_budget(self.cost().bytes(side, side), total * CLUSTER_FRACTION)
