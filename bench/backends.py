"""Prediction backends against each other on the CPU: whole-image prediction of a synthetic nuclei image through
``Predictor`` (the path ``unetseg predict`` takes; no tiling, no TTA) with each backend and precision, for
``unet_bn`` as preset (64 base channels) and at 32 base channels with batch norm and with instance norm (what the
default recipe trains for batches of fewer than 8 patches). Paths: torch fp32, torch default (``--precision
auto``: bf16 where the CPU computes it natively), ONNX Runtime fp32, OpenVINO fp32, OpenVINO bf16 (where OpenVINO
reports BF16 support).

Weights are random (the cost of prediction does not depend on them). Each path runs in a process of its own, so
that no runtime's worker threads (ONNX Runtime and OpenVINO keep theirs spinning for a while after a call) take the
cores from the next path: the process builds the path and calls it once (its first-call time: batch-norm folding;
for ONNX Runtime and OpenVINO the ONNX export, which ``unetseg predict`` does in memory, plus session creation or
compilation), then times ``--repeats`` predictions. The processes run interleaved (A, B, C, ..., A, B, C, ...)
for ``--rounds`` rounds so that all paths see the same machine state; a path's time is the median over rounds of
each round's median. Label agreement is the fraction of pixels with the same class as torch fp32. Prints a markdown
table and one JSON line. Needs the onnx and openvino extras (``pip install unetseg[onnx,openvino]``); a path whose
extra is missing is left out with the reason.

    python bench/backends.py                          # the full measurement (a quiet machine, about 5 minutes)
    python bench/backends.py --quick                  # smoke test at 64x64, one repeat (numbers meaningless)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from common import machine
from unetseg.data.normalize import Normalization
from unetseg.data.synthetic import make_nuclei_image
from unetseg import Predictor
from unetseg.models import create_model
from unetseg.precision import resolve_precision

#: (row key, backend, precision) of every measured path, in table order; "auto" is the torch default
PATHS = (("torch_fp32", "torch", "fp32"), ("torch_default", "torch", "auto"),
         ("onnxruntime_fp32", "onnxruntime", "fp32"), ("openvino_fp32", "openvino", "fp32"),
         ("openvino_bf16", "openvino", "bf16"))
#: the networks: unet_bn as preset, and at the training default's width with batch norm
NETWORKS: dict[str, Callable[[], torch.nn.Module]] = {
    "unet_bn (preset, 64 channels)": lambda: create_model("unet_bn", num_classes=2),
    "unet_bn (32 channels, batch norm)": lambda: create_model("unet_bn", num_classes=2, base_channels=32,
                                                              norm="batch"),
    "unet_bn (32 channels, instance norm: the training default)": lambda: create_model(
        "unet_bn", num_classes=2, base_channels=32, norm="instance"),
}
REFERENCE, DEFAULT = "torch_fp32", "torch_default"


def run_path(network: str, key: str, size: int, repeats: int, labels_file: str) -> dict:
    """One path of one network in this process: build it, call it once (timed: the first call a user waits for,
    the ONNX export included), then time ``repeats`` predictions; the labels are saved to ``labels_file``.

    Raises:
        Exception: whatever the backend raises when it cannot run here (a missing extra, no bf16 support).
    """
    torch.manual_seed(0)
    model = NETWORKS[network]().eval()
    image = make_nuclei_image(np.random.default_rng(0), size, size, n_nuclei=(size * size // 1500 + 1,) * 2)[0]
    backend, precision = next((b, p) for k, b, p in PATHS if k == key)
    started = time.perf_counter()
    predictor = Predictor(model, Normalization(), num_classes=2, device="cpu", tile=None, tta="none",
                          precision=precision, backend=backend)
    labels = predictor.predict(image)
    first_call = time.perf_counter() - started
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.predict(image)
        seconds.append(time.perf_counter() - started)
    np.save(labels_file, labels)
    return {"backend": predictor.backend, "precision": predictor.precision, "first_call_s": first_call,
            "median_s": float(np.median(seconds))}


def spawn(network: str, key: str, size: int, repeats: int, labels_file: str) -> dict | None:
    """:func:`run_path` in a new process; None (saying why) when the path cannot run here."""
    cmd = [sys.executable, __file__, "--worker", network, key, "--size", str(size), "--repeats", str(repeats),
           "--labels", labels_file]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{network} {key} left out: {done.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_network(network: str, size: int, repeats: int, rounds: int) -> list[dict]:
    """The rows of one network: every path of :data:`PATHS` that runs here, one process per path and round,
    interleaved."""
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for key, _, _ in PATHS:
                result = spawn(network, key, size, repeats, os.path.join(folder, f"{key}.npy"))
                if result is not None:
                    runs.setdefault(key, []).append(result)
        labels = {key: np.load(os.path.join(folder, f"{key}.npy")) for key in runs}
    seconds = {key: float(np.median([r["median_s"] for r in rows])) for key, rows in runs.items()}
    return [{"path": key, "backend": rows[0]["backend"], "precision": rows[0]["precision"],
             "seconds": round(seconds[key], 4), "speedup_vs_torch_default": round(seconds[DEFAULT] / seconds[key], 2),
             "label_agreement_vs_torch_fp32": round(float((labels[key] == labels[REFERENCE]).mean()), 6),
             "first_call_s": round(float(np.median([r["first_call_s"] for r in rows])), 2)}
            for key, rows in runs.items()]


def markdown(results: dict[str, list[dict]]) -> str:
    """The markdown table of every network's rows."""
    lines = ["| network | path | s / image | vs torch default | labels = torch fp32 | first call (s) |",
             "|---|---|---|---|---|---|"]
    for network, rows in results.items():
        for row in rows:
            lines.append(f"| {network} | {row['backend']} {row['precision']} | {row['seconds']:.3f} | "
                         f"{row['speedup_vs_torch_default']:.2f}x | {100 * row['label_agreement_vs_torch_fp32']:.2f}% "
                         f"| {row['first_call_s']:.1f} |")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Versions of the runtimes measured (None where not installed)."""
    found = {}
    for package in ("torch", "onnxruntime", "openvino"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, help="timed repeats per path and round (default 5; 1 with --quick)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of processes (default 3; 1 with --quick)")
    parser.add_argument("--size", type=int, help="image side, a multiple of 16 (default 512; 64 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 64x64, one repeat (numbers meaningless)")
    parser.add_argument("--worker", nargs=2, metavar=("NETWORK", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size or (64 if args.quick else 512)
    repeats = args.repeats or (1 if args.quick else 5)
    if args.worker:
        print(json.dumps(run_path(*args.worker, size, repeats, args.labels)))
        return
    rounds = args.rounds or (1 if args.quick else 3)
    results = {name: measure_network(name, size, repeats, rounds) for name in NETWORKS}
    print(f"\n{size}x{size}, whole image, tta none, {torch.get_num_threads()} threads, one process per path and "
          f"round, medians of {repeats} calls, median over {rounds} rounds; "
          f"torch default = {resolve_precision('auto', torch.device('cpu'))}\n")
    print(markdown(results))
    report = {"machine": machine(), "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
              "versions": versions(), "size": size, "repeats": repeats, "rounds": rounds, "networks": results}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
