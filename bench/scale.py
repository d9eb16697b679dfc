"""Scale benchmarks: how unetseg's costs grow with the data. One command with subcommands:

    python bench/scale.py train-memory                       # peak memory of `unetseg train`, 1x and 8x the images
    python bench/scale.py train-memory --images 24 --factor 8 --size 1024 --cache-size 0.25
    python bench/scale.py train-memory --pythonpath /tmp/base/src --no-cache-flag   # another revision's code
    python bench/scale.py train-throughput ...               # bench/scale_train.py, when it exists
    python bench/scale.py predict-... ...                    # bench/scale_predict.py, when it exists

``train-memory`` writes ``N`` and ``factor x N`` synthetic RGB training images of one size (nuclei images tiled to
the size, each with its own flips and shifts, masks of the nuclei), and a fixed validation folder of two small
images, then runs the real command (``python -m unetseg train``) on each, one epoch of a fixed number of patches
without prediction tuning, and reads the peak resident memory of that process from the operating system
(``os.wait4``: the child's ``ru_maxrss``, which includes loader processes it waited for, if any). The ratio of the
two peaks tells whether training memory grows with the number of images. ``--pythonpath`` runs another revision
of the package (e.g. a git worktree's ``src``) with the same virtual environment.

Other subcommands are dispatched by name: ``train-throughput`` to ``main(argv)`` of ``bench/scale_train.py`` and
``predict-*`` to ``main(argv)`` of ``bench/scale_predict.py`` (``argv`` starts with the subcommand), so each lives
in its own file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from common import machine
from unetseg.data.io import write_png
from unetseg.data.synthetic import make_nuclei_image

HERE = Path(__file__).resolve().parent

#: subcommands that live in their own file: (how the name matches, the module in bench/)
DISPATCHED: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda name: name == "train-throughput", "scale_train"),
    (lambda name: name.startswith("predict-"), "scale_predict"),
)


def tiled_image(rng: np.random.Generator, size: int, tiles: list[tuple[np.ndarray, np.ndarray]]
                ) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image of ``size`` x ``size`` and its {0, 255} mask, made of the nuclei ``tiles`` (image, instances),
    each placed with a random flip and shift, the channels with their own gains."""
    side = tiles[0][0].shape[0]
    n = -(-size // side)
    grey = np.zeros((n * side, n * side), np.uint8)
    mask = np.zeros_like(grey)
    for y in range(n):
        for x in range(n):
            image, inst = tiles[int(rng.integers(len(tiles)))]
            flip = (slice(None, None, rng.choice([1, -1])), slice(None, None, rng.choice([1, -1])))
            shift = tuple(int(s) for s in rng.integers(side, size=2))
            grey[y * side:(y + 1) * side, x * side:(x + 1) * side] = np.roll(image[flip], shift, (0, 1))
            mask[y * side:(y + 1) * side, x * side:(x + 1) * side] = np.roll(inst[flip] > 0, shift, (0, 1)) * 255
    gains = rng.uniform(0.6, 1.0, 3)
    rgb = np.clip(grey[:size, :size, None] * gains, 0, 255).astype(np.uint8)
    return rgb, mask[:size, :size]


def write_images(root: Path, count: int, size: int, seed: int, start: int = 0) -> Path:
    """``count`` tiled RGB images of ``size`` and their masks in ``root/images`` and ``root/masks`` (folder layout),
    named from ``start``; the content depends on ``seed`` and the index alone."""
    tiles_rng = np.random.default_rng(seed)
    tiles = [make_nuclei_image(tiles_rng, 128, 128) for _ in range(8)]
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        image, mask = tiled_image(np.random.default_rng([seed, i]), size, tiles)
        write_png(root / "images" / f"img_{i:05d}.png", image)
        write_png(root / "masks" / f"img_{i:05d}.png", mask)
    return root


def link_images(source: Path, dest: Path, count: int) -> Path:
    """A folder-layout dataset ``dest`` of links to the first ``count`` images (and masks) of ``source``."""
    for sub in ("images", "masks"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / sub).iterdir())[:count]:
            os.symlink(path, dest / sub / path.name)
    return dest


def peak_memory(command: list[str], env: dict[str, str], log: Path) -> dict[str, float | int]:
    """Run ``command`` (its output to ``log``); its peak resident memory in MiB (``os.wait4``), wall seconds and
    exit code."""
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "seconds": round(time.perf_counter() - started, 1),
            "exit_code": proc.returncode}


def train_command(data: Path, val: Path, out: Path, name: str, args: argparse.Namespace) -> list[str]:
    """``python -m unetseg train`` on ``data`` with the benchmark's fixed settings."""
    command = [sys.executable, "-m", "unetseg", "train", "--data", str(data), "--val-data", str(val),
               "--output", str(out), "--name", name, "--epochs", "1", "--samples-per-epoch", str(args.patches),
               "--batch-size", str(args.batch_size), "--patch-size", str(args.patch_size), "--base-channels", "8",
               "--device", "cpu", "--no-tune-prediction", "--no-progress", "--seed", "0"]
    if args.cache_size is not None:
        command += ["--cache-size", str(args.cache_size)]
    return command


def train_memory(argv: Sequence[str]) -> dict:
    """The ``train-memory`` subcommand: peak memory of ``unetseg train`` for N and factor x N images."""
    parser = argparse.ArgumentParser(prog="scale.py train-memory", description=train_memory.__doc__)
    parser.add_argument("--images", type=int, default=24, help="N, the training images of the smaller run")
    parser.add_argument("--factor", type=int, default=8, help="the larger run has factor x N images")
    parser.add_argument("--size", type=int, default=1024, help="side of every image (pixels)")
    parser.add_argument("--patches", type=int, default=48, help="training patches (one epoch)")
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cache-size", type=float, default=None,
                        help="GiB of prepared images a run keeps (--cache-size; not given: the run's default)")
    parser.add_argument("--pythonpath", default=None, help="run the package found here (e.g. another revision's "
                                                            "src) instead of the installed one")
    parser.add_argument("--work", default=None, help="folder for the data and runs, kept (its data are reused by "
                                                      "a later call with the same sizes); default: a temporary one")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(args.pythonpath).resolve()), env.get("PYTHONPATH", "")])
    found = subprocess.run([sys.executable, "-c", "import unetseg; print(unetseg.__file__)"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        data = work / f"data-{args.images}x{args.factor}-{args.size}"
        if not (data / "done").is_file():
            write_images(data / "large", args.images * args.factor, args.size, seed=1)
            link_images(data / "large", data / "small", args.images)
            write_images(data / "val", 2, 256, seed=2)
            (data / "done").write_text("")
        runs = Path(tempfile.mkdtemp(prefix="runs-", dir=work))
        rows = []
        for name, folder, count in (("1x", "small", args.images),
                                    (f"{args.factor}x", "large", args.images * args.factor)):
            command = train_command(data / folder, data / "val", runs, name, args)
            result = peak_memory(command, env, runs / f"{name}.log")
            if result["exit_code"] != 0:
                raise SystemExit(f"unetseg train on {count} images failed:\n{(runs / f'{name}.log').read_text()}")
            rows.append({"run": name, "images": count, **result})
            print(json.dumps(rows[-1]), flush=True)
    report = {"machine": machine(), "package": found, "size": args.size, "patches": args.patches,
              "patch_size": args.patch_size, "batch_size": args.batch_size, "cache_size": args.cache_size,
              "runs": rows, "ratio": round(rows[1]["peak_rss_mib"] / rows[0]["peak_rss_mib"], 2)}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


#: the subcommands of this file
SUBCOMMANDS: dict[str, Callable[[Sequence[str]], object]] = {"train-memory": train_memory}


def main(argv: Sequence[str] | None = None) -> None:
    """Run the subcommand named first in ``argv`` (default: the command line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in SUBCOMMANDS and not argv[0].startswith("-"):
        for matches, module in DISPATCHED:
            if matches(argv[0]):
                if not (HERE / f"{module}.py").is_file():
                    raise SystemExit(f"{argv[0]}: bench/{module}.py, which runs it, is not there")
                sys.path.insert(0, str(HERE))
                importlib.import_module(module).main(argv)
                return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("subcommand", choices=[*SUBCOMMANDS, "train-throughput", "predict-..."])
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the subcommand's options (--help for them)")
    args = parser.parse_args(argv[:1])
    SUBCOMMANDS[args.subcommand](argv[1:])


if __name__ == "__main__":
    main()
