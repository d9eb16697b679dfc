"""ISBI 2012 EM membranes: train on slices 00-24, evaluate on 25-29.

Reports pixel error (1 - pixel accuracy), membrane Dice and IoU, and the Rand error of the cell regions
(1 - Rand F-score, scikit-image's adapted Rand error, regions = 4-connected components of the interior class).
The data is read where it lies (``--data``); the script builds a folder of symbolic links outside the repository.

    python bench/isbi2012.py --data ../shared/data/isbi2012 --epochs 30
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

from common import link_file, machine
from unetseg import Config, Predictor, train
from unetseg.data.layouts import load_folder
from unetseg.metrics import confusion_matrix, segmentation_metrics
from unetseg.metrics.regions import label_regions, rand_error

TRAIN, TEST = range(0, 25), range(25, 30)


def link_split(data: Path, indices: range, dest: Path) -> Path:
    """A DATA folder (images/ + masks/) of symbolic links to the chosen slices."""
    for sub in ("images", "masks"):
        for i in indices:
            link_file(data / "train" / sub / f"{i:02d}.png", dest / sub / f"{i:02d}.png",
                      "expected the ISBI 2012 layout train/images/NN.png, train/masks/NN.png")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/isbi2012")
    parser.add_argument("--model", default="unet_bn")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--samples-per-epoch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--patch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--output", default="bench_runs/isbi2012")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, test_dir = link_split(data, TRAIN, Path(tmp) / "train"), link_split(data, TEST, Path(tmp) / "test")
        config = Config()
        config.model.name, config.model.base_channels = args.model, args.base_channels
        config.data.train, config.data.val_fraction = str(train_dir), 0.0
        tc = config.train
        tc.epochs, tc.samples_per_epoch, tc.batch_size = args.epochs, args.samples_per_epoch, args.batch_size
        tc.patch_size, tc.lr, tc.device = args.patch_size, args.lr, args.device
        tc.output_dir, tc.name = args.output, time.strftime("%Y%m%d-%H%M%S")
        started = time.perf_counter()
        result = train(config, progress=False)
        train_seconds = time.perf_counter() - started
        predictor = Predictor.from_checkpoint(result.last_checkpoint, device=args.device)
        test = load_folder(test_dir, 2)
        total = np.zeros((2, 2), dtype=np.int64)
        rand = []
        for sample in test.samples:
            pred = predictor.predict(sample.image, sample.image_path)
            total += confusion_matrix(pred, sample.labels, 2)
            rand.append(rand_error(label_regions(pred, 1), label_regions(sample.labels, 1))["rand_error"])
    m = segmentation_metrics(total, ["membrane", "interior"])
    report = {
        "pixel_error": 1 - m["pixel_accuracy"],
        "membrane_dice": m["dice"][0],
        "membrane_iou": m["iou"][0],
        "rand_error_mean": float(np.mean(rand)),
        "rand_error_per_slice": rand,
        "train_seconds": round(train_seconds, 1),
        "model": args.model, "base_channels": args.base_channels, "epochs": args.epochs,
        "samples_per_epoch": args.samples_per_epoch, "batch_size": args.batch_size, "patch_size": args.patch_size,
        "device": str(predictor.device), "threads": torch.get_num_threads(), "machine": machine(),
        "run_dir": str(result.run_dir),
    }
    print(json.dumps(report, indent=2))
    (result.run_dir / "isbi2012_test.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
