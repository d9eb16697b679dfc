"""Training throughput of `unetseg train` as users run it: pixels per second of the default recipe, against a
baseline version of unetseg, in one session, interleaved (A, B, A, B, ...).

Each run is the real command (``python -m unetseg train``) on real data with nothing but the data, one epoch of a
fixed number of patches and no prediction tuning set; the recipe picks everything else, as for a user. The
baseline is another revision of this repository, checked out once into a git worktree outside it and run with
its own ``src`` on PYTHONPATH (same virtual environment, same machine). Throughput = training patches x patch
pixels / training seconds of the epoch (``seconds - val_seconds`` of ``log.csv``: data loading, augmentation,
forward, backward and optimizer steps; validation left out); the medians over rounds are compared.

    python bench/train_speed.py --baseline 0408b16                  # ISBI 2012 and CTC HeLa, 3 rounds
    python bench/train_speed.py --baseline 0408b16 --arms new new:--norm=batch new:--num-workers=1
    python bench/train_speed.py --baseline 0408b16 --quick          # smoke test: tiny epochs, 1 round

Arms: ``baseline`` (the baseline revision's defaults), ``new`` (this checkout's defaults) and ``new:FLAGS`` (this
checkout with extra ``unetseg train`` flags, ``=`` between a flag and its value, ``,`` between flags).
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
from pathlib import Path

import numpy as np
import yaml

from common import link_file, machine

ROOT = Path(__file__).resolve().parents[1]
DATA = {"isbi": ROOT.parent / "shared/data/isbi2012", "ctc_fluo": ROOT.parent / "shared/data/ctc_fluo_n2dl_hela"}


def baseline_src(revision: str) -> Path:
    """The ``src`` folder of ``revision`` in a git worktree under the temporary folder (made once, reused)."""
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"unetseg-baseline-{commit}"
    if not tree.is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True,
                       capture_output=True)
    return tree / "src"


def training_data(dataset: str, tmp: Path) -> Path:
    """The training folder of ``dataset``: ISBI slices 00-24 linked into a folder layout, or the CTC dataset as
    it lies (the layout is detected)."""
    if dataset == "ctc_fluo":
        return DATA[dataset]
    for i in range(25):
        for sub in ("images", "masks"):
            link_file(DATA[dataset] / "train" / sub / f"{i:02d}.png", tmp / "isbi" / sub / f"{i:02d}.png")
    return tmp / "isbi"


def run_arm(arm: str, src: Path, data: Path, out: Path, samples: int) -> dict:
    """One ``unetseg train`` run of ``arm``; its training seconds, patch size, batch, norm and pixels/s."""
    flags = [f.replace("=", " ", 1).split(" ") for f in arm.split(":", 1)[1].split(",")] if ":" in arm else []
    cmd = [sys.executable, "-m", "unetseg", "-q", "train", "--data", str(data), "--epochs", "1",
           "--samples-per-epoch", str(samples), "--no-tune-prediction", "--no-progress",
           "--output-dir", str(out), "--name", "run", *[part for flag in flags for part in flag]]
    env = {**os.environ, "PYTHONPATH": str(src)}
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    row = next(csv.DictReader(open(out / "run" / "log.csv")))
    config = yaml.safe_load(open(out / "run" / "config.yaml"))
    patch = config["train"]["patch_size"]
    seconds = float(row["seconds"]) - float(row.get("val_seconds") or 0.0)
    return {"train_seconds": seconds, "wall_seconds": wall, "patch": patch, "batch": config["train"]["batch_size"],
            "norm": config["model"]["norm"], "pixels_per_s": samples * patch * patch / seconds}


def measure(arms: list[str], srcs: dict[str, Path], data: Path, samples: int, rounds: int, tmp: Path) -> dict:
    """Every arm ``rounds`` times, interleaved; the runs of each arm and their median pixels/s."""
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in arms:
            out = tmp / f"{arm.replace(':', '_').replace('-', '').replace('=', '_').replace(',', '_')}_{r}"
            runs[arm].append(run_arm(arm, srcs[arm], data, out, samples))
            print(json.dumps({"round": r, "arm": arm, **runs[arm][-1]}), flush=True)
    return {arm: {"median_pixels_per_s": float(np.median([x["pixels_per_s"] for x in rows])), "runs": rows}
            for arm, rows in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision of the baseline (e.g. a commit)")
    parser.add_argument("--datasets", nargs="+", default=["isbi", "ctc_fluo"], choices=sorted(DATA))
    parser.add_argument("--arms", nargs="+", default=["new"], help="arms besides the baseline (see above)")
    parser.add_argument("--samples", type=int, help="training patches per run (default 80; 8 with --quick)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke test (numbers meaningless)")
    args = parser.parse_args()
    samples = args.samples or (8 if args.quick else 80)
    rounds = args.rounds or (1 if args.quick else 3)
    arms = ["baseline", *args.arms]
    srcs = {arm: baseline_src(args.baseline) if arm == "baseline" else ROOT / "src" for arm in arms}
    report: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "baseline": args.baseline,
                    "samples": samples, "rounds": rounds, "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            data = training_data(dataset, Path(tmp))
            result = measure(arms, srcs, data, samples, rounds, Path(tmp) / dataset)
            base = result["baseline"]["median_pixels_per_s"]
            for arm in arms:
                result[arm]["ratio_to_baseline"] = round(result[arm]["median_pixels_per_s"] / base, 3)
            report["datasets"][dataset] = result
    print_table(report)
    print(json.dumps(report))


def print_table(report: dict) -> None:
    """Median pixels/s of every arm and its ratio to the baseline, per dataset."""
    print(f"\n{report['machine']}, {report['date']}, baseline {report['baseline']}, {report['samples']} patches "
          f"per run, medians of {report['rounds']} interleaved rounds\n")
    print("| dataset | arm | norm | patch x batch | training pixels/s | x baseline |\n|---|---|---|---|---|---|")
    for dataset, result in report["datasets"].items():
        for arm, r in result.items():
            first = r["runs"][0]
            print(f"| {dataset} | {arm} | {first['norm']} | {first['patch']} x {first['batch']} | "
                  f"{r['median_pixels_per_s']:,.0f} | {r['ratio_to_baseline']:.2f} |")


if __name__ == "__main__":
    main()
