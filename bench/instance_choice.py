"""Which instance method each choice rule picks on a trained run's validation images, against what the test set
says is best (the test scores come from the run's ``quality.json``, written by ``bench/quality.py``).

    python bench/instance_choice.py RUN_DIR [RUN_DIR ...] [--data TRAIN_DIR ...]

For each run: the run's own validation images (its configuration's split), its best checkpoint, the test-time
augmentation it chose, and ``tune_prediction`` with the instance method chosen by the adapted Rand error (the
former rule), by AP over IoU 0.5:0.95 and by SEG, each with the consistency check over images or tiles
(:mod:`unetseg.inference.instance_choice`). Prints the validation value of every method under each rule, the
method chosen, and the test AP / SEG of every method.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from unetseg.checkpoint import build_model, load_checkpoint
from unetseg.config import load_config
from unetseg.engine.setup import load_datasets, prepare_data
from unetseg.inference.tune import tune_prediction


def rechoose(run_dir: Path, data_dir: str | None = None) -> dict:
    config = load_config(run_dir / "config.yaml")
    if data_dir:
        config.data.train = data_dir
    data, val = load_datasets(config)
    run = prepare_data(config, data, val)
    best = load_checkpoint(run_dir / "best.safetensors")
    model = build_model(best)
    model.load_state_dict(best.model_state)
    tta = best.prediction.tta
    out = {}
    for metric in ("rand", "ap", "seg"):
        if metric != "rand" and run.val_instances is None:
            continue
        chosen = tune_prediction(model, list(run.val_images), list(run.val_labels), run.num_classes,
                                 list(run.train_labels), torch.device("cpu"), config.train.precision or "fp32",
                                 config.train.monitor, run.ignore_index, instances=run.val_instances, ttas=(tta,),
                                 instance_metric=metric)
        out[metric] = {"chosen": chosen.instances, "validation": chosen.instance_scores}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", action="append", default=[],
                        help="the training folder of each run, in order, where its config's no longer exists ('' "
                             "keeps the config's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for i, run_dir in enumerate(args.runs):
        result = {"run": str(run_dir), "rules": rechoose(run_dir, args.data[i] if i < len(args.data) else None)}
        quality = run_dir / "quality.json"
        if quality.exists():
            q = json.loads(quality.read_text())
            result["test"] = {**{k: v for k, v in q.get("seg", {}).items() if not k.endswith("chosen")},
                              **{k: v for k, v in q["per_image_mean"].items()
                                 if k.startswith("ap_50_95") and not k.endswith("chosen")}}
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
