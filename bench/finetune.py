"""Does a network trained on other nuclei help on a few frames of new data? DSB2018 -> Cell Tracking Challenge HeLa.

1. Pre-training: the default recipe (``unetseg train --data DSB --time-budget M``) on the fixed `train` split of
   ../shared/data/dsb2018 (its README), for ``--pretrain-minutes`` (default 10); or a trained run given with
   ``--pretrained RUN_DIR``.
2. Four frames of sequence 01 of ../shared/data/ctc_fluo_n2dl_hela (default 013 and 052, the nearly fully
   annotated ones, and 029 and 081) with the challenge's silver truth (complete; ``--truth gold`` for the gold),
   as a folder dataset (images: links to the TIFFs; masks: truth > 0; labels: links to the truth) in a temporary
   folder outside the repository.
3. Two runs on those frames with the same budget (``--minutes``, default 2) and the default recipe otherwise:
   fine-tuned (``--init`` the pre-trained run) and from scratch (random weights).
4. Both best checkpoints, with the prediction settings their runs chose, segment the 8 frames of sequence 02 and
   are scored with the challenge's SEG measure on gold and on silver truth (for each reference object the Jaccard
   index of the predicted object covering more than half of it, 0 without one, averaged over the reference
   objects of all frames; partial gold frames count their annotated cells only), and with the foreground IoU
   against the silver truth (pixels of all frames pooled). SEG is computed here from the joint histogram of the
   two label images, and compared with ``unetseg.metrics.seg_score`` where that exists.

A table is printed and a JSON summary written (``--output``/summary-DATE.json)::

    python bench/finetune.py                                             # 10 + 2 + 2 minutes, then scoring
    python bench/finetune.py --pretrained bench_runs/finetune/dsb-DATE   # reuse a pre-trained run
    python bench/finetune.py --pretrain-minutes 0.3 --pretrain-images 16 --minutes 0.2   # quick end-to-end check
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
from unetseg.checkpoint import load_checkpoint, resolve_checkpoint
from unetseg.data.io import read_image, read_instances, write_png

CTC_LAYOUT = "the Cell Tracking Challenge layout: SEQ/tTTT.tif, SEQ_GT/SEG/man_segTTT.tif, SEQ_ST/SEG/man_segTTT.tif"


def link_dsb(data: Path, ids: list[str], dest: Path) -> Path:
    """A folder dataset (images/, masks/, labels/) of symbolic links to the DSB2018 images ``ids``."""
    for sub in ("images", "masks", "labels"):
        for stem in ids:
            link_file(data / sub / f"{stem}.png", dest / sub / f"{stem}.png", "see ../shared/data/dsb2018/README.md")
    return dest


def truth_path(ctc: Path, sequence: str, frame: str, truth: str) -> Path:
    """The instance labels of ``frame`` of ``sequence``: gold (``SEQ_GT/SEG``) or silver (``SEQ_ST/SEG``)."""
    return ctc / f"{sequence}_{'GT' if truth == 'gold' else 'ST'}" / "SEG" / f"man_seg{frame}.tif"


def ctc_folder(ctc: Path, sequence: str, frames: list[str], truth: str, dest: Path) -> Path:
    """A folder dataset of the ``frames`` of ``sequence``: images/tTTT.tif and labels/tTTT.tif link to the frame
    and its ``truth`` instance labels, masks/tTTT.png is the truth's foreground (255)."""
    for frame in frames:
        image, labels = ctc / sequence / f"t{frame}.tif", truth_path(ctc, sequence, frame, truth)
        link_file(image, dest / "images" / image.name, CTC_LAYOUT)
        link_file(labels, dest / "labels" / image.name, CTC_LAYOUT)
        shape = read_image(image).shape[:2]
        write_png(dest / "masks" / f"t{frame}.png", np.where(read_instances(labels, shape) > 0, 255, 0)
                  .astype(np.uint8))
    return dest


def seg_sums(pred: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    """SEG of one image as (sum of the reference objects' Jaccard indices, number of reference objects): a
    reference object R takes the predicted object S with ``|R & S| > |R| / 2`` (at most one can), 0 without."""
    r, p = ref.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    ref_ids, ref_areas = np.unique(r[r > 0], return_counts=True)
    pred_ids, pred_areas = np.unique(p[p > 0], return_counts=True)
    both = (r > 0) & (p > 0)
    if not ref_ids.size or not both.any():
        return 0.0, int(ref_ids.size)
    pairs, inter = np.unique(np.stack([r[both], p[both]]), axis=1, return_counts=True)
    area_r = ref_areas[np.searchsorted(ref_ids, pairs[0])]
    area_p = pred_areas[np.searchsorted(pred_ids, pairs[1])]
    covers = 2 * inter > area_r
    return float((inter[covers] / (area_r[covers] + area_p[covers] - inter[covers])).sum()), int(ref_ids.size)


def library_seg(pred: np.ndarray, ref: np.ndarray) -> tuple[float, int] | None:
    """The same from ``unetseg.metrics.seg_score``, or None in a version without it."""
    try:
        from unetseg.metrics import seg_score
    except ImportError:
        return None
    result = seg_score(pred, ref)
    return float(result["jaccard_sum"]), int(result["n_ref"])


def score(checkpoint: Path, ctc: Path, sequence: str, device: str) -> dict:
    """SEG (gold, silver) and foreground IoU (silver) of ``checkpoint`` on every gold frame of ``sequence``, with the
    prediction settings its run chose (objects: the chosen instance method)."""
    predictor = Predictor.from_checkpoint(checkpoint, device=device)
    sums = {"gold": [0.0, 0], "silver": [0.0, 0]}
    inter = union = 0
    frames, mismatches = [], []
    for path in sorted((ctc / f"{sequence}_GT" / "SEG").glob("man_seg*.tif")):
        frame = path.stem.removeprefix("man_seg")
        image_path = ctc / sequence / f"t{frame}.tif"
        image = read_image(image_path)
        probs = predictor.predict_proba(image, image_path)
        labels = predictor.labels(probs)
        objects = predictor.objects(probs, labels)
        row = {"frame": frame, "objects": int(len(np.unique(objects)) - 1)}
        for truth in sums:
            ref = read_instances(truth_path(ctc, sequence, frame, truth), image.shape[:2])
            jaccard_sum, n_ref = seg_sums(objects, ref)
            sums[truth][0] += jaccard_sum
            sums[truth][1] += n_ref
            row[f"seg_{truth}"], row[f"n_{truth}"] = (jaccard_sum / n_ref if n_ref else float("nan")), n_ref
            other = library_seg(objects, ref)
            if other is not None and (other[1] != n_ref or abs(other[0] - jaccard_sum) > 1e-6 * max(n_ref, 1)):
                mismatches.append(f"{frame} {truth}: here {jaccard_sum:.6f}/{n_ref}, seg_score {other[0]:.6f}/"
                                  f"{other[1]}")
            if truth == "silver":
                inter += int(((labels > 0) & (ref > 0)).sum())
                union += int(((labels > 0) | (ref > 0)).sum())
        frames.append(row)
    return {"seg_gold": sums["gold"][0] / max(sums["gold"][1], 1), "seg_silver": sums["silver"][0] /
            max(sums["silver"][1], 1), "foreground_iou_silver": inter / max(union, 1),
            "reference_objects": {k: v[1] for k, v in sums.items()}, "frames": frames,
            "seg_check": mismatches or seg_check_note()}


def seg_check_note() -> str:
    """What the comparison of :func:`seg_sums` with ``unetseg.metrics.seg_score`` found when nothing differed."""
    available = library_seg(np.zeros((2, 2), int), np.ones((2, 2), int)) is not None
    return "agrees with unetseg.metrics.seg_score on every frame" if available else "seg_score not available"


def run_config(data: Path, minutes: float, name: str, args: argparse.Namespace, init: Path | None = None) -> Config:
    """The default recipe on ``data`` for ``minutes``, from the weights of ``init`` when given."""
    config = Config()
    config.data.train = str(data)
    tc = config.train
    tc.time_budget, tc.device, tc.output_dir, tc.name, tc.seed = minutes, args.device, args.output, name, args.seed
    tc.init = str(init) if init is not None else None
    return config


def pretrain(args: argparse.Namespace, tmp: Path, stamp: str) -> Path:
    """The best checkpoint of the DSB2018 run: the one given (``--pretrained``) or one trained now."""
    if args.pretrained:
        return resolve_checkpoint(args.pretrained)
    data = Path(args.dsb)
    ids = json.loads((data / "split.json").read_text())["train"]
    ids = ids[:args.pretrain_images] if args.pretrain_images else ids
    folder = link_dsb(data, ids, tmp / "dsb")
    return train(run_config(folder, args.pretrain_minutes, f"dsb-{stamp}", args), progress=False).best_checkpoint


def fit(name: str, config: Config, ctc: Path, args: argparse.Namespace) -> dict:
    """Train ``config``, then score its best checkpoint on the scoring sequence."""
    started = time.perf_counter()
    result = train(config, progress=False)
    seconds = time.perf_counter() - started
    scores = score(result.best_checkpoint, ctc, args.score_sequence, args.device)
    out = {**scores, "epochs": len(result.history), "best_epoch": load_checkpoint(result.best_checkpoint).epoch,
           "train_seconds": round(seconds, 1), "run_dir": str(result.run_dir)}
    print(json.dumps({name: {k: v for k, v in out.items() if k != "frames"}}), flush=True)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsb", default="../shared/data/dsb2018", help="the DSB2018 folder (pre-training)")
    parser.add_argument("--ctc", default="../shared/data/ctc_fluo_n2dl_hela", help="the CTC Fluo-N2DL-HeLa folder")
    parser.add_argument("--pretrain-minutes", type=float, default=10.0, help="time budget of the DSB2018 run")
    parser.add_argument("--pretrain-images", type=int, default=0,
                        help="only the first N images of the DSB2018 train split (default: all 536)")
    parser.add_argument("--pretrained", help="a trained run directory or checkpoint instead of pre-training")
    parser.add_argument("--sequence", default="01", help="the CTC sequence to fine-tune on")
    parser.add_argument("--frames", nargs="+", default=["013", "029", "052", "081"], help="its frames")
    parser.add_argument("--truth", choices=("silver", "gold"), default="silver", help="the training truth")
    parser.add_argument("--score-sequence", default="02", help="the CTC sequence to score on (its gold frames)")
    parser.add_argument("--minutes", type=float, default=2.0, help="time budget of each run on the CTC frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", default="bench_runs/finetune", help="run directories and the JSON summary")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stamp, ctc = time.strftime("%Y%m%d-%H%M%S"), Path(args.ctc)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        pretrained = pretrain(args, Path(tmp), stamp)
        pretrain_seconds = round(time.perf_counter() - started, 1)
        frames = ctc_folder(ctc, args.sequence, args.frames, args.truth, Path(tmp) / "ctc")
        results["pretrained_only"] = {**score(pretrained, ctc, args.score_sequence, args.device), "epochs": 0}
        results["fine_tuned"] = fit("fine_tuned", run_config(frames, args.minutes, f"finetune-{stamp}", args,
                                                             pretrained), ctc, args)
        results["from_scratch"] = fit("from_scratch", run_config(frames, args.minutes, f"scratch-{stamp}", args),
                                      ctc, args)
    summary = {"machine": machine(), "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
               "pretrained": str(pretrained), "pretrain_epochs": load_checkpoint(pretrained).epoch,
               "pretrain_seconds": None if args.pretrained else pretrain_seconds, "args": vars(args),
               "results": results}
    Path(args.output).mkdir(parents=True, exist_ok=True)
    path = Path(args.output) / f"summary-{stamp}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(f"\nCTC Fluo-N2DL-HeLa sequence {args.score_sequence} ({len(results['fine_tuned']['frames'])} frames); "
          f"trained on sequence {args.sequence} frames {', '.join(args.frames)} ({args.truth} truth), "
          f"{args.minutes:g} min each; pre-trained: {pretrained} (epoch {summary['pretrain_epochs']})")
    print("| network | epochs | SEG gold | SEG silver | foreground IoU (silver) |")
    print("|---|---|---|---|---|")
    for key, r in results.items():
        print(f"| {key.replace('_', ' ')} | {r['epochs']} | {r['seg_gold']:.4f} | {r['seg_silver']:.4f} | "
              f"{r['foreground_iou_silver']:.4f} |")
    print(f"SEG check: {results['fine_tuned']['seg_check']}")
    print(f"summary: {path}")


if __name__ == "__main__":
    main()
