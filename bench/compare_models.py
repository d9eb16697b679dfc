"""Every registered model trained with the same budget on DSB2018 nuclei, scored on the fixed `test` split.

Images (RGB, alpha dropped) and union masks are resized to SIZE x SIZE as in the published comparison
(pytorch-nested-unet: U-Net 0.839, UNet++ 0.842 IoU at 96x96): bilinear for images, nearest for masks. Training
uses the `train` split only (10% of it held out for choosing the best checkpoint); the scores are on `test`.
The resized copies are written to a temporary folder outside the repository.

    python bench/compare_models.py --data ../shared/data/dsb2018 --size 96 --epochs 8
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
from PIL import Image

from common import machine
from unetseg import Config, Predictor, train
from unetseg.data.layouts import load_folder
from unetseg.data.io import read_image, write_png
from unetseg.engine.evaluate import build_report
from unetseg.models import list_models, model_options

# The narrow variants every model is trained in (trainable on a CPU); fc_kernel 3 lets DeconvNet take 96x96.
WIDTH = {"base_channels": 16, "fc_channels": 256, "fc_kernel": 3}


def resize_split(data: Path, ids: list[str], size: int, dest: Path) -> Path:
    """Write resized images and masks of ``ids`` as a DATA folder (images/ + masks/) under ``dest``."""
    for stem in ids:
        image = read_image(data / "images" / f"{stem}.png")[..., :3]
        mask = read_image(data / "masks" / f"{stem}.png")
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
        mask = np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST))
        write_png(dest / "images" / f"{stem}.png", image)
        write_png(dest / "masks" / f"{stem}.png", mask)
    return dest


def run_model(name: str, train_dir: Path, test_dir: Path, args: argparse.Namespace) -> dict:
    config = Config()
    config.model.name = name
    config.model.options = {k: v for k, v in WIDTH.items() if k in model_options(name)}
    config.data.train, config.data.val_fraction = str(train_dir), 0.1
    tc = config.train
    tc.epochs, tc.batch_size, tc.patch_size, tc.lr, tc.seed = args.epochs, args.batch_size, args.size, args.lr, 0
    tc.output_dir, tc.name, tc.device = args.output, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", args.device
    started = time.perf_counter()
    result = train(config, progress=False)
    seconds = time.perf_counter() - started
    predictor = Predictor.from_checkpoint(result.best_checkpoint, device=args.device)
    test = load_folder(test_dir, 2)
    report = build_report(((s.name, predictor.predict(s.image), s.labels) for s in test.samples), 2)
    return {
        "model": name, "options": config.model.options,
        "parameters": sum(p.numel() for p in predictor.model.parameters()),
        "test_iou_mean_per_image": report["mean_per_image"]["foreground_iou"],
        "test_dice_mean_per_image": report["mean_per_image"]["foreground_dice"],
        "test_iou_dataset": report["dataset"]["foreground_iou"],
        "test_dice_dataset": report["dataset"]["foreground_dice"],
        "seconds_per_epoch": float(np.median([row["seconds"] for row in result.history])),  # median: robust
        "train_seconds": round(seconds, 1),
        "best_epoch": max(result.history, key=lambda r: r["val_foreground_dice"])["epoch"],
        "run_dir": str(result.run_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/dsb2018")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    parser.add_argument("--output", default="bench_runs/compare_models")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = Path(args.data)
    split = json.loads((data / "split.json").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train_dir = resize_split(data, split["train"], args.size, Path(tmp) / "train")
        test_dir = resize_split(data, split["test"], args.size, Path(tmp) / "test")
        for name in args.models or list_models():
            rows.append(run_model(name, train_dir, test_dir, args))
            print(json.dumps(rows[-1]), flush=True)
    summary = {"machine": machine(), "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
               "size": args.size, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "rows": rows}
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / f"summary-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(summary, indent=2))
    print("| model | parameters | test IoU (mean per image) | test Dice (mean per image) | test IoU (dataset) "
          "| s / epoch (median) | best epoch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['parameters']:,} | {r['test_iou_mean_per_image']:.4f} | "
              f"{r['test_dice_mean_per_image']:.4f} | {r['test_iou_dataset']:.4f} | {r['seconds_per_epoch']:.1f} | "
              f"{r['best_epoch']} |")


if __name__ == "__main__":
    main()
