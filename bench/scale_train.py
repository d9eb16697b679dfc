"""Training throughput on one machine: `unetseg train` as one process and as several processes started by torchrun
(DistributedDataParallel over gloo), with the same global batch, in interleaved rounds (A, B, C, A, B, C, ...).

    python bench/scale.py train-throughput                          # 1 process x 2 threads, 2 x 1, 1 x 1; 3 rounds
    python bench/scale.py train-throughput --rounds 1 --patches 16  # smoke test
    python bench/scale_train.py --arms 1x4 4x1                      # 1 process x 4 threads vs 4 processes x 1 thread

An arm ``PxT`` is P processes of T threads each (``OMP_NUM_THREADS=T``): ``python -m unetseg train`` for one process,
``python -m torch.distributed.run --standalone --nproc-per-node P -m unetseg train`` for several. The default arms
compare one process on the machine's 2 cores with 2 processes of one core each; ``1x1`` (one core) is the
reference that tells how much of the difference the second core makes. Each run is the real command on synthetic
nuclei (``unetseg.data.synthetic``, grey images with masks); everything else is fixed and equal: the network (the
default ``unet_bn`` with instance norm, so that every arm trains the same function), the patch size, the global
batch, the patches per epoch, 2 epochs, no prediction tuning. Throughput = the patches of the second epoch / its
training seconds (``seconds - val_seconds`` of ``log.csv``, which rank 0 writes; the first epoch holds the one-time
costs: the first steps' allocations and, with several processes, building DistributedDataParallel). The medians
over rounds are compared; the wall time of each command (start-up included) is reported beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common import machine
from unetseg.data.synthetic import write_synthetic_dataset


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The options of ``train-throughput``."""
    parser = argparse.ArgumentParser(prog="scale.py train-throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["1x2", "2x1", "1x1"],
                        help="PxT: P processes of T threads each (default: 1x2 2x1 1x1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each arm once per round)")
    parser.add_argument("--images", type=int, default=12, help="synthetic training images")
    parser.add_argument("--size", type=int, default=192, help="side of the images (pixels)")
    parser.add_argument("--patch-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8, help="the global batch, in both arms")
    parser.add_argument("--patches", type=int, default=48, help="patches per epoch")
    parser.add_argument("--work", default=None, help="folder for the data and runs (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the result here")
    return parser.parse_args(argv)


def arm_shape(arm: str) -> tuple[int, int]:
    """(processes, threads each) of an arm ``PxT``."""
    try:
        processes, threads = (int(part) for part in arm.split("x"))
    except ValueError:
        raise SystemExit(f"--arms {arm}: expected PxT, e.g. 2x1 (2 processes of 1 thread)") from None
    return processes, threads


def command(processes: int, data: Path, out: Path, name: str, args: argparse.Namespace) -> list[str]:
    """The training command of one arm: ``unetseg train``, under torchrun for several processes."""
    launcher = [sys.executable, "-m", "unetseg"] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
         "-m", "unetseg"]
    return [*launcher, "-q", "train", "--data", str(data), "--output-dir", str(out), "--name", name,
            "--epochs", "2", "--samples-per-epoch", str(args.patches), "--batch-size", str(args.batch_size),
            "--patch-size", str(args.patch_size), "--norm", "instance", "--val-fraction", "0.1", "--device", "cpu",
            "--no-tune-prediction", "--no-progress", "--seed", "0"]


def run_arm(arm: str, data: Path, out: Path, name: str, args: argparse.Namespace) -> dict:
    """One run of ``arm``; its patches/s in the second epoch and wall seconds."""
    processes, threads = arm_shape(arm)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    done = subprocess.run(command(processes, data, out, name, args), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run {name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    rows = list(csv.DictReader(open(out / name / "log.csv")))
    seconds = float(rows[-1]["seconds"]) - float(rows[-1].get("val_seconds") or 0.0)
    return {"arm": arm, "processes": processes, "threads_each": threads, "train_seconds": round(seconds, 3),
            "patches_per_s": round(args.patches / seconds, 3), "wall_seconds": round(wall, 1)}


def measure(args: argparse.Namespace, work: Path) -> dict:
    """The interleaved rounds of the arms; the runs and the median patches/s of each."""
    data = write_synthetic_dataset(work / "data", args.images, args.size, args.size, seed=3)
    runs: list[dict] = []
    for r in range(args.rounds):
        for arm in args.arms:
            runs.append({"round": r + 1, **run_arm(arm, data, work / "runs", f"r{r}_{arm}", args)})
            print(json.dumps(runs[-1]), flush=True)
    medians = {arm: float(np.median([run["patches_per_s"] for run in runs if run["arm"] == arm]))
               for arm in args.arms}
    return {"runs": runs, "median_patches_per_s": medians,
            "relative_to_first_arm": {arm: round(rate / medians[args.arms[0]], 3) for arm, rate in medians.items()}}


def table(report: dict) -> str:
    """The result as a Markdown table (one row per arm: median and range of patches/s, median wall seconds)."""
    lines = ["| arm | patches/s (median) | range | wall s per run (median) |", "|---|---:|---:|---:|"]
    for arm in report["median_patches_per_s"]:
        runs = [run for run in report["runs"] if run["arm"] == arm]
        rates = [run["patches_per_s"] for run in runs]
        p, t = arm_shape(arm)
        name = f"{p} process{'es' if p > 1 else ''} x {t} thread{'s' if t > 1 else ''}" + \
            (" (torchrun, gloo)" if p > 1 else "")
        lines.append(f"| {name} | {np.median(rates):.2f} | {min(rates):.2f}-{max(rates):.2f} | "
                     f"{np.median([run['wall_seconds'] for run in runs]):.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run ``train-throughput`` (``argv`` may start with the subcommand's name, as ``bench/scale.py`` passes it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train-throughput":
        argv = argv[1:]
    args = parse(argv)
    for arm in args.arms:
        if args.batch_size % arm_shape(arm)[0] or args.patches % args.batch_size:
            raise SystemExit(f"--batch-size {args.batch_size} must divide over the processes of --arms {arm}, and "
                             f"--patches {args.patches} be whole batches")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "settings": vars(args),
                  **measure(args, Path(tmp))}
    print(table(report))
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
