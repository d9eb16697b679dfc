"""Does the U-Net border weight map separate touching nuclei? DSB2018 at full resolution, same budget twice.

Trains the same network twice on the fixed `train` split of ../shared/data/dsb2018 (10% of it held out to pick
the best checkpoint), once with the plain loss and once with ``--weight-map`` (w0=10, sigma=5 px; touching nuclei
get a background gap in the training masks), predicts the `test` split at full resolution and scores instances
(connected components of the predicted foreground, 4-connectivity) against the instance labels: AP@0.5 and F1@0.5
(the 2018 Data Science Bowl matching), AP averaged over IoU 0.5:0.05:0.95, aggregated Jaccard index, and the
foreground Dice; each also after growing every predicted object by 1 pixel (skimage's expand_labels, which never
merges objects), which gives back the gap the weighted training teaches. The data is read where it lies, through a
folder of symbolic links outside the repository.

    python bench/weightmap_dsb.py --data ../shared/data/dsb2018 --epochs 20
    python bench/weightmap_dsb.py --score plain=RUN_DIR weight_map=RUN_DIR   # score trained runs again
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage.segmentation import expand_labels

from common import link_file, machine
from unetseg import Config, Predictor, train
from unetseg.data.layouts import load_folder
from unetseg.metrics import confusion_matrix, segmentation_metrics
from unetseg.inference.postprocess import instances_from_semantic
from unetseg.metrics.instances import as_instances, instance_metrics


def link_split(data: Path, ids: list[str], dest: Path) -> Path:
    """A DATA folder (images/, masks/, labels/) of symbolic links to the chosen ids."""
    for sub in ("images", "masks", "labels"):
        for stem in ids:
            link_file(data / sub / f"{stem}.png", dest / sub / f"{stem}.png")
    return dest


def _summary(rows: list[dict], total: np.ndarray) -> dict:
    return {
        "ap_50": float(np.mean([r["ap_50"] for r in rows])),
        "f1_50": float(np.mean([r["f1_50"] for r in rows])),
        "ap_50_95": float(np.mean([r["ap"] for r in rows])),
        "aji": float(np.mean([r["aji"] for r in rows])),
        "foreground_dice": segmentation_metrics(total)["foreground_dice"],
        "objects_true": int(sum(r["n_true"] for r in rows)),
        "objects_pred": int(sum(r["n_pred"] for r in rows)),
    }


def score(checkpoint: Path, test_dir: Path, device: str) -> dict:
    """Instance and pixel metrics of ``checkpoint`` on the test folder, averaged over images (DSB style), for the
    connected components of the prediction, the same components grown by 1 pixel, and the objects of a watershed
    that splits touching nuclei (``unetseg.inference.postprocess.instances_from_semantic``)."""
    predictor = Predictor.from_checkpoint(checkpoint, device=device)
    test = load_folder(test_dir, 2, instances=True)
    rows = {"components": [], "expanded_1px": [], "watershed": []}
    totals = {key: np.zeros((2, 2), dtype=np.int64) for key in rows}
    for sample in test.samples:
        probs = predictor.predict_proba(sample.image)
        components = as_instances(probs.argmax(0) == 1)
        variants = (("components", components), ("expanded_1px", expand_labels(components, 1)),
                    ("watershed", instances_from_semantic(probs[1], "watershed")))
        for key, objects in variants:
            totals[key] += confusion_matrix((objects > 0).astype(np.uint8), sample.labels, 2)
            rows[key].append(instance_metrics(objects, sample.instances))
    return {key: _summary(rows[key], totals[key]) for key in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/dsb2018")
    parser.add_argument("--model", default="unet_bn")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--output", default="bench_runs/weightmap_dsb")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--score", nargs="+", metavar="NAME=RUN_DIR", help="only score the best checkpoints of runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = Path(args.data)
    split = json.loads((data / "split.json").read_text())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        train_dir = link_split(data, split["train"], Path(tmp) / "train")
        test_dir = link_split(data, split["test"], Path(tmp) / "test")
        if args.score:
            for item in args.score:
                key, _, run_dir = item.partition("=")
                results[key] = {**score(Path(run_dir) / "best.safetensors", test_dir, args.device), "run_dir": run_dir}
                print(json.dumps({key: results[key]}), flush=True)
        for weighted in () if args.score else (False, True):
            config = Config()
            config.model.name, config.model.base_channels = args.model, args.base_channels
            config.data.train, config.data.val_fraction = str(train_dir), 0.1
            tc = config.train
            tc.epochs, tc.patch_size, tc.batch_size, tc.lr = args.epochs, args.patch_size, args.batch_size, args.lr
            tc.weight_map, tc.device, tc.output_dir = weighted, args.device, args.output
            tc.name = f"{'weighted' if weighted else 'plain'}-{time.strftime('%Y%m%d-%H%M%S')}"
            started = time.perf_counter()
            result = train(config, progress=False)
            key = "weight_map" if weighted else "plain"
            results[key] = {**score(result.best_checkpoint, test_dir, args.device),
                            "train_seconds": round(time.perf_counter() - started, 1), "run_dir": str(result.run_dir)}
            print(json.dumps({key: results[key]}), flush=True)
    summary = {"machine": machine(), "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
               "model": args.model, "base_channels": args.base_channels, "epochs": args.epochs,
               "patch_size": args.patch_size, "batch_size": args.batch_size, "lr": args.lr, "results": results}
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / f"summary-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(summary, indent=2))
    print("| loss | instances | AP@0.5 | F1@0.5 | AP 0.5:0.95 | AJI | foreground Dice | objects predicted / true |")
    print("|---|---|---|---|---|---|---|---|")
    for key, result in results.items():
        for variant in ("components", "expanded_1px", "watershed"):
            r = result[variant]
            print(f"| {key} | {variant} | {r['ap_50']:.4f} | {r['f1_50']:.4f} | {r['ap_50_95']:.4f} | {r['aji']:.4f} | "
                  f"{r['foreground_dice']:.4f} | {r['objects_pred']} / {r['objects_true']} |")

if __name__ == "__main__":
    main()
