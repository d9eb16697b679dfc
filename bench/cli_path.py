"""The prediction users get from a fresh ``unetseg train`` run, against the path ``bench/speed.py`` measures.

A short real run trains through the Python API on ISBI 2012 slices (``train.epochs=1``, a few patches; every other
setting from the default recipe, so the network is the one the recipe picks for this data and the prediction
settings are the ones it tunes on the validation slices). Then, in one process and interleaved, one 512 x 512
image (an ISBI slice the run did not see) is predicted by:

* ``checkpoint default``: ``Predictor.from_checkpoint(best.safetensors).predict(image)``, with the checkpoint's
  tuned settings (what ``unetseg predict`` runs for each image);
* ``checkpoint, tta none``: the same with ``tta="none"``;
* ``benchmarked path``: speed.py's "fast" path: the ``unet_bn`` preset (64 base channels), batch norm folded,
  bfloat16 autocast where the CPU has it, channels-last, no test-time augmentation (random weights);
* ``unetseg predict``: the command end to end on a folder holding the image (a subprocess: start-up, reading,
  prediction, writing), with fewer repeats.

Used by ``python bench/speed.py --cli-default`` (``--quick``: 8 slices and 4 patches, every slice and the predicted
image cropped to 256 x 256, one repeat).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from common import link_file, machine
from speed import predict_fn
from unetseg import Config, Predictor, train
from unetseg.checkpoint import load_checkpoint
from unetseg.data.io import read_image
from unetseg.inference.fusion import fold_batch_norm
from unetseg.models import create_model
from unetseg.precision import resolve_precision

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"
PREDICTED_SLICE = 29  # never among the training slices
ISBI_LAYOUT = "expected train/images/NN.png and train/masks/NN.png (see the dataset's README)"


def place(source: Path, target: Path, crop: int | None) -> None:
    """``target`` as a link to ``source``, or as a copy of its top-left ``crop`` x ``crop`` pixels."""
    if crop is None:
        link_file(source, target, ISBI_LAYOUT)
        return
    if not source.is_file():
        raise SystemExit(f"{source}: missing; {ISBI_LAYOUT}")
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(Image.open(source))[:crop, :crop]).save(target)


def prepare(data: Path, tmp: Path, slices: int, crop: int | None) -> tuple[Path, Path]:
    """(a training folder of the first ``slices`` ISBI slices; a folder holding the one image to predict, slice
    29), every image and mask whole (linked) or its top-left ``crop`` x ``crop`` pixels."""
    for i in range(slices):
        for sub in ("images", "masks"):
            place(data / "train" / sub / f"{i:02d}.png", tmp / "train" / sub / f"{i:02d}.png", crop)
    name = f"{PREDICTED_SLICE:02d}.png"
    place(data / "train" / "images" / name, tmp / "predict" / name, crop)
    return tmp / "train", tmp / "predict"


def train_short(train_dir: Path, output: Path, samples: int) -> tuple[Path, float]:
    """Train one epoch of ``samples`` patches with the default recipe; returns (best checkpoint, seconds)."""
    config = Config()
    config.data.train, config.train.output_dir, config.train.name = str(train_dir), str(output), "cli-default"
    config.train.epochs, config.train.samples_per_epoch, config.train.seed = 1, samples, 0
    started = time.perf_counter()
    run_dir = train(config, progress=False).run_dir
    return run_dir / "best.safetensors", time.perf_counter() - started


def cli_command(checkpoint: Path, inputs: Path, output: Path) -> list[str]:
    """The ``unetseg predict`` command line (the console script beside this interpreter, else ``-m unetseg``)."""
    script = Path(sys.executable).with_name("unetseg")
    start = [str(script)] if script.is_file() else [sys.executable, "-m", "unetseg"]
    return [*start, "predict", "--checkpoint", str(checkpoint), "--input", str(inputs), "--output", str(output),
            "--overwrite"]


def prediction_paths(checkpoint: Path, image: np.ndarray) -> dict[str, Callable[[], object]]:
    """The three in-process paths (module docstring) for ``image``."""
    default = Predictor.from_checkpoint(checkpoint)
    untuned = Predictor.from_checkpoint(checkpoint, tta="none")
    precision = resolve_precision("auto", torch.device("cpu"))
    model = fold_batch_norm(create_model("unet_bn", num_classes=2))[0]
    x = torch.randn(1, 1, *image.shape[:2])
    if precision == "bf16":
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return {"checkpoint default": lambda: default.predict(image),
            "checkpoint, tta none": lambda: untuned.predict(image),
            "benchmarked path": predict_fn(model, x, precision)}


def run_command(command: list[str]) -> None:
    """Run ``command``; SystemExit with the end of its output when it fails."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited with {done.returncode}:\n{(done.stdout + done.stderr)[-2000:]}")


def time_interleaved(fns: dict[str, Callable[[], object]], command: list[str], repeats: int,
                     command_repeats: int) -> dict[str, float]:
    """Median seconds of each function and of the command (key ``unetseg predict``), in rounds after one warm-up
    call each: every round runs each function once, the first ``command_repeats`` rounds the command too."""
    runs: dict[str, Callable[[], object]] = {**fns, "unetseg predict": lambda: run_command(command)}
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for round_ in range(max(repeats, command_repeats)):
        for key, fn in runs.items():
            if round_ >= (command_repeats if key == "unetseg predict" else repeats):
                continue
            started = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - started)
    return {k: float(np.median(v)) for k, v in times.items()}


def checkpoint_facts(checkpoint: Path) -> dict[str, Any]:
    """The network, the tuned prediction settings and their recorded cost (when the checkpoint has one)."""
    ckpt = load_checkpoint(checkpoint)
    settings = ckpt.prediction
    tuned = settings.to_dict() if settings is not None else {}
    return {"network": ckpt.model_config, "tta": tuned.get("tta"), "min_size": tuned.get("min_size"),
            "instances": tuned.get("instances"), "recorded_cost": getattr(settings, "cost", None),
            "recipe": {key: choice.get("value") if isinstance(choice, dict) else choice
                       for key, choice in (ckpt.recipe or {}).items()}}


def print_table(seconds: dict[str, float], facts: dict[str, Any], size: int) -> None:
    """Seconds per image of every path and the ratio to the benchmarked path, with the checkpoint's settings."""
    print(f"\nnetwork from the recipe: {facts['network']}")
    print(f"tuned prediction settings: tta={facts['tta']}, min_size={facts['min_size']}, "
          f"instances={facts['instances']}; recorded cost: {facts['recorded_cost']}")
    print(f"\n{size}x{size} image{'':<22}{'s/image':>10}{'x benchmarked':>15}")
    for key, s in seconds.items():
        print(f"{key:<38}{s:>10.3f}{s / seconds['benchmarked path']:>15.2f}")
    overhead = seconds["unetseg predict"] - seconds["checkpoint default"]
    print(f"the command's start-up, reading and writing: {overhead:.2f} s (unetseg predict - checkpoint default)")


def run_cli_default(quick: bool = False, repeats: int = 5, data: Path = DATA) -> dict[str, Any]:
    """Train the short run, time every path, print the table; returns the report (a JSON-ready dict)."""
    slices, samples, crop = (8, 4, 256) if quick else (20, 8, None)
    with tempfile.TemporaryDirectory(prefix="unetseg-cli-default-") as tmp:
        train_dir, inputs = prepare(data, Path(tmp), slices, crop)
        checkpoint, train_s = train_short(train_dir, Path(tmp) / "runs", samples)
        print(f"trained {slices} slices x 1 epoch of {samples} patches in {train_s:.1f} s: {checkpoint}",
              flush=True)
        image = read_image(next(inputs.iterdir()))
        command = cli_command(checkpoint, inputs, Path(tmp) / "predicted")
        seconds = time_interleaved(prediction_paths(checkpoint, image), command, repeats,
                                   1 if quick else max(3, repeats // 2))
        facts = checkpoint_facts(checkpoint)
    print_table(seconds, facts, image.shape[0])
    return {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "threads": torch.get_num_threads(),
            "image_side": image.shape[0], "train_seconds": round(train_s, 1), **facts,
            "seconds_per_image": {k: round(s, 4) for k, s in seconds.items()},
            "ratio_to_benchmarked": {k: round(s / seconds["benchmarked path"], 2) for k, s in seconds.items()}}
