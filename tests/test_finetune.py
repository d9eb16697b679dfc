"""Fine-tuning (``train --init CHECKPOINT``): a new run that starts from a trained network's weights, the output layer
re-initialised for other classes, the encoder frozen for the first epochs, conflicts refused, and an exact resume."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from unetseg import Callback, Config, train
from unetseg.checkpoint import Checkpoint, load_checkpoint
from unetseg.cli.main import build_parser
from unetseg.cli.options import config_from_args
from unetseg.config import ConfigError, validate
from unetseg.data.io import read_image, write_png
from unetseg.data.normalize import Normalization
from unetseg.engine.finetune import encoder_parameters, head_keys
from unetseg.engine.plan import DataFacts, plan_run
from unetseg.models import create_model

from conftest import tiny_config

CPU = torch.device("cpu")
ENCODER = ("inc.", "downs.0.")  # the encoder of a depth-2 U-Net: the levels above the bottleneck (downs.1)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny binary unet_bn (base_channels 4, depth 2, batch norm) trained for 2 epochs on synthetic nuclei."""
    from unetseg.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("pretrained")
    data = write_synthetic_dataset(root / "data", 8, 48, 48, seed=5)
    config = tiny_config(data, root / "runs", epochs=2)
    config.train.tune_prediction = False
    return train(config, progress=False).run_dir


def finetune_config(data: Path, out: Path, init: Path, epochs: int = 2) -> Config:
    """A fine-tuning run of the tiny training settings with no model option set: the network comes from ``init``."""
    config = tiny_config(data, out, epochs=epochs)
    config.model = Config().model
    config.train.init, config.train.tune_prediction, config.train.seed = str(init), False, 3
    return config


class Weights(Callback):
    """Copies of the network's parameters at the start and after every epoch."""

    def __init__(self) -> None:
        self.start: dict[str, torch.Tensor] = {}
        self.epochs: list[dict[str, torch.Tensor]] = []
        self.requires_grad: dict[str, bool] = {}

    def on_start(self, run, state):
        self.start = {k: v.detach().clone() for k, v in run.model.state_dict().items()}

    def on_epoch_end(self, run, state, row):
        self.epochs.append({k: p.detach().clone() for k, p in run.model.named_parameters()})

    def on_end(self, run, state):
        self.requires_grad = {k: p.requires_grad for k, p in run.model.named_parameters()}


def three_class_data(source: Path, dest: Path) -> Path:
    """The synthetic nuclei with three classes: background, nucleus interior, nucleus border."""
    from skimage.segmentation import find_boundaries

    for path in sorted((source / "images").iterdir()):
        instances = read_image(source / "labels" / path.name)
        mask = (instances > 0).astype(np.uint8)
        mask[find_boundaries(instances, mode="inner") & (instances > 0)] = 2
        write_png(dest / "images" / path.name, read_image(path))
        write_png(dest / "masks" / path.name, mask)
    return dest


def test_a_new_run_starts_with_exactly_the_checkpoint_weights(tiny_data, tmp_path, pretrained):
    weights = Weights()
    result = train(finetune_config(tiny_data, tmp_path, pretrained), progress=False, callbacks=[weights])
    best = load_checkpoint(pretrained / "best.safetensors")
    assert weights.start.keys() == best.model_state.keys()
    assert all(torch.equal(weights.start[k], best.model_state[k]) for k in best.model_state)
    assert result.run_dir != pretrained and [r["epoch"] for r in result.history] == [1, 2]  # a new run
    resolved = yaml.safe_load((result.run_dir / "config.yaml").read_text())["model"]
    # the checkpoint's network, not the recipe's default (base_channels 32, instance norm for batches of 2)
    assert (resolved["name"], resolved["base_channels"], resolved["depth"], resolved["norm"]) == \
        ("unet_bn", 4, 2, "batch")
    recipe = yaml.safe_load((result.run_dir / "recipe.yaml").read_text())
    assert recipe["train.init"]["value"] == str(pretrained / "best.safetensors")
    assert recipe["train.init"]["reason"].startswith(f"a unet_bn (depth 2, base_channels 4, norm batch, up_mode "
                                                     f"transpose, dropout 0.0) trained for {best.epoch} epoch(s)")
    assert recipe["model.head"]["value"] == "from --init"
    assert recipe["data.normalization"]["value"] == "percentile (image)"
    assert recipe["data.normalization"]["reason"].startswith("kept from --init")
    assert "model.base_channels" not in recipe and "model.norm" not in recipe
    last = load_checkpoint(result.last_checkpoint)
    assert last.run_state["init"] == {"path": str((pretrained / "best.safetensors").resolve()), "epoch": best.epoch,
                                      "reinitialised": []}
    assert load_checkpoint(result.best_checkpoint).run_state["init"]["epoch"] == best.epoch
    assert last.optimizer_state["param_groups"][0]["lr"] != 0  # its own schedule: epoch 2 of 2, cosine
    assert not all(torch.equal(last.model_state[k], best.model_state[k]) for k in best.model_state)  # it trained


def test_other_classes_reinitialise_only_the_output_layer(tiny_data, tmp_path, pretrained, caplog):
    data = three_class_data(tiny_data, tmp_path / "three")
    weights = Weights()
    with caplog.at_level(logging.INFO, logger="unetseg"):
        result = train(finetune_config(data, tmp_path / "runs", pretrained, epochs=1), progress=False,
                       callbacks=[weights])
    best = load_checkpoint(pretrained / "best.safetensors")
    differ = sorted(k for k in best.model_state if weights.start[k].shape != best.model_state[k].shape
                    or not torch.equal(weights.start[k], best.model_state[k]))
    assert differ == ["head.bias", "head.weight"]
    assert tuple(weights.start["head.weight"].shape) == (3, 4, 1, 1)  # 3 softmax outputs instead of 1 sigmoid
    assert "the output layer (head.weight, head.bias) is re-initialised" in caplog.text
    recipe = yaml.safe_load((result.run_dir / "recipe.yaml").read_text())
    assert recipe["model.head"]["value"] == "re-initialised"
    assert "2 classes (background, foreground) in 1 output channel(s), this run 3 (class0, class1, class2) in 3" \
        in recipe["model.head"]["reason"]
    assert load_checkpoint(result.last_checkpoint).run_state["init"]["reinitialised"] == ["head.weight", "head.bias"]


def test_new_class_names_reinitialise_the_head_too(tiny_data, tmp_path, pretrained):
    config = finetune_config(tiny_data, tmp_path, pretrained, epochs=1)
    config.data.class_names = ["background", "nucleus"]
    weights = Weights()
    result = train(config, progress=False, callbacks=[weights])
    best = load_checkpoint(pretrained / "best.safetensors")
    assert not torch.equal(weights.start["head.weight"], best.model_state["head.weight"])
    assert all(torch.equal(weights.start[k], best.model_state[k]) for k in best.model_state if "head" not in k)
    assert "nucleus" in yaml.safe_load((result.run_dir / "recipe.yaml").read_text())["model.head"]["reason"]


def test_the_frozen_encoder_stays_bit_identical_then_trains(tiny_data, tmp_path, pretrained, caplog):
    config = finetune_config(tiny_data, tmp_path, pretrained, epochs=3)
    config.train.freeze_encoder = 2
    weights = Weights()
    with caplog.at_level(logging.INFO, logger="unetseg"):
        train(config, progress=False, callbacks=[weights])
    start = weights.start
    encoder = [k for k in weights.epochs[0] if k.startswith(ENCODER)]
    others = [k for k in weights.epochs[0] if not k.startswith(ENCODER)]
    assert len(encoder) == 12 and any(k.startswith("downs.1.") for k in others)  # the bottleneck trains
    for epoch in (0, 1):  # frozen
        assert all(torch.equal(weights.epochs[epoch][k], start[k]) for k in encoder)
        assert all(not torch.equal(weights.epochs[epoch][k], start[k]) for k in ("head.weight", "downs.1.1.0.0.weight"))
    assert all(not torch.equal(weights.epochs[2][k], start[k]) for k in encoder)  # trained in epoch 3
    assert all(weights.requires_grad.values())  # given back
    assert "the encoder (inc, downs.0: " in caplog.text and "until epoch 2 ends" in caplog.text
    assert "the encoder trains from epoch 3 on" in caplog.text


def test_resuming_a_fine_tuning_run_is_exact_and_does_not_read_init_again(tiny_data, tmp_path, pretrained):
    copy = tmp_path / "pretrained"
    shutil.copytree(pretrained, copy)
    full_config = finetune_config(tiny_data, tmp_path / "full", copy, epochs=3)
    full_config.train.freeze_encoder = 2
    full = train(full_config, progress=False)

    class InterruptAfterFirstEpoch(Callback):
        def on_epoch_end(self, run, state, row):
            if state.epoch == 1:
                raise KeyboardInterrupt

    split_config = finetune_config(tiny_data, tmp_path / "split", copy, epochs=3)
    split_config.train.freeze_encoder = 2
    with pytest.raises(KeyboardInterrupt):
        train(split_config, progress=False, callbacks=[InterruptAfterFirstEpoch()])
    shutil.rmtree(copy)  # the resumed run continues from its own weights: the --init checkpoint is not needed
    resumed = train(resume=tmp_path / "split" / "run", progress=False)
    a = load_checkpoint(full.last_checkpoint)
    b = load_checkpoint(resumed.last_checkpoint)
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state)
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]
    assert b.run_state["init"] == a.run_state["init"] and b.run_state["init"]["path"] == str(
        (copy / "best.safetensors").resolve())
    with pytest.raises(ConfigError, match="train.init cannot change"):
        train(resume=tmp_path / "split" / "run", overrides={"train.init": str(pretrained)}, progress=False)


def run_cli(cli, capsys, argv: list[str]) -> tuple[int, str]:
    code = cli(argv)
    return code, " ".join(capsys.readouterr().err.split())


def test_conflicts_exit_2_with_what_to_do(cli, capsys, tiny_data, tmp_path, pretrained):
    base = ["train", "--data", str(tiny_data), "--output-dir", str(tmp_path / "runs"), "--name", "x", "--device",
            "cpu", "--epochs", "1", "--init", str(pretrained)]
    code, err = run_cli(cli, capsys, base + ["--base-channels", "16"])
    assert code == 2 and f"--init {pretrained} is a unet_bn with base_channels 4; --base-channels 16 cannot " \
                          "change it: leave it out (the network comes from the checkpoint)" in err
    code, err = run_cli(cli, capsys, base + ["--model", "unet", "--norm", "group", "--depth", "2"])
    assert code == 2 and "is a unet_bn with norm batch; --model unet and --norm group cannot change it: leave " \
                         "them out" in err
    code, err = run_cli(cli, capsys, base + ["--model-opt", "deep_supervision=true"])
    assert code == 2 and "with no option deep_supervision; --model-options deep_supervision=True cannot" in err
    code, err = run_cli(cli, capsys, base[:-2] + ["--freeze-encoder", "2"])
    assert code == 2 and "train.freeze_encoder=2 (--freeze-encoder) freezes the encoder weights that --init " \
                         "loads, and train.init is not set" in err
    code, err = run_cli(cli, capsys, base[:-1] + [str(tmp_path / "nowhere")])
    assert code == 2 and f"--init: {tmp_path / 'nowhere'}: checkpoint file not found" in err
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_the_flags_reach_their_keys():
    args = build_parser().parse_args(["train", "--init", "runs/a", "--freeze-encoder", "3"])
    config = config_from_args(args)
    assert config.train.init == "runs/a" and config.train.freeze_encoder == 3
    assert Config().train.init is None and Config().train.freeze_encoder == 0
    config.train.freeze_encoder = -1
    with pytest.raises(ConfigError, match="train.freeze_encoder must be >= 0, got -1"):
        validate(config)


def checkpoint(in_channels: int = 1, normalization: Normalization = Normalization()) -> Checkpoint:
    """An in-memory checkpoint of a binary unet_bn (the planning reads its metadata only)."""
    model = create_model("unet_bn", in_channels=in_channels, num_classes=1, base_channels=4, depth=2)
    return Checkpoint(model.config, 2, ["background", "foreground"], normalization.to_dict(), epoch=7,
                      source="ckpt.safetensors")


def planned(config: Config, init: Checkpoint, channels: int = 1) -> tuple[Config, dict]:
    config.data.train, config.train.init = "DATA", "ckpt.safetensors"
    facts = DataFacts(shapes=((64, 64),) * 10, num_classes=2, channels=channels)
    resolved, choices = plan_run(config, facts, CPU, "fp32", init)
    return resolved, {c.key: c for c in choices}


def test_channels_are_converted_as_prediction_does_or_refused():
    resolved, choices = planned(Config(), checkpoint(in_channels=3), channels=1)
    assert choices["data.channels"].value == 3 and "repeated to 3 channels" in choices["data.channels"].reason
    _, choices = planned(Config(), checkpoint(in_channels=1), channels=3)
    assert "averaged to 1 channel" in choices["data.channels"].reason
    _, choices = planned(Config(), checkpoint(in_channels=1), channels=1)
    assert "data.channels" not in choices
    with pytest.raises(ConfigError, match="--init ckpt.safetensors takes 1-channel images; DATA has 2: give "
                                          r"images with 1 channel\(s\), or train a new network without --init"):
        planned(Config(), checkpoint(in_channels=1), channels=2)


def test_the_normalisation_is_the_checkpoints_unless_set():
    stored = Normalization("zscore", scope="dataset", stats=((3.0, 2.0),))
    resolved, choices = planned(Config(), checkpoint(normalization=stored))
    assert (resolved.data.normalization, resolved.data.normalization_scope) == ("zscore", "dataset")
    assert choices["data.normalization"].value == "zscore (dataset)"
    assert choices["data.normalization"].reason == ("kept from --init: the network was trained on images normalised "
                                                    "this way; its dataset statistics are fitted on the new "
                                                    "training images")
    config = Config()
    config.data.normalization_scope = "image"  # the default: not a choice of the user's
    config.data.normalization = "scale"
    resolved, choices = planned(config, checkpoint(normalization=stored))
    assert (resolved.data.normalization, resolved.data.normalization_scope) == ("scale", "dataset")
    assert choices["data.normalization"].reason == ("set here (--normalization scale); the --init network was "
                                                    "trained with zscore (dataset)")


def test_planning_is_pure_and_takes_the_architecture_whole():
    config = Config()
    config.model.base_channels = 4  # the checkpoint's value: no conflict
    before = config.to_dict()
    resolved, choices = planned(config, checkpoint())
    assert config.to_dict() == {**before, "data": {**before["data"], "train": "DATA"},
                                "train": {**before["train"], "init": "ckpt.safetensors"}}
    assert (resolved.model.name, resolved.model.depth, resolved.model.base_channels, resolved.model.norm,
            resolved.model.up_mode, resolved.model.dropout, resolved.model.options) == \
        ("unet_bn", 2, 4, "batch", "transpose", 0.0, {})
    assert list(choices)[:2] == ["data.val_fraction", "train.init"] and choices["model.head"].value == "from --init"
    again, _ = plan_run(resolved, DataFacts(((64, 64),) * 10, 2, 1), CPU, "fp32", checkpoint())
    assert again == resolved  # planning the resolved config again changes nothing


def test_head_and_encoder_are_found_generically():
    assert head_keys(create_model("unet_bn", num_classes=1, base_channels=4, depth=2).config) == \
        ["head.weight", "head.bias"]
    assert head_keys(create_model("unetpp", base_channels=4, depth=2, deep_supervision=True).config) == \
        ["heads.0.weight", "heads.0.bias", "heads.1.weight", "heads.1.bias"]
    unet = create_model("unet", base_channels=4, depth=3)
    names = [name for name, _ in encoder_parameters(unet)]
    assert {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("downs") else "") for n in names} == \
        {"inc", "downs.0", "downs.1"}  # downs.2 is the bottleneck (the bottom level)
    fusion = create_model("fusionnet", base_channels=4, depth=2)
    assert {n.split(".")[0] for n, _ in encoder_parameters(fusion)} == {"encoders"}  # its bridge is the bottleneck
