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
