"""unetseg, nnU-Net v2 and MONAI side by side: the same data, splits, scoring and wall-clock budget, in one run.

    python bench/peers.py setup-nnunet [--venv ../peers/nnunet-venv]      # nnU-Net v2 in its own environment
    python bench/peers.py dsb96 --time-budget 15                           # every tool, one table
    python bench/peers.py isbi --time-budget 15 --tools nnunet monai       # some of them

Datasets as in ``bench/quality.py`` (``dsb96``, ``dsb``, ``isbi``, ``ctc_fluo``), read where they lie. Each tool
gets the same training images and the same validation images (unetseg's own hold-out of the training split,
``split_indices`` with the run's seed and validation fraction) and the same wall-clock budget, whose clock starts
before the tool reads or preprocesses anything; the test images are then predicted with each tool's own
prediction defaults and scored by one function:

- **unetseg**: ``train()`` with nothing but the data and ``--time-budget`` (the default recipe), the checkpoint's
  own prediction settings (test-time augmentation, instance method) chosen on the validation images.
- **nnU-Net v2** (its own virtual environment with the same torch, made by ``setup-nnunet``): its own CLI,
  ``nnUNetv2_plan_and_preprocess -c 2d`` and ``nnUNetv2_train DATASET 2d 0`` with ``splits_final.json`` fold 0 =
  the shared split, on the CPU, with ``nnUNetTrainerWallClock`` (``bench/peers_nnunet_trainer.py``): nnU-Net's
  trainer with its epochs fitted to the deadline; ``nnUNetv2_predict`` (mirroring TTA, its default) with the final
  checkpoint. Not annotated pixels (``ctc_fluo``) are nnU-Net's ``ignore`` label.
- **MONAI**: BasicUNet with the 2D tutorial recipe (``bench/peers_monai.py``).

Objects (for AP, SEG and the Rand error): unetseg's chosen instance method; for nnU-Net and MONAI, which predict
classes only, the 4-connected components of the predicted foreground (what their users do). Metrics as in
``bench/quality.py``. The table and every per-image value go to ``OUTPUT/<dataset>-<time>/peers.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

import quality
from common import machine
from unetseg import Config, Predictor, train
from unetseg.data.layouts import load_dataset, load_folder
from unetseg.data.masks import IGNORE
from unetseg.engine.plan import split_indices, val_fraction_for
from unetseg.metrics import confusion_matrix, segmentation_metrics
from unetseg.metrics.instances import as_instances, drop_ignored_objects, instance_metrics, seg_score
from unetseg.metrics.regions import label_regions, rand_error, variation_of_information

BENCH = Path(__file__).resolve().parent
TOOLS = ("unetseg", "nnunet", "monai")
NNUNET_ID = 901


# -- the shared data: training, validation and test samples

def shared_split(dataset: str, train_dir: Path, seed: int):
    """(training samples, validation samples, test truths) as unetseg's run splits them; test truths are a list of
    (name, image, {truth name: sample}) with ``gold`` and ``silver`` for ``ctc_fluo``."""
    if dataset == "ctc_fluo":
        data = load_dataset(train_dir, "ctc", split=quality.CTC_TRAIN, instances=True)
        gold = load_dataset(train_dir, "ctc", split=quality.CTC_TEST, truth="gold", training=False)
        silver = {s.image_path: s for s in load_dataset(train_dir, "ctc", split=quality.CTC_TEST, truth="silver",
                                                        training=False).samples}
        tests = [(s.name, s.image, {"gold": s, "silver": silver[s.image_path]}) for s in gold.samples]
    else:
        data = load_folder(train_dir, 2, instances=dataset == "dsb")
        test = load_folder(train_dir.parent / "test", 2, instances=dataset == "dsb")
        tests = [(s.name, s.image, {"truth": s}) for s in test.samples]
    n = len(data.samples)
    tr, va = split_indices(n, val_fraction_for(n), seed)
    return [data.samples[i] for i in tr], [data.samples[i] for i in va], tests


# -- scoring: one function for every tool

def score(dataset: str, tests: list, predictions: dict[str, dict[str, np.ndarray]]) -> dict:
    """Every metric of ``predictions`` (name -> {"labels": (H, W) 0/1, "objects": (H, W) instance labels}),
    per image (mean) and over the dataset."""
    rows, totals, seg = [], {}, {}
    for name, _, truths in tests:
        pred = predictions[name]
        row = {"name": name}
        for tname, truth in truths.items():
            cm = confusion_matrix(pred["labels"], truth.labels, 2, ignore_index=IGNORE)
            totals[tname] = totals.get(tname, 0) + cm
            fg = segmentation_metrics(cm, ["background", "foreground"])
            row[f"iou_{tname}"], row[f"dice_{tname}"] = fg["iou"][1], fg["dice"][1]
            row[f"pixel_error_{tname}"] = 1 - fg["pixel_accuracy"]
            if truth.instances is not None:
                kept = drop_ignored_objects(pred["objects"], truth.labels == IGNORE)
                m = instance_metrics(kept, truth.instances)
                row[f"ap_50_95_{tname}"], row[f"ap_50_{tname}"] = m["ap"], m["ap_50"]
            if dataset == "ctc_fluo":
                one = seg_score(pred["objects"], truth.instances)
                total, count = seg.get(tname, (0.0, 0))
                seg[tname] = (total + one["jaccard_sum"], count + one["n_ref"])
            if dataset == "isbi":
                regions, true_regions = pred["objects"], label_regions(truth.labels, 1)
                row["rand_error"] = rand_error(regions, true_regions)["rand_error"]
                row["vi"] = variation_of_information(regions, true_regions)["vi"]
        rows.append(row)
    keys = [k for k in rows[0] if k != "name"]
    summary = {f"{k} (mean)": float(np.nanmean([r[k] for r in rows])) for k in keys}
    for tname, cm in totals.items():
        overall = segmentation_metrics(cm, ["background", "foreground"])
        summary[f"iou_{tname} (dataset)"] = overall["iou"][1]
    for tname, (total, count) in seg.items():
        summary[f"SEG_{tname}"] = total / count if count else float("nan")
    return {"summary": summary, "per_image": rows}


# -- unetseg

def run_unetseg(dataset: str, train_dir: Path, tests: list, budget: float, seed: int, out: Path) -> dict:
    config = Config()
    config.data.train, config.train.time_budget, config.train.seed = str(train_dir), budget, seed
    config.train.output_dir, config.train.name = str(out), "unetseg"
    if dataset == "ctc_fluo":
        config.data.split = quality.CTC_TRAIN
    started = time.perf_counter()
    run_dir = train(config, progress=False).run_dir
    seconds = time.perf_counter() - started
    predictor = Predictor.from_checkpoint(run_dir / "best.safetensors")
    predictions, started = {}, time.perf_counter()
    for name, image, truths in tests:
        path = next(iter(truths.values())).image_path
        probs = predictor.predict_proba(image, path)
        labels = predictor.labels(probs)
        predictions[name] = {"labels": labels, "objects": predictor.objects(probs, labels)}
    return {"predictions": predictions, "train_seconds": seconds, "predict_seconds": time.perf_counter() - started,
            "settings": predictor.settings()}


# -- nnU-Net v2

def setup_nnunet(venv: Path) -> None:
    """nnU-Net v2 from PyPI in its own virtual environment, with this machine's torch pinned, and the wall-clock
    trainer where nnU-Net finds trainers."""
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + [f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run(pip + ["nnunetv2", f"torch=={torch.__version__.split('+')[0]}"], check=True)
    install_trainer(venv)


def install_trainer(venv: Path) -> None:
    found = subprocess.run([str(venv / "bin" / "python"), "-c", "import nnunetv2, os; print(os.path.dirname("
                            "nnunetv2.__file__))"], check=True, capture_output=True, text=True).stdout.strip()
    # beside nnU-Net's own trainer: its search by class name looks there before it imports the subpackages (some
    # of which need torchvision, which has no build for this torch here)
    dest = Path(found) / "training" / "nnUNetTrainer" / "nnUNetTrainerWallClock.py"
    shutil.copyfile(BENCH / "peers_nnunet_trainer.py", dest)


def _grey_or_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W) for a grey image (given as (H, W) or (H, W, 1)), else its first three channels (alpha dropped)."""
    if image.ndim == 2:
        return image
    return image[..., 0] if image.shape[2] == 1 else image[..., :3]


def write_nnunet_raw(raw: Path, train: list, val: list, tests: list) -> tuple[str, dict[str, str]]:
    """nnU-Net's raw dataset: imagesTr/labelsTr (training and validation images), imagesTs (test), dataset.json;
    returns the file ending and the case name of every test image."""
    first = _grey_or_rgb(train[0].image)
    ending = ".png" if first.dtype == np.uint8 else ".tif"
    channels = {"0": "R", "1": "G", "2": "B"} if first.ndim == 3 else {"0": "intensity"}
    labels = {"background": 0, "foreground": 1}
    ignore = any((s.labels == IGNORE).any() for s in train + val)
    if ignore:
        labels["ignore"] = 2
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (raw / sub).mkdir(parents=True, exist_ok=True)

    def save(array: np.ndarray, path: Path) -> None:
        if ending == ".png":
            Image.fromarray(array).save(path)
        else:
            tifffile.imwrite(path, array)
    for i, sample in enumerate(train + val):
        case = f"c{i:04d}"
        save(_grey_or_rgb(sample.image), raw / "imagesTr" / f"{case}_0000{ending}")
        lab = np.where(sample.labels == IGNORE, 2, sample.labels).astype(np.uint8)
        save(lab, raw / "labelsTr" / f"{case}{ending}")
    cases = {}
    for i, (name, image, _) in enumerate(tests):
        cases[name] = f"t{i:04d}"
        save(_grey_or_rgb(image), raw / "imagesTs" / f"{cases[name]}_0000{ending}")
    (raw / "dataset.json").write_text(json.dumps({"channel_names": channels, "labels": labels,
                                                  "numTraining": len(train) + len(val), "file_ending": ending}))
    return ending, cases


def run_nnunet(tests: list, train: list, val: list, budget: float, venv: Path, out: Path, iterations: int) -> dict:
    root = out / "nnunet"
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
           "nnUNet_results": str(root / "results"), "nnUNet_compile": "f", "NNUNET_ITERATIONS": str(iterations)}
    name = f"Dataset{NNUNET_ID}_peers"
    bin_dir = venv / "bin"
    started = time.time()
    env["NNUNET_DEADLINE"] = str(started + budget * 60)
    ending, cases = write_nnunet_raw(root / "raw" / name, train, val, tests)
    log = open(out / "nnunet.log", "w")
    subprocess.run([str(bin_dir / "nnUNetv2_plan_and_preprocess"), "-d", str(NNUNET_ID), "-c", "2d", "-np", "2",
                    "--verify_dataset_integrity"], env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    n_train = len(train)
    split = [{"train": [f"c{i:04d}" for i in range(n_train)],
              "val": [f"c{i:04d}" for i in range(n_train, n_train + len(val))]}]
    (root / "preprocessed" / name / "splits_final.json").write_text(json.dumps(split))
    subprocess.run([str(bin_dir / "nnUNetv2_train"), str(NNUNET_ID), "2d", "0", "-tr", "nnUNetTrainerWallClock",
                    "-device", "cpu"], env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    train_seconds = time.time() - started
    pred_dir, started = root / "predictions", time.time()
    subprocess.run([str(bin_dir / "nnUNetv2_predict"), "-i", str(root / "raw" / name / "imagesTs"), "-o",
                    str(pred_dir), "-d", str(NNUNET_ID), "-c", "2d", "-f", "0", "-tr", "nnUNetTrainerWallClock",
                    "-device", "cpu"], env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    predictions = {}
    for test_name, case in cases.items():
        path = pred_dir / f"{case}{ending}"
        labels = (np.asarray(Image.open(path)) if ending == ".png" else tifffile.imread(path)).astype(np.uint8)
        predictions[test_name] = {"labels": labels, "objects": as_instances(labels == 1)}
    lines = open(out / "nnunet.log").read().splitlines()  # nnU-Net's own log, and the trainer's lines in it
    epochs = sum(1 for line in lines if "Epoch time:" in line)
    fitted = [line.rsplit(", ", 1)[1].split()[0] for line in lines if "iterations per epoch" in line]
    return {"predictions": predictions, "train_seconds": train_seconds, "predict_seconds": time.time() - started,
            "settings": {"epochs": epochs or None, "iterations_per_epoch": int(fitted[-1]) if fitted else iterations}}


# -- MONAI

def file_name(name: str) -> str:
    """A sample's name as one file name (Cell Tracking Challenge names hold their sequence: ``01/t012``)."""
    return name.replace("/", "_")


def write_arrays(folder: Path, train: list, val: list, tests: list) -> None:
    for part, samples in (("train", train), ("val", val)):
        (folder / part).mkdir(parents=True, exist_ok=True)
        for s in samples:
            np.save(folder / part / f"{file_name(s.name)}_image.npy", _channels_last(s.image))
            np.save(folder / part / f"{file_name(s.name)}_labels.npy", s.labels.astype(np.uint8))
    (folder / "test").mkdir(parents=True, exist_ok=True)
    for name, image, _ in tests:
        np.save(folder / "test" / f"{file_name(name)}_image.npy", _channels_last(image))


def _channels_last(image: np.ndarray) -> np.ndarray:
    image = image[..., None] if image.ndim == 2 else image
    return image[..., :3]


def run_monai(tests: list, train: list, val: list, budget: float, out: Path, seed: int) -> dict:
    started = time.time()
    arrays = out / "monai_arrays"
    write_arrays(arrays, train, val, tests)
    deadline = started + budget * 60
    with open(out / "monai.log", "w") as log:
        subprocess.run([sys.executable, str(BENCH / "peers_monai.py"), str(arrays), str(out / "monai"), "--deadline",
                        str(deadline), "--seed", str(seed)], check=True, stdout=log, stderr=subprocess.STDOUT)
    info = json.loads((out / "monai" / "monai.json").read_text())
    predictions = {}
    for name, _, _ in tests:
        labels = np.load(out / "monai" / f"{file_name(name)}.npy")
        predictions[name] = {"labels": labels, "objects": as_instances(labels == 1)}
    train_seconds = time.time() - started - info["predict_seconds"]
    return {"predictions": predictions, "train_seconds": train_seconds, "predict_seconds": info["predict_seconds"],
            "settings": {k: info[k] for k in ("epochs", "steps", "best_val_dice")}}


# -- the table

def table(results: dict[str, dict]) -> str:
    keys = sorted({k for r in results.values() for k in r["scores"]["summary"]})
    tools = list(results)
    lines = ["| metric | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
    for key in keys:
        values = [results[t]["scores"]["summary"].get(key, float("nan")) for t in tools]
        lines.append(f"| {key} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    for key in ("train_seconds", "predict_seconds"):
        lines.append(f"| {key} | " + " | ".join(f"{results[t][key]:.0f}" for t in tools) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=[*sorted(quality.DEFAULT_DATA), "setup-nnunet"])
    parser.add_argument("--data", help="the dataset folder (default ../shared/data/<dataset>)")
    parser.add_argument("--time-budget", type=float, default=15.0, help="minutes per tool (default 15)")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--venv", type=Path, default=Path("../peers/nnunet-venv"), help="nnU-Net's environment")
    parser.add_argument("--nnunet-iterations", type=int, default=25, help="nnU-Net training iterations per epoch")
    parser.add_argument("--output", type=Path, default=Path("bench_runs/peers"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.dataset == "setup-nnunet":
        setup_nnunet(args.venv.resolve())
        return
    if "nnunet" in args.tools:
        install_trainer(args.venv.resolve())  # the trainer of this checkout
    out = (args.output / f"{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True)
    data = Path(args.data or quality.DEFAULT_DATA[args.dataset])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, _ = quality.prepare(args.dataset, data, Path(tmp))
        train_set, val_set, tests = shared_split(args.dataset, train_dir, args.seed)
        for tool in args.tools:
            print(f"{tool}: training for {args.time_budget:g} minutes", flush=True)
            if tool == "unetseg":
                result = run_unetseg(args.dataset, train_dir, tests, args.time_budget, args.seed, out)
            elif tool == "nnunet":
                result = run_nnunet(tests, train_set, val_set, args.time_budget, args.venv.resolve(), out,
                                    args.nnunet_iterations)
            else:
                result = run_monai(tests, train_set, val_set, args.time_budget, out, args.seed)
            result["scores"] = score(args.dataset, tests, result.pop("predictions"))
            results[tool] = result
            print(json.dumps({k: v for k, v in result.items() if k != "scores"} | result["scores"]["summary"],
                             indent=1, default=str), flush=True)
    report = {"dataset": args.dataset, "date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "threads": torch.get_num_threads(), "time_budget_minutes": args.time_budget,
              "train": len(train_set), "val": len(val_set), "test": len(tests), "tools": results}
    (out / "peers.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"\n{args.dataset}: {len(train_set)} training, {len(val_set)} validation, {len(tests)} test images; "
          f"{args.time_budget:g} minutes each; {machine()}\n")
    print(table(results))


if __name__ == "__main__":
    main()
