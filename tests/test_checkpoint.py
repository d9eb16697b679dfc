"""Checkpoints: safe format, complete round trip, atomic writes."""

from __future__ import annotations

import pickle

import pytest
import torch

from unetseg.checkpoint import Checkpoint, CheckpointError, build_model, load_checkpoint, save_checkpoint
from unetseg.models import create_model


def make_checkpoint() -> tuple[Checkpoint, torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = create_model("unet_bn", base_channels=4, depth=2, num_classes=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 1, 16, 16)).mean().backward()
    opt.step()
    ckpt = Checkpoint(model_config=model.config, num_classes=2, class_names=["bg", "fg"],
                      normalization={"mode": "percentile", "low": 1.0, "high": 99.8}, run_config={"train": {}},
                      epoch=3, history=[{"epoch": 1, "train_loss": 0.5}], best_score=0.25,
                      model_state=model.state_dict(), optimizer_state=opt.state_dict(),
                      torch_rng_state=torch.get_rng_state())
    return ckpt, model, opt


def test_round_trip(tmp_path):
    ckpt, model, opt = make_checkpoint()
    save_checkpoint(tmp_path / "c.safetensors", ckpt)
    back = load_checkpoint(tmp_path / "c.safetensors")
    assert back.model_config == model.config and back.epoch == 3 and back.history == ckpt.history
    assert back.class_names == ["bg", "fg"] and back.best_score == 0.25
    rebuilt = build_model(back)
    x = torch.randn(1, 1, 16, 16)
    assert torch.equal(rebuilt(x), model.eval()(x))
    assert torch.equal(back.torch_rng_state, ckpt.torch_rng_state)
    opt2 = torch.optim.Adam(rebuilt.parameters(), lr=5.0)
    opt2.load_state_dict(back.optimizer_state)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["lr"] == 1e-3
    for k in s1["state"]:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s1["state"][k][name], s2["state"][k][name])


def test_pickle_files_are_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickled code ran')",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match="evil.safetensors"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "torch.pt")
    with pytest.raises(CheckpointError, match="torch.pt"):
        load_checkpoint(tmp_path / "torch.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    ckpt, _, _ = make_checkpoint()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, ckpt)
    before = path.read_bytes()
    import unetseg.checkpoint as module

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(module, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, ckpt)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary file left


# --- checking what is read: every fault is a CheckpointError naming the file and the key -----------------------

def rewrite(source, target, edit=None, payload_text=None, drop_tensor=None, tensor=None):
    """Copy the checkpoint ``source`` to ``target`` with its JSON payload changed by ``edit(payload)`` (or replaced
    by ``payload_text``), one tensor dropped or one tensor ``(key, value)`` replaced."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    import json

    with safe_open(str(source), framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if edit is not None:
        payload = json.loads(metadata["payload"])
        edit(payload)
        metadata["payload"] = json.dumps(payload)
    if payload_text is not None:
        metadata["payload"] = payload_text
    if drop_tensor is not None:
        del tensors[drop_tensor]
    if tensor is not None:
        tensors[tensor[0]] = tensor[1]
    save_file(tensors, str(target), metadata=metadata)
    return target


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "good.safetensors"
    save_checkpoint(path, make_checkpoint()[0])
    return path


def _set(key, value):
    return lambda payload: payload.__setitem__(key, value)


def _model_option(key, value):
    return lambda payload: payload["model_config"].__setitem__(key, value)


def _three_classes(payload):
    payload["num_classes"], payload["class_names"] = 3, ["a", "b", "c"]


FAULTS = [
    ("bad-json", {"payload_text": "{not json"}, r"'payload' is not valid JSON"),
    ("payload-list", {"payload_text": "[1, 2]"}, r"'payload' must be a JSON object"),
    ("no-classes", {"edit": lambda p: p.pop("class_names")}, r"metadata key 'class_names' is missing"),
    ("no-model", {"edit": lambda p: p.pop("model_config")}, r"metadata key 'model_config' is missing"),
    ("classes-text", {"edit": _set("num_classes", "two")}, r"'num_classes' must be an integer >= 2, got \"two\""),
    ("classes-bool", {"edit": _set("num_classes", True)}, r"'num_classes' must be an integer >= 2, got true"),
    ("one-class", {"edit": _set("num_classes", 1)}, r"'num_classes' must be an integer >= 2, got 1"),
    ("names-count", {"edit": _set("class_names", ["bg"])}, r"'class_names' lists 1 name\(s\) but num_classes is 2"),
    ("names-type", {"edit": _set("class_names", ["bg", 3])}, r"'class_names' must be a list of strings"),
    ("epoch", {"edit": _set("epoch", -1)}, r"'epoch' must be an integer >= 0"),
    ("normalization", {"edit": _set("normalization", {"mode": "magic"})}, r"'normalization' is not valid.*magic"),
    ("prediction", {"edit": _set("prediction", {"tta": 3})}, r"'prediction.tta' must be of type str"),
    ("no-name", {"edit": lambda p: p["model_config"].pop("name")}, r"'model_config' needs a 'name' string"),
    ("unknown-model", {"edit": _model_option("name", "resnet9000")}, r"unknown model 'resnet9000'"),
    ("unknown-option", {"edit": _model_option("wings", 2)}, r"model 'unet_bn' has no option 'wings'"),
    ("bad-option", {"edit": _model_option("depth", "deep")}, r"cannot be built with the options.*depth"),
    ("shape", {"edit": _model_option("base_channels", 8)},
     r"weight model/\S+ has shape \(4, 1, 3, 3\) but the network 'unet_bn' of model_config needs \(8, 1, 3, 3\)"),
    ("missing-weight", {"drop_tensor": "model/head.bias"}, r"weight model/head.bias is missing"),
    ("extra-weight", {"tensor": ("model/spare.weight", torch.zeros(2))}, r"model/spare.weight is not a weight of"),
    ("binary-head-3-classes", {"edit": _three_classes},
     r"num_classes is 3 but the network's head has 1 output channel\(s\), so num_classes must be 2"),
    ("optimizer", {"edit": _set("optimizer", {"param_groups": 3, "scalars": {}})}, r"'optimizer' needs"),
]


@pytest.mark.parametrize("name, change, message", FAULTS, ids=[f[0] for f in FAULTS])
def test_damaged_metadata_is_a_checkpoint_error_naming_file_and_key(saved, tmp_path, name, change, message):
    path = rewrite(saved, tmp_path / f"{name}.safetensors", **change)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "or use another checkpoint" in str(caught.value) or "or another checkpoint" in str(caught.value)


def test_a_k_channel_head_needs_k_classes(tmp_path):
    model = create_model("unet_bn", base_channels=4, depth=2, num_classes=3)
    ckpt = Checkpoint(model_config=model.config, num_classes=4, class_names=list("abcd"),
                      normalization={"mode": "scale"}, model_state=model.state_dict())
    with pytest.raises(CheckpointError, match=r"^checkpoint: num_classes is 4 but the network's head has 3 output "
                                              r"channel\(s\), so num_classes must be 3"):
        build_model(ckpt)
    save_checkpoint(tmp_path / "k.safetensors", ckpt)
    with pytest.raises(CheckpointError, match="k.safetensors: num_classes is 4"):
        load_checkpoint(tmp_path / "k.safetensors")
    ckpt.num_classes, ckpt.class_names = 3, list("abc")
    assert build_model(ckpt).num_classes == 3


def test_build_model_names_the_file_it_was_read_from(saved, tmp_path):
    ckpt = load_checkpoint(saved)
    assert ckpt.source == str(saved)
    ckpt.model_state = {k: v for k, v in ckpt.model_state.items() if not k.startswith("head.")}
    with pytest.raises(CheckpointError, match=rf"^{saved}: weight model/head.\w+ is missing"):
        build_model(ckpt)


def test_truncated_and_foreign_files(saved, tmp_path):
    data = saved.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable safetensors checkpoint"):
        load_checkpoint(tmp_path / "cut.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"), metadata={"format": "other"})
    with pytest.raises(CheckpointError, match="foreign.safetensors: safetensors file without unetseg metadata"):
        load_checkpoint(tmp_path / "foreign.safetensors")


def test_version_1_files_with_an_extra_mapping_are_read(saved, tmp_path):
    def to_version_1(payload):
        payload["extra"] = {key: payload.pop(key) for key in ("best_score", "recipe", "prediction")}
        payload["extra"]["prediction"] = {"tta": "flips", "min_size": 5}

    back = load_checkpoint(rewrite(saved, tmp_path / "v1.safetensors", edit=to_version_1))
    assert back.best_score == 0.25 and back.prediction.tta == "flips" and back.prediction.min_size == 5
    bad = rewrite(saved, tmp_path / "v1bad.safetensors", edit=lambda p: p.update(extra={"best_score": "high"}))
    with pytest.raises(CheckpointError, match="'best_score' must be a number or null"):
        load_checkpoint(bad)


def test_a_run_directory_resolves_to_best_then_last(saved, tmp_path):
    from unetseg.checkpoint import resolve_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(CheckpointError, match=r"run: a folder without a checkpoint \(looked for best.safetensors "
                                              r"and last.safetensors\)"):
        resolve_checkpoint(run)
    (run / "last.safetensors").write_bytes(saved.read_bytes())
    assert resolve_checkpoint(run) == run / "last.safetensors"
    (run / "best.safetensors").write_bytes(saved.read_bytes())
    assert resolve_checkpoint(run) == run / "best.safetensors"
    assert resolve_checkpoint(saved) == saved
    assert load_checkpoint(run).source == str(run / "best.safetensors")
