"""How a trained run's objects depend on the thresholds of the instance step: validation and test side by side.

For a finished run of ``bench/quality.py`` (``dsb``, ``isbi`` or ``ctc_fluo``), the foreground probability of every
validation image (the run's own split, rebuilt from its ``config.yaml``) and every test image is computed once with
the run's chosen test-time augmentation; then each instance method is applied with a grid of foreground thresholds
(the mask is ``probability >= t`` instead of the most probable class) and, for the seeded watershed, of seed
thresholds. Each variant is scored with the metric the run chose its method by (AP 0.5:0.95, SEG or the adapted
Rand error) on the validation images and on the test images, so one can see whether choosing the thresholds on
validation would carry over to the test split.

    python bench/instance_sweep.py isbi RUN_DIR
    python bench/instance_sweep.py dsb RUN_DIR --data ../shared/data/dsb2018
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from quality import CTC_TEST, DEFAULT_DATA, prepare, run_data
from unetseg import Predictor
from unetseg.data.layouts import load_dataset, load_folder
from unetseg.data.masks import IGNORE
from unetseg.inference.instance_choice import InstanceScores, score_methods
from unetseg.inference.postprocess import prediction_objects, remove_small_objects
from unetseg.inference.tune import _labels_per_tta
from unetseg.metrics.regions import label_regions

FOREGROUND = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SEEDS = (0.7, 0.8, 0.9, 0.95, 0.98)


def variants() -> dict[str, tuple[str, float, float]]:
    """name -> (method, foreground threshold, seed threshold)."""
    out = {}
    for t in FOREGROUND:
        out[f"components t={t}"] = ("components", t, 0.9)
        out[f"watershed t={t}"] = ("watershed", t, 0.9)
        for s in SEEDS:
            if s > t:
                out[f"seeded t={t} s={s}"] = ("seeded", t, s)
    return out


def objects(foreground: np.ndarray, variant: tuple[str, float, float], min_size: int) -> np.ndarray:
    """One variant's objects, as the predictor makes them (the class map of a binary model: foreground >= 0.5)."""
    method, t, s = variant
    labels = (foreground >= 0.5).astype(np.uint8)
    if min_size > 1:
        labels = remove_small_objects(labels, min_size)
    return prediction_objects(foreground, labels, method, threshold=t, seed_threshold=s, min_size=min_size)


def validation(run_dir: Path, train_dir: Path, tta: str) -> tuple[list, list, list]:
    """(foreground probabilities, truths, ignored masks) of the run's validation images."""
    rd = run_data(run_dir, train_dir)[1]
    model = Predictor.from_checkpoint(run_dir / "best.safetensors", device="cpu", fold_bn=False).model
    probs = [_labels_per_tta(model, image, torch.device("cpu"), "fp32", (tta,))[f"{tta}_foreground"]
             .astype(np.float32) for image in rd.val_images]
    if rd.val_instances is not None:
        truths = list(rd.val_instances)
    else:
        truths = [label_regions(t, [1]) for t in rd.val_labels]
    ignored = [None if rd.ignore_index is None else t == rd.ignore_index for t in rd.val_labels]
    return probs, truths, ignored


def test(predictor: Predictor, dataset: str, test_dir: Path) -> tuple[list, list, list]:
    if dataset == "ctc_fluo":
        samples = load_dataset(test_dir, "ctc", split=CTC_TEST, truth="gold", training=False).samples
    else:
        samples = load_folder(test_dir, 2, instances=dataset == "dsb").samples
    probs, truths, ignored = [], [], []
    for sample in samples:
        probs.append(1.0 - predictor.predict_proba(sample.image, sample.image_path)[0])
        truths.append(sample.instances if dataset != "isbi" else label_regions(sample.labels, [1]))
        ignored.append(sample.labels == IGNORE if dataset == "ctc_fluo" else None)
    return probs, truths, ignored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=("dsb", "isbi", "ctc_fluo"))
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data")
    args = parser.parse_args()
    data = Path(args.data or DEFAULT_DATA[args.dataset])
    predictor = Predictor.from_checkpoint(args.run_dir / "best.safetensors", device="cpu")
    settings = predictor.settings()
    metric = {"dsb": "ap", "isbi": "rand", "ctc_fluo": "seg"}[args.dataset]
    grid = variants()
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, test_dir = prepare(args.dataset, data, Path(tmp))
        val = validation(args.run_dir, train_dir, settings["tta"])
        tst = test(predictor, args.dataset, test_dir)
    results = {}
    for part, (probs, truths, ignored) in (("val", val), ("test", tst)):
        scores = score_methods(list(grid), lambda i, name: objects(probs[i], grid[name], settings["min_size"]),
                               truths, ignored, metric)
        results[part] = {name: s.overall for name, s in scores.items()}
        results[f"{part}_units"] = {name: s.units for name, s in scores.items()}
    print(f"{'variant':28s} {'val':>8s} {'test':>8s}   ({metric}; chosen method {settings['instances']}, "
          f"tta {settings['tta']}, min_size {settings['min_size']})")
    for name in grid:
        print(f"{name:28s} {results['val'][name]:8.4f} {results['test'][name]:8.4f}")
    (args.run_dir / "instance_sweep.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
