"""The command line generated from the configuration fields: metadata complete, flags unique, old command lines
parsed as before, help listing every flag, and the checks driven by the metadata."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from unetseg.cli import main as cli_main
from unetseg.cli.options import config_from_args, dest_of, options_from_args
from unetseg.compilation import compile_unavailable_reason
from unetseg.config import (Config, ConfigError, DataConfig, DemoConfig, EvaluateConfig, ExportConfig, InspectConfig,
                            ListModelsConfig, ModelConfig, PredictConfig, TrainCommandConfig, TrainConfig, field_types,
                            flags_of, option_of, validate, validate_predict)
from unetseg.data.layouts import LAYOUTS
from unetseg.inference.postprocess import INSTANCE_METHODS
from unetseg.losses import LOSS_CHOICES
from unetseg.models.blocks import NORMS
from unetseg.optim.optimizers import OPTIMIZERS
from unetseg.optim.schedules import SCHEDULES

ALL_TYPES = (ModelConfig, DataConfig, TrainConfig, TrainCommandConfig, PredictConfig, EvaluateConfig, InspectConfig,
             ExportConfig, DemoConfig, ListModelsConfig)
FIELDS = [(t, f) for t in ALL_TYPES for f in dataclasses.fields(t)]
FIELD_IDS = [f"{t.SECTION}.{f.name}" for t, f in FIELDS]
#: the fields whose primary flag is not ``--`` + the key with ``-`` for ``_`` (ambiguous or reading badly)
NAMED_FLAGS = {"model.name": "--model", "model.num_classes": "--model-num-classes",
               "model.options": "--model-options", "data.train": "--data", "data.val": "--val-data"}


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli_main.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def parse(argv: list[str]) -> argparse.Namespace:
    return cli_main.build_parser().parse_args(argv)


@pytest.mark.parametrize("options_type, field", FIELDS, ids=FIELD_IDS)
def test_every_field_has_help_and_a_flag_or_position(options_type, field):
    meta = option_of(field)
    assert len(meta.help) > 10 and not meta.help.endswith(".")
    assert meta.positional or flags_of(field)
    for flag in flags_of(field):
        assert flag.startswith("--") and flag == flag.lower() and "_" not in flag
    if meta.choices is not None:
        assert len(list(meta.choices)) > 0
        if field.default not in (None, dataclasses.MISSING):
            assert field.default in meta.choices  # the default is accepted


def test_primary_flag_is_the_key_unless_named():
    for options_type, field in FIELDS:
        key = f"{options_type.SECTION}.{field.name}"
        flags = flags_of(field)
        if flags:
            assert flags[0] == NAMED_FLAGS.get(key, "--" + field.name.replace("_", "-")), key


@pytest.mark.parametrize("command", sorted(cli_main.COMMANDS))
def test_every_argument_is_generated_from_a_field_and_flags_are_unique(command):
    module = cli_main.COMMANDS[command]
    expected = {dest_of(t, f.name) for t in module.OPTIONS for f in dataclasses.fields(t)}
    actions = [a for a in subparsers()[command]._actions if not isinstance(a, argparse._HelpAction)]
    assert sorted(a.dest for a in actions) == sorted(expected)  # nothing written by hand, nothing missing
    flags = [flag for t in module.OPTIONS for f in dataclasses.fields(t) for flag in flags_of(f)]
    assert len(flags) == len(set(flags)), sorted(f for f in flags if flags.count(f) > 1)


def test_choices_come_from_the_registries():
    choices = {f"{t.SECTION}.{f.name}": option_of(f).choices for t, f in FIELDS}
    assert choices["train.optimizer"] is OPTIMIZERS and choices["train.schedule"] is SCHEDULES
    assert choices["train.loss"] is LOSS_CHOICES and choices["model.norm"] is NORMS
    assert tuple(choices["data.layout"]) == ("auto", *LAYOUTS) == tuple(choices["inspect.layout"])
    assert tuple(choices["predict.instances"]) == ("auto", *INSTANCE_METHODS)


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "inspect", "export", "demo", "models"])
def test_help_lists_every_flag(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as info:
        cli_main.main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for options_type in cli_main.COMMANDS[command].OPTIONS:
        for field in dataclasses.fields(options_type):
            meta = option_of(field)
            assert (meta.metavar if meta.positional else flags_of(field)[0]) in out
            for flag in flags_of(field)[1:]:
                assert flag in out
            if field_types(options_type)[field.name] is bool:  # booleans also list their negation
                assert "--no-" + flags_of(field)[0][2:] in out
            assert meta.help.split(";")[0][:30] in " ".join(out.split())


OLD_TRAIN = [
    "train", "--data", "D", "--layout", "folder", "--mask-suffix", "_m", "--colormap", "c.yaml", "--split", "train",
    "--normalization", "zscore", "--normalization-scope", "dataset", "--val-data", "V", "--val-fraction", "0.3",
    "--model", "unet", "--base-channels", "8", "--depth", "3", "--model-opt", "deep_supervision=true",
    "--model-opt", "widths=[1, 2]", "--num-classes", "3", "--ignore-index", "255", "--epochs", "5",
    "--batch-size", "2", "--patch-size", "64", "--samples-per-epoch", "10", "--no-tune-prediction", "--lr", "0.01",
    "--optimizer", "sgd", "--schedule", "poly", "--loss", "focal", "--loss-opt", "gamma=2", "--weight-map",
    "--w0", "8", "--sigma", "3", "--aug", "elastic=false", "--aug", "noise=0.3", "--foreground-fraction", "0.5",
    "--no-augment", "--seed", "7", "--device", "cpu", "--precision", "fp32", "--compile", "--workers", "2",
    "--output", "out", "--name", "r", "--no-progress", "--resume", "RUN", "--show-augmentations", "a.png",
]


def test_old_train_command_line_gives_the_same_config():
    args = parse(OLD_TRAIN)
    expected = Config(
        model=ModelConfig(name="unet", depth=3, base_channels=8, options={"deep_supervision": True, "widths": [1, 2]}),
        data=DataConfig(train="D", layout="folder", mask_suffix="_m", colormap="c.yaml", split="train", val="V",
                        val_fraction=0.3, num_classes=3, ignore_index=255, normalization="zscore",
                        normalization_scope="dataset"),
        train=TrainConfig(epochs=5, batch_size=2, patch_size=64, samples_per_epoch=10, optimizer="sgd", lr=0.01,
                          schedule="poly", tune_prediction=False, loss="focal", loss_options={"gamma": 2},
                          weight_map=True, weight_map_w0=8.0, weight_map_sigma=3.0, augment=False,
                          augmentation={"elastic": False, "noise": 0.3}, foreground_fraction=0.5, seed=7,
                          device="cpu", precision="fp32", compile=True, num_workers=2, output_dir="out", name="r"),
    )
    assert config_from_args(args) == expected
    assert options_from_args(args, TrainCommandConfig) == TrainCommandConfig(
        resume="RUN", show_augmentations="a.png", progress=False)
    assert config_from_args(parse(["train", "--time-budget", "2.5"])).train.time_budget == 2.5


def test_no_flags_give_the_defaults():
    assert config_from_args(parse(["train"])) == Config()
    assert options_from_args(parse(["train"]), TrainCommandConfig) == TrainCommandConfig()


def test_new_flags_reach_their_keys():
    args = parse(["train", "--weight-map-w0", "4", "--num-workers", "1", "--output-dir", "o", "--model-options",
                  "a=1", "--loss-options", "b=2", "--augmentation", "blur=true", "--norm", "group", "--up-mode",
                  "bilinear", "--dropout", "0.1", "--model-num-classes", "1", "--class-names", "bg", "cell",
                  "--percentile-low", "2", "--percentile-high", "98", "--weight-decay", "0.01", "--momentum", "0.9",
                  "--warmup-epochs", "2", "--monitor", "mean_iou", "--no-compile", "--augment",
                  "--truth", "gold+silver", "--no-annotated-regions", "--channel", "0", "2", "--plane", "3",
                  "--init", "runs/a", "--freeze-encoder", "2"])
    config = config_from_args(args)
    assert config.model == ModelConfig(norm="group", up_mode="bilinear", dropout=0.1, num_classes=1,
                                       options={"a": 1})
    assert config.data == DataConfig(class_names=["bg", "cell"], percentile_low=2.0, percentile_high=98.0,
                                     truth="gold+silver", annotated_regions=False, channel=[0, 2], plane=3)
    assert config.train == TrainConfig(weight_map_w0=4.0, num_workers=1, output_dir="o", loss_options={"b": 2},
                                       augmentation={"blur": True}, weight_decay=0.01, momentum=0.9,
                                       warmup_epochs=2, monitor="mean_iou", compile=False, augment=True,
                                       init="runs/a", freeze_encoder=2)


def test_flags_are_laid_over_the_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {options: {a: 1, b: 2}}\n"
                    "train: {epochs: 3, lr: 0.1, augment: false, augmentation: {elastic: false}}\n")
    config = config_from_args(parse(["train", "--config", str(path), "--epochs", "4", "--aug", "noise=0.3",
                                     "--model-opt", "a=5"]))
    assert config.train.epochs == 4 and config.train.lr == 0.1 and config.train.augment is False
    assert config.train.augmentation == {"elastic": False, "noise": 0.3}  # KEY=VALUE adds to the file's mapping
    assert config.model.options == {"a": 5, "b": 2}
    assert config_from_args(parse(["train", "--config", str(path), "--augment"])).train.augment is True


@pytest.mark.parametrize("item", ["novalue", "=3", "x=[1, 2"])
def test_bad_key_value_exits_2_naming_the_flag(item, capsys):
    with pytest.raises(SystemExit) as info:
        parse(["train", "--aug", item])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--augmentation/--aug" in err and repr(item) in err


def test_bad_choice_on_the_command_line_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        parse(["train", "--optimizer", "lbfgs"])
    assert info.value.code == 2 and "lbfgs" in capsys.readouterr().err


def test_old_command_lines_of_the_other_subcommands():
    args = parse(["predict", "--checkpoint", "c.safetensors", "--input", "a.png", "dir", "--output", "o",
                  "--overlay", "--device", "cpu", "--tile", "96", "--overlap", "0.5", "--blending", "constant",
                  "--tta", "d4", "--batch-size", "2", "--precision", "fp32", "--backend", "torch", "--block", "512",
                  "--halo", "32", "--min-size", "5", "--fill-holes", "--instances", "seeded", "--probabilities"])
    assert options_from_args(args, PredictConfig) == PredictConfig(
        "c.safetensors", ["a.png", "dir"], "o", overlay=True, device="cpu", tile=96, overlap=0.5,
        blending="constant", tta="d4", batch_size=2, precision="fp32", block=512, halo=32, min_size=5,
        fill_holes=True, instances="seeded", probabilities=True)
    args = parse(["evaluate", "--pred", "p", "--truth", "t", "--num-classes", "3", "--ignore-index", "255",
                  "--json", "m.json", "--instances", "--truth-instances", "L"])
    assert options_from_args(args, EvaluateConfig) == EvaluateConfig(
        pred="p", truth="t", num_classes=3, ignore_index=255, json="m.json", instances=True, truth_instances="L")
    args = parse(["inspect", "D", "--layout", "voc", "--json", "f.json", "--num-classes", "21", "--instances",
                  "--mask-suffix", "_m", "--split", "val"])
    assert options_from_args(args, InspectConfig) == InspectConfig("D", "voc", "f.json", 21, True, "_m", "val")
    assert options_from_args(parse(["export", "c", "m.onnx", "--opset", "17", "--size", "96"]), ExportConfig) == \
        ExportConfig("c", "m.onnx", 17, 96)
    assert options_from_args(parse(["demo", "--workdir", "w", "--epochs", "2", "--no-progress"]), DemoConfig) == \
        DemoConfig("w", 2, False)
    assert options_from_args(parse(["models", "--image-size", "256", "--markdown", "--options"]),
                             ListModelsConfig) == ListModelsConfig(256, True, True)


def test_predict_requires_its_paths(capsys):
    with pytest.raises(SystemExit) as info:
        parse(["predict", "--input", "a.png", "--output", "o"])
    assert info.value.code == 2 and "--checkpoint" in capsys.readouterr().err


BAD_VALUES = [
    ("model", "norm", "batchnorm", "model.norm='batchnorm' is not one of none, batch"),
    ("model", "up_mode", "nearest", "model.up_mode='nearest' is not one of transpose, bilinear"),
    ("data", "layout", "tree", "data.layout='tree' is not one of auto"),
    ("data", "normalization", "minmax", "data.normalization='minmax' is not one of percentile"),
    ("data", "normalization_scope", "batch", "data.normalization_scope='batch' is not one of image, dataset"),
    ("data", "val_fraction", 1.0, r"data.val_fraction must be in \[0, 1\), got 1.0"),
    ("data", "val_fraction", -0.1, r"data.val_fraction must be in \[0, 1\), got -0.1"),
    ("train", "epochs", 0, "train.epochs must be > 0, got 0"),
    ("train", "time_budget", -1.0, "train.time_budget must be > 0, got -1.0"),
    ("train", "batch_size", 0, "train.batch_size must be > 0, got 0"),
    ("train", "patch_size", -4, "train.patch_size must be > 0, got -4"),
    ("train", "samples_per_epoch", 0, "train.samples_per_epoch must be > 0, got 0"),
    ("train", "lr", -1, "train.lr must be > 0, got -1"),
    ("train", "lr", 0.0, "train.lr must be > 0, got 0.0"),
    ("train", "weight_map_w0", 0.0, "train.weight_map_w0 must be > 0, got 0.0"),
    ("train", "weight_map_sigma", -2.0, "train.weight_map_sigma must be > 0, got -2.0"),
    ("train", "weight_decay", -0.1, "train.weight_decay must be >= 0, got -0.1"),
    ("train", "warmup_epochs", -1, "train.warmup_epochs must be >= 0, got -1"),
    ("train", "num_workers", -1, "train.num_workers must be >= 0, got -1"),
    ("train", "seed", -3, "train.seed must be >= 0, got -3"),
    ("train", "foreground_fraction", 1.5, r"train.foreground_fraction must be in \[0, 1\], got 1.5"),
    ("train", "optimizer", "x", "train.optimizer='x' is not one of adam, adamw, sgd"),
    ("train", "schedule", "linear", "train.schedule='linear' is not one of cosine, poly, constant"),
    ("train", "loss", "l2", "train.loss='l2' is not one of auto, "),
    ("train", "monitor", "loss", "train.monitor='loss' is not one of foreground_dice, mean_iou"),
    ("train", "precision", "fp16", "train.precision='fp16' is not one of auto, fp32, bf16"),
    ("train", "augmentation", {"elastik": False}, "train.augmentation: .*elastik"),
]


@pytest.mark.parametrize("section, key, value, message", BAD_VALUES, ids=[f"{s}.{k}={v}" for s, k, v, _ in BAD_VALUES])
def test_validate_rejects_bad_values_naming_the_key(section, key, value, message):
    config = Config()
    setattr(getattr(config, section), key, value)
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_validate_accepts_the_edges_and_none():
    config = Config()
    config.data.val_fraction, config.train.foreground_fraction, config.train.weight_decay = 0.0, 1.0, 0.0
    config.model.norm, config.model.up_mode = "instance", "bilinear"
    config.train.time_budget = 0.5
    config.train.epochs = None
    validate(config)
    config.train.epochs = 3
    with pytest.raises(ConfigError, match="train.epochs=3 and train.time_budget=0.5: set one of them"):
        validate(config)


def test_every_bounded_or_choice_field_is_checked():
    """Derived from the metadata: a value just outside each bound, and a name outside each choice, is rejected."""
    for section, section_type in Config.section_types().items():
        for field in dataclasses.fields(section_type):
            meta = option_of(field)
            bad = [meta.gt, meta.ge - 1 if meta.ge is not None else None, meta.lt,
                   meta.le + 1 if meta.le is not None else None]
            bad += ["no such name"] if meta.choices is not None else []
            for value in [v for v in bad if v is not None]:
                config = Config()
                setattr(getattr(config, section), field.name, value)
                with pytest.raises(ConfigError, match=rf"^{section}\.{field.name}"):
                    validate(config)


PREDICT_BAD = [
    ({"block": 100}, r"--block must be a positive multiple of 256 \(got 100\) and --halo >= 0 \(got 64\)"),
    ({"block": 512, "halo": -1}, r"--halo >= 0 \(got -1\)"),
    ({"tile": 0}, r"--tile must be >= 1 \(got 0\)"),
    ({"overlap": 1.0}, r"--overlap in \[0, 1\) \(got 1.0\)"),
    ({"batch_size": 0}, r"--batch-size >= 1 \(got 0\)"),
    ({"backend": "onnxruntime", "precision": "bf16"}, "does not go with --precision bf16"),
    ({"backend": "onnxruntime", "device": "cuda:1"}, "does not go with --device cuda:1"),
    ({"backend": "openvino", "compile": True}, "--backend openvino runs on the CPU; it does not go with --compile"),
    ({"backend": "openvino", "device": "cuda"}, "does not go with --device cuda"),
    ({"tta": "all"}, "predict.tta='all' is not one of none, flips, rot, d4"),
    ({"instances": "blobs"}, "predict.instances='blobs' is not one of auto, components"),
]


@pytest.mark.parametrize("values, message", PREDICT_BAD)
def test_validate_predict(values, message):
    with pytest.raises(ConfigError, match=message):
        validate_predict(PredictConfig("c", ["i"], "o", **values))


def test_validate_predict_accepts_good_options_and_checks_compile():
    validate_predict(PredictConfig("c", ["i"], "o", block=512, halo=0, tile=1, overlap=0.0, backend="onnxruntime"))
    options = PredictConfig("c", ["i"], "o", device="cpu", compile=True)
    reason = compile_unavailable_reason("cpu")
    if reason:
        with pytest.raises(ConfigError, match="--compile: "):
            validate_predict(options)
    else:
        validate_predict(options)
    with pytest.raises(ConfigError, match="does not go with --compile"):
        validate_predict(dataclasses.replace(options, backend="onnxruntime"))
