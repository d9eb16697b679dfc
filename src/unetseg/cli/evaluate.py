"""``unetseg evaluate``: metrics tables per image and over the dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import ConfigError
from ..engine.evaluate import evaluate_checkpoint, evaluate_folders, format_report, write_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score predictions against masks",
                       description="Either --pred DIR --truth DIR, or --checkpoint CKPT --data DIR.")
    p.add_argument("--pred", help="folder of predicted label images")
    p.add_argument("--truth", help="folder of true masks (or a DATA folder with masks/)")
    p.add_argument("--checkpoint", help="predict with this checkpoint instead of reading --pred")
    p.add_argument("--data", help="DATA folder (images/ + masks/) to predict and score with --checkpoint")
    p.add_argument("--num-classes", type=int, help="classes incl. background (default: detect from the masks)")
    p.add_argument("--ignore-index", type=int, help="a mask value meaning 'not annotated' (e.g. 255), not scored")
    p.add_argument("--json", help="where to write the JSON report (default: PRED/metrics.json or ./metrics.json)")
    p.add_argument("--device", default="auto")
    p.add_argument("--instances", action="store_true",
                   help="also score objects: AP@0.5, DSB AP 0.5:0.95, F1@0.5, AJI, Rand error, VI, Hausdorff/HD95 "
                        "(predictions: uint16 instance label images, or masks split into connected components)")
    p.add_argument("--truth-instances", metavar="DIR",
                   help="folder of true instance label images (0 = background, e.g. DATA/labels), paired by stem; "
                        "implies --instances (default: connected components of the true masks)")


def run(args: argparse.Namespace) -> int:
    if args.pred and args.truth and not args.checkpoint:
        report = evaluate_folders(args.pred, args.truth, args.num_classes, instances=args.instances,
                                  truth_instances=args.truth_instances, ignore_index=args.ignore_index)
        json_path = Path(args.json or Path(args.pred) / "metrics.json")
    elif args.checkpoint and args.data and not args.pred:
        report = evaluate_checkpoint(args.checkpoint, args.data, args.device, instances=args.instances,
                                     truth_instances=args.truth_instances, ignore_index=args.ignore_index)
        json_path = Path(args.json or "metrics.json")
    else:
        raise ConfigError("give either --pred DIR --truth DIR, or --checkpoint CKPT --data DIR")
    print(format_report(report))
    write_report(report, json_path)
    print(f"metrics written to {json_path}")
    return 0
