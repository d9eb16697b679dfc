"""GPU measurement of the default recipe's network in one command: training throughput, prediction latency and
throughput, model FLOP utilisation, peak memory, and optionally a time-budgeted DSB2018 96x96 training with its score.

Rows (each written to ``--out`` as soon as it is measured, so a run stopped by a time limit keeps what it had):

* training steps of ``unet_bn`` (``base_channels=32``, ``norm`` batch and instance) on 512x512 patches, batch 3
  and 12 (the recipe's GPU rule is 12 x 256^2 pixels per step: 3 patches of 512^2, where it picks instance norm;
  batch 12 is where it picks batch norm), bfloat16 autocast, channels-last, AdamW, loss ``bce_dice`` on one sigmoid
  channel, eager and ``torch.compile`` (compile seconds = first call); also the same step through the engine's
  ``train_steps`` (host-to-device copies and its finiteness checks included), one row without cuDNN autotuning
  (the training engine does not switch it on) and, while the network's up-convolution is ``UpConv2x2`` (a 1x1
  convolution and a pixel shuffle), one training and one forward row with the ``nn.ConvTranspose2d`` it replaced;
* prediction of 512x512 images through ``unetseg.Predictor`` as users run it (``tta="none"``: normalisation on
  the CPU, copy, forward, probabilities back): latency of one image and ms per image over 32 images;
* the raw forward pass (batch norm folded, bfloat16, channels-last, eager and compiled) at batch 1 and 32.

Each row gives ms per step or image, images/s, pixels/s, the convolution and matrix FLOPs (counted with
``torch.utils.flop_counter.FlopCounterMode``: forward + backward for training) per second, and the model FLOP
utilisation (MFU) against the GPU's dense bfloat16 peak from a table by device name (H100 SXM and H200 989,
H100 PCIe 756 TFLOP/s) and against a measured peak (median 8192^3 bfloat16 ``torch.mm``); peak memory is
``torch.cuda.max_memory_allocated`` of the row; ``layouts`` says whether the pixel shuffle and the concatenation
keep channels-last memory on the device. Timings: warm-up calls first, then the median over blocks of
consecutive calls timed with CUDA events (wall clock with a synchronisation for Predictor rows). The recipe's
optimizer is Adam; AdamW costs the same per step.

The quality row runs ``bench/quality.py dsb96 --time-budget N`` as a subprocess on the same device and reads its
scores. The DSB2018 data is not on the GPU machine: copy it into an ignored folder inside the repository (for
example ``bench_runs/gpu_bundle/``) and send that folder along with the working tree. The full dataset is 75 MB;
``--prepare-dsb96 DEST`` writes the 96x96 images and masks the dsb96 protocol trains on (about 5 MB; quality.py's
resizing leaves them unchanged, so the run is the same as from the full data). ``bash bench/gpu.sh prepare`` does
this and downloads the Python packages the GPU machine lacks.

The published dsb96 protocol trains for 15 minutes. That does not fit one GPU command (10 minutes) nor one
session's device time (15 minutes, machine start included), so ``bench/gpu.sh`` runs a shortened budget
(``--quality-minutes``, 2 by default there): the summary flags it (``shortened_from_minutes: 15``) and its score
is a lower bound, not comparable with the 15-minute CPU result in docs/benchmarks.md. A 15-minute run needs a
session with more than about 17 minutes of device time and its own command (``--quality-minutes 15`` and nothing
else measured).

    bash bench/gpu.sh prepare                             # here: packages and the 96x96 data
    bash bench/gpu.sh                                     # GPU machine: everything within 9 minutes
    python bench/gpu.py --out DIR --quality-minutes 0     # the speed rows only
    python bench/gpu.py --device cpu --quick --out /tmp/gpu_smoke   # smoke test: 64x64, 1-2 steps, no quality run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
try:
    import unetseg  # noqa: F401  (installed, or on PYTHONPATH)
except ImportError:  # run from a checkout without installing: use its sources, here and in subprocesses
    sys.path.insert(0, str(ROOT / "src"))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))

from unetseg import Predictor  # noqa: E402
from unetseg.compilation import compile_model  # noqa: E402
from unetseg.data.normalize import Normalization  # noqa: E402
from unetseg.engine.loop import train_steps  # noqa: E402
from unetseg.inference.fusion import fold_batch_norm  # noqa: E402
from unetseg.losses import build_loss  # noqa: E402
from unetseg.models import create_model  # noqa: E402
from unetseg.optim.optimizers import build_optimizer  # noqa: E402
from unetseg.precision import autocast, resolve_precision  # noqa: E402

#: dense (no sparsity) bfloat16 tensor-core peaks in TFLOP/s, by a lower-case part of the device name; first match
DENSE_BF16_PEAKS: tuple[tuple[str, float], ...] = (
    ("h100 pcie", 756.0), ("h100 nvl", 835.0), ("h200 nvl", 835.0), ("h200", 989.0), ("h100", 989.0),
    ("a100", 312.0), ("l40s", 362.0),
)
QUALITY_PROTOCOL_MINUTES = 15.0
QUALITY_OVERHEAD_S = 75.0  # start, data, scoring of a quality.py run beyond its training budget
GIB = 1024**3


@dataclass
class Settings:
    """What every row runs with (from the command line)."""

    device: torch.device
    precision: str
    size: int
    warmup: int
    steps: int
    repeats: int
    images: int  # images of the Predictor / forward throughput rows
    compile_backend: str
    peak_table: float | None  # TFLOP/s
    peak_measured: float | None  # TFLOP/s


@dataclass
class Budget:
    """Seconds left for the measurement; rows that would not fit are skipped, not started."""

    seconds: float | None
    started: float = field(default_factory=time.monotonic)
    reserved: float = 0.0  # kept for a later row (the quality run)
    observed: dict[str, float] = field(default_factory=dict)  # seconds a row of each kind took, once measured

    def left(self) -> float:
        """Seconds left (infinite without a budget)."""
        return math.inf if self.seconds is None else self.seconds - (time.monotonic() - self.started)

    def allows(self, estimate: float) -> bool:
        """Whether a row of ``estimate`` seconds fits beside the reserved time."""
        return self.left() - self.reserved >= estimate


@dataclass
class Report:
    """The summary, written to ``out/gpu.json`` and ``out/gpu.md`` after every row."""

    out: Path
    data: dict[str, Any]

    def add(self, section: str, row: dict[str, Any]) -> None:
        """Append ``row`` to ``section``, print it and write the files."""
        self.data.setdefault(section, []).append(row)
        print(json.dumps({section: row}, default=str), flush=True)
        self.save()

    def save(self) -> None:
        """Write ``gpu.json`` and ``gpu.md``."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu.json").write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        (self.out / "gpu.md").write_text(markdown(self.data))


def synchronize(device: torch.device) -> None:
    """Wait for the queued work of ``device`` (nothing on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_blocks(fn: Callable[[], object], device: torch.device, warmup: int, steps: int, repeats: int,
                wall: bool = False) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` blocks of ``steps`` consecutive calls, after ``warmup``
    calls; CUDA events on a GPU unless ``wall`` (wall clock, synchronised at both ends)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    per_call = []
    for _ in range(repeats):
        if device.type == "cuda" and not wall:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                fn()
            end.record()
            end.synchronize()
            per_call.append(start.elapsed_time(end) / 1000 / steps)
        else:
            started = time.perf_counter()
            for _ in range(steps):
                fn()
            synchronize(device)
            per_call.append((time.perf_counter() - started) / steps)
    return float(np.median(per_call))


def first_call_seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call of ``fn`` (with ``torch.compile``: tracing and compiling included)."""
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


def reset_memory(device: torch.device) -> None:
    """Free cached blocks and restart the peak-memory counter."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    """``torch.cuda.max_memory_allocated`` in GiB since :func:`reset_memory` (None on the CPU)."""
    return round(torch.cuda.max_memory_allocated(device) / GIB, 3) if device.type == "cuda" else None


def table_peak(name: str) -> float | None:
    """The dense bfloat16 peak (TFLOP/s) of a device name from :data:`DENSE_BF16_PEAKS`, or None."""
    lower = name.lower()
    return next((peak for key, peak in DENSE_BF16_PEAKS if key in lower), None)


def matmul_peak(device: torch.device, n: int, repeats: int) -> float:
    """Measured bfloat16 matrix-product TFLOP/s: median over ``repeats`` ``torch.mm`` of two n x n matrices."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    seconds = time_blocks(lambda: torch.mm(a, b), device, warmup=3, steps=1, repeats=repeats)
    return 2 * n**3 / seconds / 1e12


def up_layer_name() -> str:
    """The class of the network's 2x up-convolution in this version of unetseg."""
    model = create_model("unet_bn", base_channels=2, depth=1)
    return type(model.ups[0].up).__name__


def as_transposed_conv(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every ``UpConv2x2`` (a 1x1 convolution and a pixel shuffle, with the parameters of the 2x2
    stride-2 transposed convolution it equals) turned back into ``nn.ConvTranspose2d``, in place."""
    for module in model.modules():
        if type(module).__name__ == "UpConv2x2":
            module.__class__ = torch.nn.ConvTranspose2d
    return model


def make_model(norm: str, device: torch.device, transposed: bool = False) -> torch.nn.Module:
    """The default recipe's network: ``unet_bn``, 32 base channels, one grey input and one sigmoid output, on
    ``device`` in channels-last memory; with ``transposed`` its up-convolutions as ``nn.ConvTranspose2d``."""
    model = create_model("unet_bn", in_channels=1, num_classes=1, base_channels=32, norm=norm)
    if transposed:
        as_transposed_conv(model)
    return model.to(device).to(memory_format=torch.channels_last)


def throughput(row: dict[str, Any], seconds: float, images: int, flops: float, s: Settings) -> dict[str, Any]:
    """``row`` with ms per step, images/s, megapixels/s, achieved TFLOP/s and the MFU against both peaks, for
    ``images`` images of ``s.size`` squared pixels and ``flops`` counted FLOPs per call taking ``seconds``."""
    tflops = flops / seconds / 1e12
    row.update({
        "ms_per_call": round(seconds * 1e3, 3), "ms_per_image": round(seconds * 1e3 / images, 3),
        "images_per_s": round(images / seconds, 1), "megapixels_per_s": round(images * s.size**2 / seconds / 1e6, 1),
        "tflop_per_call": round(flops / 1e12, 4), "achieved_tflops": round(tflops, 2),
        "mfu_table": round(tflops / s.peak_table, 4) if s.peak_table else None,
        "mfu_measured": round(tflops / s.peak_measured, 4) if s.peak_measured else None,
    })
    return row


_FLOPS: dict[tuple[str, int, int], float] = {}


def counted_flops(kind: str, batch: int, s: Settings) -> float:
    """Convolution and matrix FLOPs of one call (``train``: forward + backward; ``forward``) of the network on a
    batch of ``batch`` images of ``s.size`` squared pixels (counted once per shape in eager mode; the
    normalisation does not change them)."""
    key = (kind, batch, s.size)
    if key not in _FLOPS:
        model = make_model("batch", s.device).train(kind == "train")
        x = torch.randn(batch, 1, s.size, s.size, device=s.device).contiguous(memory_format=torch.channels_last)
        with FlopCounterMode(display=False) as counter:
            if kind == "train":
                with autocast(s.precision, s.device):
                    out = model(x)
                out.float().mean().backward()
            else:
                with torch.inference_mode(), autocast(s.precision, s.device):
                    model(x)
        _FLOPS[key] = float(counter.get_total_flops())
        del model, x
    return _FLOPS[key]


def train_batch(batch: int, s: Settings, pinned: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images (channels-last on the device, or pinned CPU memory when ``pinned``) and binary masks."""
    where = torch.device("cpu") if pinned else s.device
    x = torch.randn(batch, 1, s.size, s.size, device=where)
    y = (torch.rand(batch, s.size, s.size, device=where) > 0.5).long()
    if pinned:
        return (x.pin_memory(), y.pin_memory()) if s.device.type == "cuda" else (x, y)
    return x.contiguous(memory_format=torch.channels_last), y


def engine_seconds(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Any, batch: int,
                   s: Settings) -> float:
    """Seconds per step of the engine's own ``train_steps`` over batches in (pinned) CPU memory, as its data
    loader gives them: copies, autocast, finiteness checks and the weight check at the end included."""
    batches = [train_batch(batch, s, pinned=True) for _ in range(min(s.steps, 4))]

    def epoch() -> None:
        """One engine epoch over the batches."""
        train_steps(model, batches, optimizer, loss_fn, s.device, lambda i: 1e-3, progress=False,
                    precision=s.precision)

    return time_blocks(epoch, s.device, warmup=min(1, s.warmup), steps=1, repeats=s.repeats, wall=True) / len(batches)


def train_row(norm: str, batch: int, compiled: bool, s: Settings, benchmark: bool = True,
              transposed: bool = False) -> dict[str, Any]:
    """One training-step row: ``unet_bn`` with ``norm`` on ``batch`` patches (eager or compiled; ``transposed``:
    up-convolutions as ``nn.ConvTranspose2d``), timed steps of forward under autocast, ``bce_dice`` loss, backward
    and AdamW; the default eager rows also time the engine's loop."""
    torch.backends.cudnn.benchmark = benchmark
    reset_memory(s.device)
    if compiled:
        torch._dynamo.reset()
    model = make_model(norm, s.device, transposed).train()
    optimizer = build_optimizer("adamw", model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = build_loss("bce_dice", 1)
    x, y = train_batch(batch, s)

    def step() -> None:
        """One optimisation step as the engine takes it (without its checks)."""
        with autocast(s.precision, s.device):
            out = model(x)
        loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if compiled:
        compile_model(model, True, s.device, backend=s.compile_backend, dynamic=False)
    first = first_call_seconds(step, s.device)
    seconds = time_blocks(step, s.device, s.warmup, s.steps, s.repeats)
    row = {"norm": norm, "size": s.size, "batch": batch, "compile": s.compile_backend if compiled else "off",
           "cudnn_benchmark": benchmark, "precision": s.precision, "fused_adamw": optimizer.defaults.get("fused"),
           "up_layer": "ConvTranspose2d" if transposed else up_layer_name(),
           "first_call_s": round(first, 2), "compile_s": round(first - seconds, 2) if compiled else None,
           "peak_memory_gib": peak_memory_gib(s.device)}
    throughput(row, seconds, batch, counted_flops("train", batch, s), s)
    if not compiled and benchmark and not transposed:
        engine = engine_seconds(model, optimizer, loss_fn, batch, s)
        row["engine_ms_per_step"] = round(engine * 1e3, 3)
        row["engine_images_per_s"] = round(batch / engine, 1)
    return row


def predictor_row(norm: str, images: int, s: Settings) -> dict[str, Any]:
    """``Predictor.predict`` of grey ``s.size`` squared images with ``tta="none"``, whole image per pass, as users
    run it: latency of one image (``images == 1``) or ms per image over ``images`` images in turn."""
    reset_memory(s.device)
    model = create_model("unet_bn", in_channels=1, num_classes=1, base_channels=32, norm=norm)
    predictor = Predictor(model, Normalization(), num_classes=2, device=s.device, tta="none", precision=s.precision)
    rng = np.random.default_rng(0)
    batch = [rng.random((s.size, s.size), dtype=np.float32) for _ in range(images)]

    def predict_all() -> None:
        """Predict every image in turn."""
        for image in batch:
            predictor.predict(image)

    first = first_call_seconds(lambda: predictor.predict(batch[0]), s.device)
    seconds = time_blocks(predict_all, s.device, warmup=s.warmup if images == 1 else min(1, s.warmup), steps=1,
                          repeats=s.repeats, wall=True)
    row = {"path": "Predictor.predict", "norm": norm, "size": s.size, "batch": 1, "images": images,
           "compile": "off", "precision": predictor.precision, "bn_folded": norm == "batch",
           "first_call_s": round(first, 2), "peak_memory_gib": peak_memory_gib(s.device)}
    throughput(row, seconds, images, counted_flops("forward", 1, s) * images, s)
    return row


def forward_row(norm: str, batch: int, compiled: bool, s: Settings, transposed: bool = False) -> dict[str, Any]:
    """The raw forward pass as the Predictor's torch backend runs it: batch norm folded into the convolutions,
    channels-last, autocast, inference mode, on a batch of ``batch`` images (eager or compiled; ``transposed``:
    up-convolutions as ``nn.ConvTranspose2d``)."""
    torch.backends.cudnn.benchmark = True
    reset_memory(s.device)
    if compiled:
        torch._dynamo.reset()
    model, folded = fold_batch_norm(make_model(norm, s.device, transposed).eval())
    model = model.to(memory_format=torch.channels_last)
    if compiled:
        compile_model(model, True, s.device, backend=s.compile_backend, dynamic=False)
    x = torch.randn(batch, 1, s.size, s.size, device=s.device).contiguous(memory_format=torch.channels_last)

    def forward() -> torch.Tensor:
        """The logits of the batch."""
        with torch.inference_mode(), autocast(s.precision, s.device):
            return model(x)

    first = first_call_seconds(forward, s.device)
    seconds = time_blocks(forward, s.device, s.warmup, s.steps, s.repeats)
    row = {"path": "forward", "norm": norm, "size": s.size, "batch": batch, "images": batch,
           "compile": s.compile_backend if compiled else "off", "precision": s.precision,
           "bn_folded": folded > 0, "up_layer": "ConvTranspose2d" if transposed else up_layer_name(),
           "first_call_s": round(first, 2),
           "compile_s": round(first - seconds, 2) if compiled else None, "peak_memory_gib": peak_memory_gib(s.device)}
    throughput(row, seconds, batch, counted_flops("forward", batch, s), s)
    return row


def layout_checks(device: torch.device) -> dict[str, Any]:
    """Memory layouts the network's speed depends on, on ``device``: whether ``pixel_shuffle`` (``UpConv2x2``) and
    the concatenation with a channels-last skip keep channels-last memory, in the forward and the backward pass."""
    x = torch.randn(2, 64, 16, 16, device=device, requires_grad=True)
    conv = x.contiguous(memory_format=torch.channels_last)
    shuffled = torch.nn.functional.pixel_shuffle(conv, 2)
    skip = torch.randn(2, 16, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    joined = torch.cat([skip, shuffled], 1)
    grad = torch.autograd.grad(shuffled.square().sum(), conv)[0]
    return {"pixel_shuffle_output_channels_last": shuffled.is_contiguous(memory_format=torch.channels_last),
            "cat_output_channels_last": joined.is_contiguous(memory_format=torch.channels_last),
            "pixel_shuffle_grad_channels_last": grad.is_contiguous(memory_format=torch.channels_last)}


def versions() -> dict[str, Any]:
    """Python, torch, CUDA, cuDNN, Triton and the device, as the script sees them."""
    info: dict[str, Any] = {
        "python": platform.python_version(), "executable": sys.executable, "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__, "threads": torch.get_num_threads(),
        "unetseg": getattr(sys.modules.get("unetseg"), "__version__", None),
        "unetseg_from": str(Path(sys.modules["unetseg"].__file__).parent), "host": platform.node(),
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update({"device_name": props.name, "capability": f"{props.major}.{props.minor}",
                     "multiprocessors": props.multi_processor_count,
                     "memory_gib": round(props.total_memory / GIB, 1), "device_count": torch.cuda.device_count()})
    return info


def prepare_dsb96(source: Path, dest: Path) -> None:
    """Write the images and masks of the dsb96 protocol (RGB area-averaged, union masks thresholded, 96x96) of
    ``source`` (the DSB2018 folder quality.py reads) to ``dest``, with its ``split.json``; quality.py reading
    ``dest`` trains and scores exactly as from ``source``."""
    from quality import resize_pair

    split = json.loads((source / "split.json").read_text())
    for part in ("train", "test"):
        for stem in split[part]:
            resize_pair(source, stem, dest, 96)
    shutil.copy2(source / "split.json", dest / "split.json")
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"{dest}: {sum(len(split[p]) for p in ('train', 'test'))} image pairs at 96x96, {size / 1e6:.1f} MB")


def quality_files(run_dir: Path, out: Path, output: str) -> dict[str, Any]:
    """The scores of a finished quality.py run in ``run_dir`` (its ``quality.json``, epochs from ``log.csv``, the
    recipe's choices), with its files and ``output`` (the process's output) copied to ``out``."""
    import yaml

    report = json.loads((run_dir / "quality.json").read_text())
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text()) or {}
    log_lines = (run_dir / "log.csv").read_text().splitlines()
    for name, target in (("quality.json", "quality_dsb96.json"), ("log.csv", "quality_log.csv"),
                         ("recipe.yaml", "quality_recipe.yaml")):
        shutil.copy2(run_dir / name, out / target)
    (out / "quality_output.txt").write_text(output)
    per_image, dataset = report.get("per_image_mean", {}), report.get("dataset", {})

    def rounded(value: Any) -> Any:
        """A score to 4 decimals (None stays None)."""
        return None if value is None else round(float(value), 4)

    return {
        "per_image_iou": rounded(per_image.get("iou")), "per_image_dice": rounded(per_image.get("dice")),
        "dataset_foreground_iou": rounded(dataset.get("foreground_iou")),
        "dataset_foreground_dice": rounded(dataset.get("foreground_dice")),
        "pixel_error": rounded(dataset.get("pixel_error")),
        "epochs": max(len(log_lines) - 1, 0), "train_seconds": report.get("train_seconds"),
        "predict_seconds": report.get("predict_seconds"), "test_images": report.get("images"),
        "prediction_settings": report.get("prediction_settings"),
        "recipe": {key: (value or {}).get("value") for key, value in recipe.items()},
    }


def process_output(command: str, stdout: str | bytes | None, stderr: str | bytes | None) -> str:
    """The command and its output as one text (a timed-out process's output comes as bytes even with text=True)."""
    parts = [part.decode(errors="replace") if isinstance(part, bytes) else part or "" for part in (stdout, stderr)]
    return f"$ {command}\n--- stdout\n{parts[0]}\n--- stderr\n{parts[1]}"


def quality_row(dsb: Path, minutes: float, device: torch.device, sets: list[str], out: Path,
                seconds_left: float) -> dict[str, Any]:
    """Train and score ``bench/quality.py dsb96`` with a ``minutes`` budget on ``device`` (a subprocess, killed
    after ``seconds_left``); the checkpoints stay in a temporary folder, the scores and logs go to ``out``."""
    row: dict[str, Any] = {"dataset": "dsb96", "data": str(dsb), "time_budget_minutes": minutes,
                           "overrides": sets, "shortened_from_minutes": QUALITY_PROTOCOL_MINUTES
                           if minutes < QUALITY_PROTOCOL_MINUTES else None,
                           "comparable_to_15_minute_runs": minutes >= QUALITY_PROTOCOL_MINUTES}
    with tempfile.TemporaryDirectory(prefix="unetseg_quality_") as tmp:
        command = [sys.executable, str(ROOT / "bench" / "quality.py"), "dsb96", "--data", str(dsb),
                   "--time-budget", f"{minutes:g}", "--device", str(device), "--output", tmp]
        command += [arg for item in sets for arg in ("--set", item)]
        row["command"] = " ".join(command[1:])
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds_left)
        except subprocess.TimeoutExpired as err:
            row["error"] = f"killed after {seconds_left:.0f} s (time left in the budget)"
            (out / "quality_output.txt").write_text(process_output(row["command"], err.stdout, err.stderr))
            return row
        row["wall_s"] = round(time.perf_counter() - started, 1)
        output = process_output(row["command"], done.stdout, done.stderr)
        runs = sorted(Path(tmp).glob("*/quality.json"))
        if done.returncode != 0 or not runs:
            row["error"] = f"exit code {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
            (out / "quality_output.txt").write_text(output)
            return row
        row.update(quality_files(runs[-1].parent, out, output))
    return row


@dataclass
class Task:
    """A row to measure: its section, a label, the estimated seconds (replaced by the measured seconds of the last
    row of the same ``kind`` once there is one) and the function returning the row."""

    section: str
    label: str
    estimate: float
    run: Callable[[], dict[str, Any]]
    kind: str = "eager"


def speed_tasks(s: Settings, compile_estimate: float) -> tuple[list[Task], list[Task], list[Task]]:
    """The speed rows in priority order: (eager rows, the compiled rows the recipe runs, the other compiled
    rows). The recipe trains batch norm at batch >= 8 and instance norm below."""
    eager = [Task("train", f"train {n} b{b}", 15, lambda n=n, b=b: train_row(n, b, False, s))
             for n, b in (("batch", 12), ("instance", 3), ("batch", 3), ("instance", 12))]
    eager.append(Task("train", "train batch b12 without cudnn.benchmark", 10,
                      lambda: train_row("batch", 12, False, s, benchmark=False)))
    eager += [Task("predict", f"Predictor {n} x{k}", 15, lambda n=n, k=k: predictor_row(n, k, s))
              for n in ("batch", "instance") for k in (1, s.images)]
    eager += [Task("predict", f"forward {n} b{b}", 8, lambda n=n, b=b: forward_row(n, b, False, s))
              for n in ("batch", "instance") for b in (1, s.images)]
    if up_layer_name() != "ConvTranspose2d":  # the same network with the up-convolution layer it replaced
        eager += [Task("train", "train batch b12 with nn.ConvTranspose2d", 10,
                       lambda: train_row("batch", 12, False, s, transposed=True)),
                  Task("predict", f"forward batch b{s.images} with nn.ConvTranspose2d", 8,
                       lambda: forward_row("batch", s.images, False, s, transposed=True))]
    first = [Task("train", f"train {n} b{b} compiled", compile_estimate, lambda n=n, b=b: train_row(n, b, True, s),
                  "compiled train") for n, b in (("batch", 12), ("instance", 3))]
    first += [Task("predict", f"forward batch b{b} compiled", compile_estimate / 2,
                   lambda b=b: forward_row("batch", b, True, s), "compiled forward") for b in (1, s.images)]
    rest = [Task("train", f"train {n} b{b} compiled", compile_estimate, lambda n=n, b=b: train_row(n, b, True, s),
                 "compiled train") for n, b in (("batch", 3), ("instance", 12))]
    rest += [Task("predict", f"forward instance b{b} compiled", compile_estimate / 2,
                  lambda b=b: forward_row("instance", b, True, s), "compiled forward") for b in (1, s.images)]
    return eager, first, rest


def run_task(task: Task, budget: Budget, report: Report) -> None:
    """Measure ``task`` when it fits the budget; a failure is recorded in its row and does not stop the others."""
    estimate = budget.observed.get(task.kind, task.estimate)
    if not budget.allows(estimate):
        report.add("skipped", {"row": task.label, "reason": f"about {estimate:.0f} s needed, "
                               f"{budget.left() - budget.reserved:.0f} s left"})
        return
    print(f"--- {task.label} ({budget.left():.0f} s left)", flush=True)
    started = time.monotonic()
    try:
        row = task.run()
    except Exception as err:  # one failing row (compiler, out of memory) must not lose the others
        traceback.print_exc()
        row = {"error": f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300] if str(err) else ''}"}
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    seconds = time.monotonic() - started
    if "error" not in row:
        budget.observed[task.kind] = seconds * 1.1
    report.add(task.section, {"row": task.label, **row, "seconds": round(seconds, 1)})


def settings_from(args: argparse.Namespace, device: torch.device, peak_measured: float,
                  peak_table: float | None) -> Settings:
    """The row settings: the command line's, with the ``--quick`` sizes (64x64, no warm-up beyond the first
    call, one timed step, 2 images)."""
    quick = args.quick
    precision = resolve_precision(args.precision or ("bf16" if device.type == "cuda" else "auto"), device)
    return Settings(device=device, precision=precision, size=args.size or (64 if quick else 512),
                    warmup=0 if quick else args.warmup, steps=1 if quick else args.steps,
                    repeats=1 if quick else args.repeats, images=2 if quick else args.images,
                    compile_backend=args.compile_backend or ("eager" if quick else "inductor"),
                    peak_table=peak_table, peak_measured=peak_measured)


def resolve(args: argparse.Namespace) -> torch.device:
    """The device to measure on; SystemExit when CUDA was asked for and is not available."""
    if args.device == "auto":
        if not torch.cuda.is_available():
            print("WARNING: torch.cuda.is_available() is False: measuring on the CPU, numbers are not GPU numbers",
                  flush=True)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no "
                         "GPU (torch.cuda.is_available() is False)")
    return device


def measure(args: argparse.Namespace) -> Report:
    """Run every row within the budget and return the report (written after every row)."""
    device = resolve(args)
    threads = args.threads or (1 if args.quick and device.type == "cpu" else None)
    if threads:  # a smoke test on a busy machine: one thread does not fight the other processes for the cores
        torch.set_num_threads(threads)
    report = Report(Path(args.out), {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "versions": versions(),
                                     "argv": sys.argv[1:]})
    print(json.dumps(report.data["versions"], indent=2), flush=True)
    budget = Budget(args.budget_seconds)
    for name in ("recompile_limit", "cache_size_limit"):  # one compiled network per row: more than the default 8
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    n = 512 if args.quick or device.type != "cuda" else 8192
    peak_measured = matmul_peak(device, n, 3 if args.quick else 20)
    peak_table = table_peak(report.data["versions"].get("device_name", "")) if device.type == "cuda" else None
    s = settings_from(args, device, peak_measured, peak_table)
    report.data["peak"] = {"table_tflops": peak_table, "measured_tflops": round(peak_measured, 1),
                           "measured_with": f"median torch.mm bf16 {n}x{n}x{n}"}
    report.data["settings"] = {k: str(v) if isinstance(v, torch.device) else v for k, v in vars(s).items()}
    report.data["layouts"] = layout_checks(device)
    report.save()
    wanted = args.quality_minutes > 0 and args.rows != "speed"
    quality = wanted and not args.quick and args.dsb is not None
    quality_need = args.quality_minutes * 60 + QUALITY_OVERHEAD_S
    budget.reserved = quality_need if quality else 0.0
    eager, first, rest = speed_tasks(s, args.compile_estimate) if args.rows != "quality" else ([], [], [])
    for task in eager + first:
        run_task(task, budget, report)
    budget.reserved = 0.0
    if quality:
        run_quality(args, device, budget, report, quality_need)
    elif wanted:
        report.data["quality"] = {"skipped": "--quick" if args.quick else "no --dsb folder given"}
        report.save()
    for task in rest:
        run_task(task, budget, report)
    report.data["total_seconds"] = round(time.monotonic() - budget.started, 1)
    report.save()
    return report


def run_quality(args: argparse.Namespace, device: torch.device, budget: Budget, report: Report,
                need: float) -> None:
    """The dsb96 quality row, when it fits the budget."""
    if not budget.allows(need):
        report.data["quality"] = {"skipped": f"about {need:.0f} s needed, {budget.left():.0f} s left"}
    else:
        print(f"--- quality: dsb96, {args.quality_minutes:g} minutes ({budget.left():.0f} s left)", flush=True)
        report.data["quality"] = quality_row(Path(args.dsb).resolve(), args.quality_minutes, device, args.quality_set,
                                             Path(args.out), min(budget.left(), need + 120))
        print(json.dumps({"quality": report.data["quality"]}, default=str), flush=True)
    report.save()


def _cell(value: Any) -> str:
    """A markdown table cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:,.1f}"
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """Markdown table lines of ``columns`` of ``rows`` (a row with an error shows it)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['row']} | error: {row['error']} |" + " |" * (len(columns) - 2))
        else:
            lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return lines


def markdown(data: dict[str, Any]) -> str:
    """The summary as markdown: versions, peaks, the training and prediction tables, the quality run, skips."""
    v, peak = data.get("versions", {}), data.get("peak", {})
    lines = [f"# unetseg GPU measurement, {data.get('date')}", "",
             f"{v.get('device_name', 'CPU (no GPU)')}, torch {v.get('torch')} (CUDA {v.get('torch_cuda')}, cuDNN "
             f"{v.get('cudnn')}, Triton {v.get('triton')}), Python {v.get('python')}", "",
             f"bf16 dense peak: table {peak.get('table_tflops')} TFLOP/s, measured {peak.get('measured_tflops')} "
             f"TFLOP/s ({peak.get('measured_with')}); MFU = counted conv/matmul FLOPs / time / peak.", ""]
    if data.get("layouts"):
        lines += ["Layouts: " + ", ".join(f"{k} {v}" for k, v in data["layouts"].items()), ""]
    if data.get("train"):
        lines += ["## Training steps (unet_bn 32, bf16 autocast, channels-last, AdamW, bce_dice)", ""]
        lines += _table(data["train"], ["row", "size", "batch", "ms_per_call", "images_per_s", "megapixels_per_s",
                                        "achieved_tflops", "mfu_table", "mfu_measured", "compile_s",
                                        "peak_memory_gib", "engine_ms_per_step"]) + [""]
    if data.get("predict"):
        lines += ["## Prediction (tta none; ms_per_call is one Predictor pass over all images or one batch)", ""]
        lines += _table(data["predict"], ["row", "size", "images", "ms_per_call", "ms_per_image", "images_per_s",
                                          "achieved_tflops", "mfu_table", "mfu_measured", "compile_s",
                                          "peak_memory_gib"]) + [""]
    if data.get("quality"):
        q = data["quality"]
        lines += ["## Quality: bench/quality.py dsb96", ""]
        lines += [f"- {key}: {json.dumps(value, default=str)}" for key, value in q.items()] + [""]
    if data.get("skipped"):
        lines += ["## Skipped (time budget)", ""] + [f"- {r['row']}: {r['reason']}" for r in data["skipped"]] + [""]
    if "total_seconds" in data:
        lines.append(f"Total {data['total_seconds']} s.")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="folder for gpu.json, gpu.md and the quality run's files")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cuda, cuda:N or cpu")
    parser.add_argument("--rows", choices=("all", "speed", "quality"), default="all",
                        help="what to measure: everything (default), the speed rows, or the quality run only")
    parser.add_argument("--quick", action="store_true", help="smoke test: 64x64, the first call and one timed "
                        "step per row, 2 images, torch.compile with the eager backend, no quality run")
    parser.add_argument("--size", type=int, help="image and patch side (default 512; 64 with --quick)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"),
                        help="default bf16 on a GPU, auto (the unetseg rule) on the CPU")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up calls per row (default 5)")
    parser.add_argument("--steps", type=int, default=10, help="consecutive calls per timed block (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per row, median (default 5)")
    parser.add_argument("--images", type=int, default=32, help="images of the throughput rows (default 32)")
    parser.add_argument("--compile-backend", help="torch.compile backend (default inductor; eager with --quick)")
    parser.add_argument("--compile-estimate", type=float, default=90.0,
                        help="seconds a compiled training row is assumed to take, for the budget (default 90)")
    parser.add_argument("--threads", type=int, help="CPU threads of torch (default: torch's; 1 with --quick on "
                        "the CPU, where a shared machine's other processes make more threads much slower)")
    parser.add_argument("--budget-seconds", type=float, help="stop starting rows that would end after this")
    parser.add_argument("--dsb", help="DSB2018 folder as bench/quality.py reads it (images/, masks/, split.json; "
                        "the full data or the --prepare-dsb96 copy)")
    parser.add_argument("--quality-minutes", type=float, default=0.0,
                        help="training minutes of the dsb96 quality run (0: none; the protocol is 15)")
    parser.add_argument("--quality-set", action="append", default=[], metavar="SECTION.KEY=YAML",
                        help="passed to quality.py --set (repeatable), e.g. train.num_workers=8")
    parser.add_argument("--prepare-dsb96", metavar="DEST",
                        help="only write the 96x96 dsb96 images and masks of --dsb to DEST (run where the data is)")
    args = parser.parse_args(argv)
    if not args.prepare_dsb96 and not args.out:
        parser.error("--out is required")
    return args


def main() -> None:
    """Measure, or prepare the dsb96 data with ``--prepare-dsb96``."""
    args = parse_args()
    if args.prepare_dsb96:
        if not args.dsb:
            raise SystemExit("--prepare-dsb96 needs --dsb (the DSB2018 folder)")
        prepare_dsb96(Path(args.dsb), Path(args.prepare_dsb96))
        return
    report = measure(args)
    print(f"wrote {report.out / 'gpu.json'} and {report.out / 'gpu.md'}", flush=True)


if __name__ == "__main__":
    main()
