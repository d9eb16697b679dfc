"""Prediction at scale: block-wise prediction through Dask against the single-process block path, and the peak
memory of the default `unetseg predict` as images grow. Run alone or through bench/scale.py:

    python bench/scale_predict.py predict-dask --size 16384           # or: python bench/scale.py predict-dask ...
    python bench/scale_predict.py predict-memory --sizes 2048 6144

``predict-dask`` writes a synthetic nuclei TIFF of SIZE x SIZE (uint8, tiled, written region by region) and an
untrained checkpoint (the cost of prediction does not depend on the weights), then predicts the image in two fresh
processes: ``predict(..., block=B, halo=H)`` (single-process block path) and ``predict(..., block=B, halo=H,
dask=True)`` (a local Dask cluster of worker processes, started and stopped inside the timed call). It reports the
wall time of each call, the peak resident memory (VmHWM) of the single process, of the Dask client process and of
every worker process (read from /proc while they run), and whether the two label images are identical.

``predict-memory`` writes tiled TIFFs of each size and runs ``python -m unetseg predict --checkpoint CKPT --input
IMAGE --output DIR`` (no other flag) on each in a fresh process, reading its peak resident memory from the operating
system (``os.wait4``) and from its log whether the image was predicted whole or block by block.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from big_image import write_image  # noqa: E402
from common import machine  # noqa: E402
from unetseg.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from unetseg.models import create_model  # noqa: E402

CHILD = """
import json, sys, time
from unetseg.inference.files import predict
checkpoint, image, out, block, halo, dask = sys.argv[1:7]
started = time.perf_counter()
predict(checkpoint, [image], out, device="cpu", block=int(block), halo=int(halo), dask=dask == "dask")
seconds = time.perf_counter() - started
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({"seconds": round(seconds, 1), "peak_rss_mib": round(hwm / 1024, 1)}))
"""


def write_checkpoint(path: Path, base: int, norm: str) -> None:
    """An untrained binary unet_bn of ``base`` channels and ``norm``, percentile normalisation per image."""
    torch.manual_seed(0)
    model = create_model("unet_bn", in_channels=1, num_classes=1, base_channels=base, norm=norm)
    save_checkpoint(path, Checkpoint(model_config=model.config, num_classes=2, class_names=["background", "nucleus"],
                                     normalization={"mode": "percentile", "low": 1.0, "high": 99.8}, run_config={},
                                     epoch=0, model_state=model.state_dict()))


def _descendants(pid: int) -> list[int]:
    """The process ids below ``pid`` (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = []
        for task in Path(f"/proc/{parent}/task").glob("*"):  # children of every thread
            try:
                children += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
        found += children
        todo += children
    return found


def _status(pid: int) -> dict[str, str]:
    """The fields of /proc/PID/status (empty once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def run_watched(command: list[str]) -> tuple[subprocess.CompletedProcess, dict[int, dict]]:
    """Run ``command``, reading every 0.5 s the peak resident memory (VmHWM, a running maximum) of each process
    below it; returns the finished process and {pid: {"peak_rss_mib", "command"}} of those seen."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[int, dict] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            for pid in _descendants(proc.pid):
                status = _status(pid)
                if "VmHWM" in status:
                    entry = seen.setdefault(pid, {"command": _cmdline(pid)[:120]})
                    entry["peak_rss_mib"] = round(int(status["VmHWM"].split()[0]) / 1024, 1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    stop.set()
    watcher.join()
    return subprocess.CompletedProcess(command, proc.returncode, out, err), seen


def predict_dask(argv: Sequence[str]) -> dict:
    """``predict-dask``: a SIZE x SIZE image through Dask (a local cluster) and through the single-process block
    path, in the same run."""
    parser = argparse.ArgumentParser(prog="scale_predict.py predict-dask", description=predict_dask.__doc__)
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--halo", type=int, default=64)
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--norm", default="batch")
    parser.add_argument("--work", default=None, help="folder for the image and outputs (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    import tifffile

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        write_checkpoint(work / "model.safetensors", args.base_channels, args.norm)
        started = time.perf_counter()
        write_image(work / "image.tif", args.size)
        generate = time.perf_counter() - started
        runs = {}
        for engine in ("single", "dask"):
            command = [sys.executable, "-c", CHILD, str(work / "model.safetensors"), str(work / "image.tif"),
                       str(work / engine), str(args.block), str(args.halo), engine]
            done, workers = run_watched(command)
            if done.returncode != 0:
                raise SystemExit(f"{engine} prediction failed:\n{done.stderr[-4000:]}")
            runs[engine] = json.loads(done.stdout.strip().splitlines()[-1])
            if engine == "dask":  # the worker processes (not the resource tracker or fork server of multiprocessing)
                runs[engine]["workers_peak_rss_mib"] = sorted(
                    (w["peak_rss_mib"] for w in workers.values() if "spawn_main" in w["command"]), reverse=True)
                runs[engine]["processes"] = list(workers.values())
            print(engine, json.dumps(runs[engine]), flush=True)
        identical = bool(np.array_equal(tifffile.imread(work / "single" / "image.tif"),
                                        tifffile.imread(work / "dask" / "image.tif")))
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "size": args.size, "block": args.block,
              "halo": args.halo, "model": f"unet_bn base {args.base_channels}, {args.norm} norm",
              "threads": torch.get_num_threads(), "generate_seconds": round(generate, 1), **runs,
              "time_ratio": round(runs["dask"]["seconds"] / runs["single"]["seconds"], 2),
              "labels_identical": identical}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


def predict_memory(argv: Sequence[str]) -> dict:
    """``predict-memory``: peak memory of the default ``unetseg predict`` on tiled TIFFs of growing size."""
    parser = argparse.ArgumentParser(prog="scale_predict.py predict-memory", description=predict_memory.__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 6144])
    parser.add_argument("--base-channels", type=int, default=32, help="(the default recipe's network: 32)")
    parser.add_argument("--norm", default="instance", help="(the default recipe's network: instance)")
    parser.add_argument("--work", default=None, help="folder for the images and outputs (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        write_checkpoint(work / "model.safetensors", args.base_channels, args.norm)
        for size in args.sizes:
            image = work / f"image{size}.tif"
            write_image(image, size)
            command = [sys.executable, "-m", "unetseg", "predict", "--checkpoint", str(work / "model.safetensors"),
                       "--input", str(image), "--output", str(work / f"out{size}")]
            started = time.perf_counter()
            with open(work / f"log{size}.txt", "w") as log:
                proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
                _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - started
            text = (work / f"log{size}.txt").read_text()
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"unetseg predict on {size}^2 failed:\n{text[-4000:]}")
            blocks = "block by block" in text
            rows.append({"size": size, "pixels": size * size, "seconds": round(seconds, 1),
                         "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                         "mode": "blocks" if blocks else "whole",
                         "output": sorted(p.name for p in (work / f"out{size}").iterdir()),
                         "log": [line for line in text.splitlines() if "memory budget" in line]})
            print(json.dumps(rows[-1]), flush=True)
            image.unlink()
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"),
              "model": f"unet_bn base {args.base_channels}, {args.norm} norm", "rows": rows,
              "memory_ratio": round(rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"], 2)}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


#: the subcommands of this file
SUBCOMMANDS: dict[str, Callable[[Sequence[str]], object]] = {"predict-dask": predict_dask,
                                                              "predict-memory": predict_memory}


def main(argv: Sequence[str] | None = None) -> None:
    """Run the subcommand named first in ``argv`` (default: the command line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("subcommand", choices=list(SUBCOMMANDS))
        parser.parse_args(argv[:1])
    SUBCOMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
