"""Configuration files: round trip, and errors that name the key."""

from __future__ import annotations

import pytest

from unetseg.config import Config, ConfigError, load_config, save_config, validate


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


def test_ints_accepted_for_floats_and_updated_checks_types():
    config = Config.from_dict({"train": {"lr": 1}})
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    new = config.updated("train", epochs=7, lr=None)
    assert new.train.epochs == 7 and new.train.lr == 1.0
    with pytest.raises(ConfigError, match="train.epochs"):
        config.updated("train", epochs="7")
    with pytest.raises(ConfigError, match="unknown key.*epoch"):
        config.updated("train", epoch=7)
    with pytest.raises(ConfigError, match="unknown section 'trian'"):
        config.updated("trian", epochs=7)


def test_updated_leaves_the_original_untouched():
    config = Config.from_dict({"model": {"options": {"deep_supervision": True}}, "train": {"epochs": 3}})
    before = config.to_dict()
    new = config.updated("train", epochs=9, loss_options={"gamma": 2})
    assert new.train.epochs == 9 and new.train.loss_options == {"gamma": 2}
    assert config.to_dict() == before  # nothing changed in place
    new.model.options["depth"] = 3  # the other sections are copies, not shared
    new.data.train = "elsewhere"
    assert config.model.options == {"deep_supervision": True} and config.data.train == ""


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
    config = Config()
    setattr(getattr(config, section), key, value)
    with pytest.raises(ConfigError, match=fragment):
        validate(config)
    validate(Config())  # the defaults pass


def test_option_bounds_in_words_and_checks():
    from unetseg.config import Option, check_value

    assert Option("h", gt=0).bounds_text() == "> 0"
    assert Option("h", ge=1).bounds_text() == ">= 1"
    assert Option("h", le=5).bounds_text() == "<= 5"
    assert Option("h", ge=0, lt=1).bounds_text() == "in [0, 1)"
    assert Option("h", gt=0, le=1).bounds_text() == "in (0, 1]"
    assert Option("h").bounds_text() == ""
    check_value("s.k", None, Option("h", gt=0))  # None: the default, chosen later
    check_value("s.k", 1, Option("h", ge=0, le=1, choices=(0, 1)))
    with pytest.raises(ConfigError, match=r"^s.k must be in \(0, 1\], got 0$"):
        check_value("s.k", 0, Option("h", gt=0, le=1))
    with pytest.raises(ConfigError, match=r"^s.k='c' is not one of a, b$"):
        check_value("s.k", "c", Option("h", choices=("a", "b")))


def test_option_fields_copy_mutable_defaults_and_need_metadata():
    import dataclasses

    from unetseg.config import TrainConfig, option, option_of

    first, second = TrainConfig(), TrainConfig()
    first.augmentation["elastic"] = False
    assert second.augmentation == {}

    @dataclasses.dataclass
    class Plain:
        size: int = 3
        names: list = option(["a"], help="some names")

    assert Plain().names == ["a"] and Plain().names is not Plain().names
    with pytest.raises(TypeError, match="'size' has no option metadata"):
        option_of(dataclasses.fields(Plain)[0])
