"""Where an ISBI 2012 run's adapted Rand error comes from: splits or merges of the cells, per test slice.

    python bench/rand_breakdown.py RUN_DIR                   # slices 25-29 of ../shared/data/isbi2012/train
    python bench/rand_breakdown.py RUN_DIR --data DIR --checkpoint last.safetensors

Predicts the held-out slices of ``bench/quality.py``'s ISBI protocol with the run's checkpoint and its own
prediction settings, and prints, for the connected components of the predicted cells and for the run's chosen
instance method, the adapted Rand error with its split score (lowered when the prediction splits a true cell) and
merge score (lowered when it merges true cells), per slice and as the mean.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from unetseg.inference.predictor import Predictor
from unetseg.metrics.regions import label_regions, rand_error

TEST_SLICES = range(25, 30)


def scores(predictor: Predictor, data: Path, method: str) -> list[tuple[int, float, float, float]]:
    """(slice, Rand error, split score, merge score) of every test slice with instance ``method``."""
    rows = []
    for i in TEST_SLICES:
        image = np.array(Image.open(data / "images" / f"{i:02d}.png"))
        truth = (np.array(Image.open(data / "masks" / f"{i:02d}.png")) > 0).astype(np.uint8)  # 255 = cell
        probs = predictor.predict_proba(image)
        regions = predictor.objects(probs, predictor.labels(probs), method)
        r = rand_error(regions, label_regions(truth, 1))
        rows.append((i, r["rand_error"], r["rand_split_score"], r["rand_merge_score"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/isbi2012/train"))
    parser.add_argument("--checkpoint", default="best.safetensors")
    args = parser.parse_args()
    predictor = Predictor.from_checkpoint(args.run_dir / args.checkpoint, device="cpu")
    print("| method | slice | adapted Rand error | split score | merge score |\n|---|---|---|---|---|")
    for method in dict.fromkeys(("components", predictor.instances)):
        rows = scores(predictor, args.data, method)
        for i, error, split, merge in rows:
            print(f"| {method} | {i} | {error:.4f} | {split:.4f} | {merge:.4f} |")
        mean = np.mean([row[1:] for row in rows], axis=0)
        print(f"| {method} | mean | {mean[0]:.4f} | {mean[1]:.4f} | {mean[2]:.4f} |")


if __name__ == "__main__":
    main()
