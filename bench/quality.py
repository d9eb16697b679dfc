"""Out-of-the-box quality on real data: `unetseg train` defaults with a time budget, scored on a fixed test split.

Each dataset is read where it lies (``--data``, default ../shared/data/...); the script builds a temporary folder
outside the repository (symbolic links, or resized copies for ``dsb96``), trains with nothing but the data and
``--time-budget`` set (every other setting comes from the default recipe and is recorded in the run's
``recipe.yaml``), predicts the test images with the checkpoint's own prediction settings and scores them.

    python bench/quality.py dsb96 --time-budget 15   # DSB2018, images and masks resized to 96x96
    python bench/quality.py dsb --time-budget 15     # DSB2018 at full resolution, with instance AP
    python bench/quality.py isbi --time-budget 15    # ISBI 2012, train slices 00-24, score 25-29
    python bench/quality.py ctc_fluo --time-budget 15  # Cell Tracking Challenge Fluo-N2DL-HeLa: train 01, score 02
    python bench/quality.py ctc_fluo --time-budget 15 --set data.annotated_regions=false  # partial frames taught
                                                     # as background (unannotated cells = background)
    python bench/quality.py ctc_fluo --time-budget 15 --set data.truth=silver   # or gold+silver
    python bench/quality.py dsb96 --score RUN_DIR    # score a trained run again
    python bench/quality.py ctc_fluo --score RUN_DIR --checkpoint last.safetensors  # its last epoch instead
    python bench/quality.py isbi --score RUN_DIR --retune  # choose the prediction settings again with this code

Metrics: per image (the mean over test images) and over the dataset (one confusion matrix summed over images):
foreground IoU and Dice, pixel accuracy / error; ``dsb``: instance AP over IoU 0.5:0.05:0.95 and AP@0.5 (objects =
connected components, distance-transform watershed, probability-seeded watershed, and the method the run chose on
its validation set, each at the foreground and seed thresholds the run chose); ``isbi``: adapted Rand error and
variation of information of the cell regions (4-connected components of the predicted interior, and the regions of
the method the run chose); ``ctc_fluo`` (the Cell Tracking Challenge layout read in place, sequence 01 for training,
its 8 frames of sequence 02 for scoring): the challenge's SEG (mean Jaccard over all reference objects of the 8
frames) on the gold truth (partial: only its annotated cells count) and on the silver truth (complete), instance AP
over IoU 0.5:0.05:0.95 and AP@0.5 on silver and on gold (predicted objects lying mostly on unannotated cells left
out), and foreground IoU on silver and on gold (unannotated cells left out), each for every instance method and the
chosen one.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
from PIL import Image

from common import link_file, machine
from unetseg import Config, Predictor, train
from unetseg.checkpoint import build_model, load_checkpoint, save_checkpoint
from unetseg.config.run import load_config
from unetseg.data.layouts import load_dataset, load_folder
from unetseg.data.masks import IGNORE
from unetseg.device import resolve_device
from unetseg.engine.setup import RunData, load_datasets, prepare_data
from unetseg.inference.postprocess import INSTANCE_METHODS
from unetseg.inference.tune import tune_prediction
from unetseg.metrics import confusion_matrix, segmentation_metrics
from unetseg.metrics.instances import drop_ignored_objects, instance_metrics, seg_score
from unetseg.metrics.regions import label_regions, rand_error, variation_of_information
from unetseg.precision import resolve_precision

DEFAULT_DATA = {"dsb96": "../shared/data/dsb2018", "dsb": "../shared/data/dsb2018", "isbi": "../shared/data/isbi2012",
                "ctc_fluo": "../shared/data/ctc_fluo_n2dl_hela"}
CTC_TRAIN, CTC_TEST = "01", "02"  # sequences: train (with its own validation frames) and score


def prepare(dataset: str, data: Path, tmp: Path) -> tuple[Path, Path]:
    """(train folder, test folder) for ``dataset`` under ``tmp`` (``ctc_fluo``: the dataset itself, read in place;
    the sequences are chosen with ``data.split``)."""
    if dataset == "ctc_fluo":
        for sub in (CTC_TRAIN, f"{CTC_TRAIN}_GT/SEG", CTC_TEST, f"{CTC_TEST}_GT/SEG", f"{CTC_TEST}_ST/SEG"):
            if not (data / sub).is_dir():
                raise SystemExit(f"{data / sub}: missing; expected the Cell Tracking Challenge layout (see the "
                                 "dataset's README)")
        return data, data
    if dataset == "isbi":
        for part, indices in (("train", range(0, 25)), ("test", range(25, 30))):
            for i in indices:
                for sub in ("images", "masks"):
                    link_file(data / "train" / sub / f"{i:02d}.png", tmp / part / sub / f"{i:02d}.png")
        return tmp / "train", tmp / "test"
    split = json.loads((data / "split.json").read_text())
    for part in ("train", "test"):
        for stem in split[part]:
            if dataset == "dsb":
                for sub in ("images", "masks", "labels"):
                    link_file(data / sub / f"{stem}.png", tmp / part / sub / f"{stem}.png")
            else:
                resize_pair(data, stem, tmp / part, 96)
    return tmp / "train", tmp / "test"


def resize_pair(data: Path, stem: str, dest: Path, size: int) -> None:
    """The published 96x96 protocol: the RGB image resized with area averaging, the union mask resized the same
    way and thresholded at one half."""
    image = np.asarray(Image.open(data / "images" / f"{stem}.png").convert("RGB"))
    mask = np.asarray(Image.open(data / "masks" / f"{stem}.png")).astype(np.float32) / 255.0
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA) >= 0.5
    for sub, array in (("images", image), ("masks", mask.astype(np.uint8) * 255)):
        (dest / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(dest / sub / f"{stem}.png")


def _iou_dice(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    inter, union, total = np.sum(pred & true), np.sum(pred | true), pred.sum() + true.sum()
    return (1.0 if union == 0 else inter / union), (1.0 if total == 0 else 2 * inter / total)


def predictor_for(checkpoint: Path, device: str) -> Predictor:
    """The predictor of ``checkpoint`` with the prediction settings its run chose: those it holds, or for a
    ``last.safetensors`` (which holds none) those of the ``best.safetensors`` beside it."""
    best = checkpoint.with_name("best.safetensors")
    if checkpoint.name == "best.safetensors" or not best.exists():
        return Predictor.from_checkpoint(checkpoint, device=device)
    chosen = load_checkpoint(best).prediction
    return Predictor.from_checkpoint(checkpoint, device=device,
                                     **(chosen.predictor_options() if chosen is not None else {}))


def score(checkpoint: Path, dataset: str, test_dir: Path, device: str) -> dict:
    """Every metric of ``checkpoint`` on the test folder, per image (mean) and over the dataset."""
    predictor = predictor_for(checkpoint, device)
    test = load_folder(test_dir, 2, instances=dataset == "dsb")
    total = np.zeros((2, 2), dtype=np.int64)
    rows: list[dict] = []
    started = time.perf_counter()
    for sample in test.samples:
        probs = predictor.predict_proba(sample.image, sample.image_path)
        pred = predictor.labels(probs)  # what predictor.predict returns
        total += confusion_matrix(pred, sample.labels, 2)
        iou, dice = _iou_dice(pred == 1, sample.labels == 1)
        row = {"name": sample.name, "iou": iou, "dice": dice, "pixel_error": float(np.mean(pred != sample.labels))}
        if dataset == "dsb":
            for method in INSTANCE_METHODS:
                m = instance_metrics(predictor.objects(probs, pred, method), sample.instances)
                row[f"ap_50_95_{method}"], row[f"ap_50_{method}"] = m["ap"], m["ap_50"]
            row["ap_50_95_chosen"] = row[f"ap_50_95_{predictor.instances}"]
            row["ap_50_chosen"] = row[f"ap_50_{predictor.instances}"]
        if dataset == "isbi":  # regions: the connected components of the predicted interior, and the chosen method
            truth = label_regions(sample.labels, 1)
            for key, regions in (("components", label_regions(pred, 1)), ("chosen", predictor.objects(probs, pred))):
                row[f"rand_error_{key}"] = rand_error(regions, truth)["rand_error"]
                row[f"vi_{key}"] = variation_of_information(regions, truth)["vi"]
        rows.append(row)
    overall = segmentation_metrics(total, ["background", "foreground"])
    keys = [k for k in rows[0] if k != "name"]
    return {
        "per_image_mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
        "dataset": {"foreground_iou": overall["iou"][1], "foreground_dice": overall["dice"][1],
                    "pixel_error": 1 - overall["pixel_accuracy"], "mean_iou": overall["mean_iou"]},
        "images": len(rows), "predict_seconds": round(time.perf_counter() - started, 1),
        "prediction_settings": predictor.settings(), "per_image": rows,
    }


def _foreground(pred: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """(the 2x2 confusion matrix of the foreground, ignored pixels left out; its foreground IoU)."""
    cm = confusion_matrix(pred, labels, 2, ignore_index=IGNORE)
    return cm, segmentation_metrics(cm, ["background", "foreground"])["iou"][1]


def score_ctc(checkpoint: Path, data: Path, device: str) -> dict:
    """SEG, AP and foreground IoU of ``checkpoint`` on the test sequence, against its gold and silver truth."""
    predictor = predictor_for(checkpoint, device)
    truths = {name: load_dataset(data, "ctc", split=CTC_TEST, truth=name, training=False)
              for name in ("gold", "silver")}
    silver = {s.image_path: s for s in truths["silver"].samples}
    totals = {name: np.zeros((2, 2), np.int64) for name in truths}
    seg = {f"{t}_{m}": [0.0, 0] for t in truths for m in (*INSTANCE_METHODS, "chosen")}
    rows: list[dict] = []
    started = time.perf_counter()
    for gold in truths["gold"].samples:
        probs = predictor.predict_proba(gold.image, gold.image_path)
        pred = predictor.labels(probs)
        row: dict = {"name": gold.name}
        for name, truth in (("gold", gold), ("silver", silver[gold.image_path])):
            cm, row[f"iou_{name}"] = _foreground(pred, truth.labels)
            totals[name] += cm
        for method in (*INSTANCE_METHODS, "chosen"):
            objects = predictor.objects(probs, pred, None if method == "chosen" else method)
            for name, truth in (("gold", gold), ("silver", silver[gold.image_path])):
                one = seg_score(objects, truth.instances)
                seg[f"{name}_{method}"][0] += one["jaccard_sum"]
                seg[f"{name}_{method}"][1] += one["n_ref"]
                row[f"seg_{name}_{method}"] = one["seg"]
                kept = drop_ignored_objects(objects, truth.labels == IGNORE)
                m = instance_metrics(kept, truth.instances)
                row[f"ap_50_95_{name}_{method}"], row[f"ap_50_{name}_{method}"] = m["ap"], m["ap_50"]
        rows.append(row)
    keys = [k for k in rows[0] if k != "name"]
    return {
        "seg": {key: total / n if n else None for key, (total, n) in seg.items()},
        "reference_objects": {name: seg[f"{name}_chosen"][1] for name in truths},
        "per_image_mean": {k: float(np.nanmean([r[k] for r in rows])) for k in keys},
        "dataset": {f"foreground_iou_{name}": segmentation_metrics(cm, ["background", "foreground"])["iou"][1]
                    for name, cm in totals.items()},
        "images": len(rows), "predict_seconds": round(time.perf_counter() - started, 1),
        "prediction_settings": predictor.settings(), "per_image": rows,
    }


def run_data(run_dir: Path, train_dir: Path) -> tuple[Config, RunData]:
    """The configuration of a finished run (its ``config.yaml``) and its data as training prepared them: the same
    split into training and validation images, ``train_dir`` standing for the temporary training folder."""
    config = load_config(run_dir / "config.yaml").updated("data", train=str(train_dir))
    return config, prepare_data(config, *load_datasets(config))


def retune(run_dir: Path, train_dir: Path, dataset: str, device: str) -> dict:
    """Choose the prediction settings of a finished run again, as its training would with this code: its validation
    images rebuilt (:func:`run_data`), its best weights; the settings are stored in its ``best.safetensors`` and
    ``prediction.yaml`` (the ones they replace are returned)."""
    config, data = run_data(run_dir, train_dir)
    path = run_dir / "best.safetensors"
    ckpt = load_checkpoint(path)
    before = ckpt.prediction.to_dict() if ckpt.prediction is not None else {}
    torch_device = resolve_device(device)
    ckpt.prediction = tune_prediction(
        build_model(ckpt).to(torch_device), list(data.val_images), list(data.val_labels), data.num_classes,
        data.train_labels, torch_device, resolve_precision(config.train.precision, torch_device),
        config.train.monitor, data.ignore_index, instances=None if data.val_instances is None else
        list(data.val_instances), instance_metric="seg" if dataset == "ctc_fluo" else None)
    save_checkpoint(path, ckpt)
    (run_dir / "prediction.yaml").write_text(yaml.safe_dump(ckpt.prediction.to_dict(), sort_keys=False))
    return before


def training_data(config: Config) -> dict:
    """What the run will train on, as a run's data loader reads it with the configuration (frames, foreground and
    ignored fractions; that ``--set data.truth=...`` reaches that loader is tested in tests/test_ctc.py)."""
    data, _ = load_datasets(config)
    dc = config.data
    labels = np.concatenate([s.labels.ravel() for s in data.samples])
    return {"frames": len(data.samples), "truth": dc.truth or "gold", "annotated_regions": dc.annotated_regions,
            "foreground_fraction": float(np.mean(labels == 1)), "ignored_fraction": float(np.mean(labels == IGNORE))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DEFAULT_DATA))
    parser.add_argument("--data", help="the dataset folder (default ../shared/data/<dataset>)")
    parser.add_argument("--time-budget", type=float, default=15.0, help="training minutes (default 15)")
    parser.add_argument("--output", default="bench_runs/quality")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", metavar="RUN_DIR", help="only score the best checkpoint of a finished run")
    parser.add_argument("--checkpoint", default="best.safetensors",
                        help="the checkpoint of the run to score: best.safetensors (default) or last.safetensors "
                             "(with the prediction settings of best.safetensors; written to quality_last.json)")
    parser.add_argument("--retune", action="store_true",
                        help="with --score: choose the run's prediction settings again with this code first "
                             "(the earlier ones are kept in the report as prediction_before)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=YAML",
                        help="an experiment: override one setting of the recipe, e.g. train.loss=lovasz "
                             "(repeatable; the defaults are what the published numbers use)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = Path(args.data or DEFAULT_DATA[args.dataset])
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, test_dir = prepare(args.dataset, data, Path(tmp))
        train_seconds = cpu_seconds = train_data = None
        before = None
        if args.score:
            run_dir = Path(args.score)
            if args.retune:
                before = retune(run_dir, train_dir, args.dataset, args.device)
        else:
            config = Config()
            config.data.train, config.train.time_budget, config.train.seed = str(train_dir), args.time_budget, args.seed
            config.train.device, config.train.output_dir = args.device, args.output
            config.train.name = f"{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
            if args.dataset == "ctc_fluo":
                config.data.split = CTC_TRAIN
            for item in args.set:
                key, _, value = item.partition("=")
                section, _, name = key.partition(".")
                config = config.updated(section, **{name: yaml.safe_load(value)})
            train_data = training_data(config) if args.dataset == "ctc_fluo" else None
            wall, cpu = time.perf_counter(), time.process_time()
            run_dir = train(config, progress=False).run_dir
            train_seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        checkpoint = run_dir / args.checkpoint
        if args.dataset == "ctc_fluo":
            result = score_ctc(checkpoint, test_dir, args.device)
        else:
            result = score(checkpoint, args.dataset, test_dir, args.device)
    report = {"dataset": args.dataset, "date": time.strftime("%Y-%m-%d"), "machine": machine(), "overrides": args.set,
              "threads": torch.get_num_threads(), "time_budget_minutes": args.time_budget,
              "train_seconds": train_seconds and round(train_seconds, 1),
              "train_cpu_seconds": cpu_seconds and round(cpu_seconds, 1), "run_dir": str(run_dir),
              **({"train_data": train_data} if train_data else {}),
              **({"prediction_before": before} if before is not None else {}), **result}
    name = "quality.json" if args.checkpoint == "best.safetensors" else f"quality_{Path(args.checkpoint).stem}.json"
    name = name.replace(".json", "_retuned.json") if args.retune else name
    (run_dir / name).write_text(json.dumps(report, indent=2) + "\n")
    summary = {k: v for k, v in report.items() if k != "per_image"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
