"""Configuration files: round trip, and errors that name the key."""

from __future__ import annotations

import pytest

from unetseg.config import Config, ConfigError, load_config, save_config


def test_yaml_round_trip(tmp_path):
    config = Config()
    config.model.base_channels = 32
    config.data.train = "somewhere"
    config.data.class_names = ["bg", "cell"]
    config.train.lr = 0.01
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("trian: {epochs: 3}", "trian"),
        ("train: {epoch: 3}", "train.*epoch"),
        ("train: {epochs: three}", "train.epochs: expected int"),
        ("train: {epochs: true}", "train.epochs"),
        ("model: {base_channels: 1.5}", "model.base_channels"),
        ("data: {class_names: bg}", "data.class_names: expected a list"),
        ("train: [1, 2]", "train: expected a mapping"),
        ("train: {epochs: [", "not valid YAML"),
    ],
)
def test_bad_files_name_the_key(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_ints_accepted_for_floats_and_override_checks_types():
    config = Config.from_dict({"train": {"lr": 1}})
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    config.override("train", epochs=7, lr=None)
    assert config.train.epochs == 7 and config.train.lr == 1.0
    with pytest.raises(ConfigError, match="train.epochs"):
        config.override("train", epochs="7")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "section, key, value, fragment",
    [
        ("train", "epochs", 0, "train.epochs must be > 0"),
        ("train", "samples_per_epoch", 0, "train.samples_per_epoch must be > 0"),
        ("train", "lr", -1.0, "train.lr must be > 0"),
        ("train", "schedule", "linear", "train.schedule='linear' is not one of"),
        ("train", "monitor", "loss", "train.monitor"),
        ("data", "val_fraction", 1.0, r"data.val_fraction must be in \[0, 1\)"),
        ("data", "normalization", "minmax", "data.normalization"),
    ],
)
def test_value_checks_name_the_key(section, key, value, fragment):
    from unetseg.engine.setup import check_config

    config = Config()
    setattr(getattr(config, section), key, value)
    with pytest.raises(ConfigError, match=fragment):
        check_config(config)
    check_config(Config())  # the defaults pass
