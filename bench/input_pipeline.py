"""Throughput of the training input pipeline (patches/second) against what a training step consumes.

Reads the DSB2018 `train` split (decoded once and kept in memory, as training does), then times drawing patches
from the training dataset with the default augmentation (flips, rotations, elastic deformation, intensity) and
33% foreground oversampling, with and without weight maps, and one training step of `unet_bn` base 16 on batches
of the same patches, in the same process.

    python bench/input_pipeline.py --data ../shared/data/dsb2018 --patch-size 128
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import machine
from unetseg import Config
from unetseg.data.patches import PatchDataset
from unetseg.engine.setup import build_network, build_training_loss, load_datasets, prepare_data
from weightmap_dsb import link_split


def patches_per_second(dataset: PatchDataset, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        dataset[i]
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/dsb2018")
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--patches", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    data_dir = Path(args.data)
    split = json.loads((data_dir / "split.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:  # open while measuring: training images are read when needed
        config = Config()
        config.data.train = str(link_split(data_dir, split["train"], Path(tmp) / "train"))
        config.data.val_fraction, config.train.weight_map = 0.0, True
        started = time.perf_counter()
        data = prepare_data(config, *load_datasets(config))
        load_seconds = time.perf_counter() - started
        size = args.patch_size
        rows = {"load_and_weight_maps_seconds": round(load_seconds, 1), "images": len(data.train_images)}
        for name, weights in (("patches_per_s", None), ("patches_per_s_with_weight_maps", data.train_weights)):
            dataset = PatchDataset(data.train_images, data.train_labels, size, size, args.patches, True, 0, weights,
                                   None, 0.33)
            patches_per_second(dataset, 20)  # warm-up
            rows[name] = round(patches_per_second(dataset, args.patches), 1)
        config.model.base_channels = 16
        model = build_network(config, data.channels, data.num_classes)
        loss_fn = build_training_loss(config, model.num_classes)
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        dataset = PatchDataset(data.train_images, data.train_labels, size, size, args.batch_size * 12, True, 0)
        batches = [[dataset[i * args.batch_size + j] for j in range(args.batch_size)] for i in range(12)]
        times = []
        for batch in batches:
            x, y = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
            started = time.perf_counter()
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
        rows["training_patches_per_s"] = round(args.batch_size / float(np.median(times[2:])), 1)
        rows.update(machine=machine(), threads=torch.get_num_threads(), patch_size=size, date=time.strftime("%Y-%m-%d"))
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
