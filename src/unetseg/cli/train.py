"""``unetseg train``: train a network on a folder dataset."""

from __future__ import annotations

import argparse

import yaml

from ..config import Config, ConfigError, load_config
from ..engine.preview import preview_augmentations
from ..engine.trainer import train
from ..losses import LOSSES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a network on DATA/images + DATA/masks",
                       description="Train a segmentation network. Options override the --config file.")
    p.add_argument("--data", help="training folder with images/ and masks/")
    p.add_argument("--layout", help="dataset layout: auto (default), folder, dsb2018, nnunet, voc, cityscapes")
    p.add_argument("--mask-suffix", help="folder layout: masks/<stem><SUFFIX>.* pairs images/<stem>.*")
    p.add_argument("--colormap", help="folder layout: YAML/JSON file mapping class index -> [R, G, B] of colour masks")
    p.add_argument("--split", help="voc / cityscapes: the split to train on (default train)")
    p.add_argument("--normalization", choices=["percentile", "zscore", "scale"],
                   help="intensity normalisation (default percentile 1-99.8)")
    p.add_argument("--normalization-scope", choices=["image", "dataset"],
                   help="statistics of each image (default) or of the whole training set (stored in the checkpoint)")
    p.add_argument("--val-data", help="validation folder (default: hold out --val-fraction of --data)")
    p.add_argument("--val-fraction", type=float, help="fraction of --data held out for validation (default 0.2)")
    p.add_argument("--config", help="YAML file with model/data/train sections")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the interrupted run in RUN_DIR exactly")
    p.add_argument("--model", help="registered model name (default unet_bn; unet = the paper's network)")
    p.add_argument("--base-channels", type=int, help="feature maps of the first level (preset default 64)")
    p.add_argument("--depth", type=int, help="number of pooling steps (preset default 4)")
    p.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a further model option, e.g. deep_supervision=true (repeatable; `unetseg models` lists them)")
    p.add_argument("--num-classes", type=int, help="classes in the masks incl. background (default: detect)")
    p.add_argument("--ignore-index", type=int, help="a mask value meaning 'not annotated' (e.g. 255): not trained on")
    p.add_argument("--epochs", type=int, help="epochs (default 50, or fitted to --time-budget; with --resume: a new "
                                              "total, the only option it takes)")
    p.add_argument("--time-budget", type=float, metavar="MINUTES",
                   help="train for this many minutes instead of a number of epochs: the epochs and the learning-rate "
                        "schedule are fitted to it from the measured epoch time")
    p.add_argument("--batch-size", type=int, help="default: about 2 x 256^2 pixels per step (12 x on a GPU)")
    p.add_argument("--patch-size", type=int,
                   help="side of the training patches (output side); default: the median shorter image side, at "
                        "most 256 (512 on a GPU)")
    p.add_argument("--samples-per-epoch", type=int, help="patches per epoch (default: cover the training pixels once)")
    p.add_argument("--no-tune-prediction", action="store_true",
                   help="do not choose test-time augmentation, small-object removal and the instance method on "
                        "the validation set")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    p.add_argument("--schedule", choices=["cosine", "poly", "constant"])
    p.add_argument("--loss", choices=list(LOSSES), help="default auto: CE+Dice (BCE+Dice for binary)")
    p.add_argument("--loss-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a loss option, e.g. class_weights=[1,3] or ignore_index=255 (repeatable)")
    p.add_argument("--weight-map", action="store_true",
                   help="weight the loss with the U-Net border weight map (needs DATA/labels instance labels)")
    p.add_argument("--w0", type=float, help="weight map: border weight w0 (default 10)")
    p.add_argument("--sigma", type=float, help="weight map: border width sigma in pixels (default 5)")
    p.add_argument("--aug", action="append", default=[], metavar="KEY=VALUE",
                   help="augmentation override, e.g. elastic=false, affine=true, noise=0.3 (repeatable; keys: flip, "
                        "rot90, affine, elastic, brightness_contrast, gamma, blur, noise)")
    p.add_argument("--foreground-fraction", type=float,
                   help="share of patches centred on foreground, so rare classes are seen (default 0.33)")
    p.add_argument("--show-augmentations", metavar="PNG",
                   help="write a grid of augmented training patches with their masks to PNG, then stop")
    p.add_argument("--no-augment", action="store_true", help="no flips/rotations")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"],
                   help="auto (default): bf16 autocast where the device has native bfloat16, else fp32")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network (opt-in: the first steps and each new image size compile first)")
    p.add_argument("--workers", type=int, help="data loader worker processes (default 0)")
    p.add_argument("--output", help="folder for run directories (default runs)")
    p.add_argument("--name", help="run directory name (default: a timestamp)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_options(items: list[str], flag: str) -> dict:
    """``KEY=VALUE`` strings to a dict; values are read as YAML (``true``, ``3``, ``[1, 3]``)."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} name=3")
        options[key.strip()] = yaml.safe_load(value)
    return options


def config_from_args(args: argparse.Namespace) -> Config:
    """The configuration file (if any) with the command-line options laid over it."""
    config = load_config(args.config) if args.config else Config()
    options = {**config.model.options, **parse_options(args.model_opt, "--model-opt")}
    loss_options = {**config.train.loss_options, **parse_options(args.loss_opt, "--loss-opt")}
    augmentation = {**config.train.augmentation, **parse_options(args.aug, "--aug")}
    config.override("model", name=args.model, base_channels=args.base_channels, depth=args.depth, options=options)
    config.override("data", train=args.data, val=args.val_data, val_fraction=args.val_fraction,
                    num_classes=args.num_classes, ignore_index=args.ignore_index, layout=args.layout,
                    mask_suffix=args.mask_suffix, split=args.split, colormap=args.colormap,
                    normalization=args.normalization,
                    normalization_scope=args.normalization_scope)
    config.override("train", epochs=args.epochs, batch_size=args.batch_size, patch_size=args.patch_size,
                    samples_per_epoch=args.samples_per_epoch, lr=args.lr, optimizer=args.optimizer,
                    schedule=args.schedule, loss=args.loss, augment=False if args.no_augment else None,
                    seed=args.seed, device=args.device, num_workers=args.workers, output_dir=args.output,
                    name=args.name, loss_options=loss_options, weight_map=True if args.weight_map else None,
                    weight_map_w0=args.w0, weight_map_sigma=args.sigma, augmentation=augmentation,
                    foreground_fraction=args.foreground_fraction, precision=args.precision,
                    time_budget=args.time_budget, compile=True if args.compile else None,
                    tune_prediction=False if args.no_tune_prediction else None)
    return config


def run(args: argparse.Namespace) -> int:
    if args.resume:
        result = train(resume=args.resume, epochs=args.epochs, progress=not args.no_progress)
    elif args.show_augmentations:
        preview_augmentations(config_from_args(args), args.show_augmentations)
        print(f"augmented training patches written to {args.show_augmentations}")
        return 0
    else:
        result = train(config_from_args(args), progress=not args.no_progress)
    print(f"run directory: {result.run_dir}")
    print(f"best checkpoint: {result.best_checkpoint}")
    return 0
