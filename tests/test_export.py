"""ONNX export and the ONNX Runtime backend: numerics against float32 eager PyTorch, dynamic batch and sizes,
metadata, and the command line."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from unetseg import Predictor  # noqa: E402
from unetseg.cli.main import main  # noqa: E402
from unetseg.data.io import read_image  # noqa: E402
from unetseg.data.normalize import Normalization  # noqa: E402
from unetseg.checkpoint import Checkpoint, build_model, load_checkpoint, save_checkpoint  # noqa: E402
from unetseg.export import METADATA_KEY, onnx_metadata, read_onnx_metadata  # noqa: E402
from unetseg.models import create_model  # noqa: E402
from conftest import randomize_weights  # noqa: E402

# Accepted input sides (first, step) and margin of the depth-4 networks (thin, so they run fast), as the U-Net
# paper gives them: the valid network maps 572 = 188 + 16 * 24 to 388, losing 92 pixels a side, and 188 is the
# smallest input (the bottom level is 188 -> 184 -> 92 -> 88 -> 44 -> 40 -> 20 -> 16 -> 8 -> 4 pixels).
# unet_bn (same padding): multiples of 16, output = input.
SIZE_RULES = {"unet": (188, 16, 92), "unet_bn": (16, 16, 0)}
WIDTH = 2  # base_channels: 2, 4, ..., 32 features
CLASS_NAMES = ["background", "nucleus"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """For each network: a checkpoint and its ONNX export written by ``unetseg export``."""
    out = tmp_path_factory.mktemp("export")
    files = {}
    for seed, name in enumerate(SIZE_RULES):
        model = randomize_weights(create_model(name, base_channels=WIDTH, depth=4), seed)
        ckpt = out / f"{name}.safetensors"
        save_checkpoint(ckpt, Checkpoint(model_config=model.config, num_classes=2, class_names=CLASS_NAMES,
                                         normalization=Normalization("zscore").to_dict(), run_config={}, epoch=7,
                                         model_state=model.state_dict()))
        target = out / name / f"{name}.onnx"
        assert main(["export", str(ckpt), str(target)]) == 0
        files[name] = (ckpt, target)
    return files


@pytest.mark.parametrize("name", list(SIZE_RULES))
def test_onnx_runtime_matches_float32_eager_at_dynamic_batch_and_sizes(exported, name):
    ckpt, path = exported[name]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # one self-contained file, no temporaries
    onnx.checker.check_model(str(path), full_check=True)
    assert b"site-packages" not in path.read_bytes()  # no stack traces with this machine's paths
    model = build_model(load_checkpoint(ckpt))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch_dim, channels, height, width = session.get_inputs()[0].shape
    assert channels == 1 and all(isinstance(d, str) for d in (batch_dim, height, width))  # symbolic, not fixed
    first, step, margin = SIZE_RULES[name]
    gen = torch.Generator().manual_seed(3)
    for batch, kh, kw in ((1, 0, 0), (3, 2, 5), (2, 9, 1)):
        x = torch.randn(batch, 1, first + kh * step, first + kw * step, generator=gen)
        with torch.no_grad():
            ref = model(x).numpy()
        out = session.run(None, {"image": x.numpy()})[0]
        assert out.shape == ref.shape == (batch, 2, x.shape[2] - 2 * margin, x.shape[3] - 2 * margin)
        assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), name


def test_metadata_round_trips(exported):
    for name, (ckpt_path, path) in exported.items():
        ckpt = load_checkpoint(ckpt_path)
        meta = read_onnx_metadata(path)
        raw = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert METADATA_KEY in raw
        assert meta["model_config"] == ckpt.model_config and meta["model_config"]["name"] == name
        assert meta["class_names"] == CLASS_NAMES and meta["num_classes"] == 2 and meta["epoch"] == 7
        assert Normalization.from_dict(meta["normalization"]) == Normalization("zscore")
        assert meta["activation"] == "softmax" and meta["logit_channels"] == 2 and meta["in_channels"] == 1
        first, step, margin = SIZE_RULES[name]
        assert (meta["input"]["min_side"], meta["input"]["side_step"], meta["input"]["margin"]) == (first, step, margin)
        assert meta["source"] == ckpt_path.name
        config = dict(meta["model_config"])
        rebuilt = create_model(config.pop("name"), **config)  # the metadata alone rebuilds the architecture
        rebuilt.load_state_dict(ckpt.model_state)  # strict: every weight has its place


@pytest.mark.parametrize("name,tile,tta", [("unet", 24, "flips"), ("unet_bn", 16, "flips"), ("unet_bn", None, "none")])
def test_onnxruntime_backend_predicts_like_torch_float32(exported, name, tile, tta):
    ckpt, path = exported[name]
    image = np.random.default_rng(4).integers(0, 255, (53, 71), dtype=np.uint8)
    options = dict(device="cpu", tile=tile, tta=tta, batch_size=3)
    torch_probs = Predictor.from_checkpoint(ckpt, precision="fp32", **options).predict_proba(image)
    predictor = Predictor.from_checkpoint(ckpt, backend="onnxruntime", onnx_model=path, **options)
    assert predictor.precision == "fp32"
    ort_probs = predictor.predict_proba(image)
    labels = torch_probs.argmax(0)
    assert 0.05 < labels.mean() < 0.95  # both classes present: the comparison is not vacuous
    assert np.abs(ort_probs - torch_probs).max() <= 1e-4
    assert (ort_probs.argmax(0) == labels).mean() >= 0.999


def test_cli_predict_with_the_onnxruntime_backend(exported, tmp_path):
    # the network is exported in memory here (the test above runs a file written by unetseg export)
    ckpt, _ = exported["unet"]
    image = tmp_path / "in" / "noise.png"
    image.parent.mkdir()
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (61, 40), dtype=np.uint8)).save(image)
    outs = {}
    for backend in ("torch", "onnxruntime"):
        outs[backend] = tmp_path / backend
        assert main(["predict", "--checkpoint", str(ckpt), "--input", str(image), "--output", str(outs[backend]),
                     "--backend", backend, "--precision", "fp32", "--tta", "rot", "--device", "cpu"]) == 0
    a, b = read_image(outs["torch"] / image.name), read_image(outs["onnxruntime"] / image.name)
    assert a.shape == (61, 40) and 0.05 < (a > 0).mean() < 0.95
    assert (a == b).mean() >= 0.999


def test_backend_option_errors(exported, tmp_path, capsys):
    ckpt, _ = exported["unet_bn"]
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                 "--backend", "onnxruntime", "--precision", "bf16"]) == 2
    assert "--precision bf16" in capsys.readouterr().err
    with pytest.raises(ValueError, match="onnxruntime backend"):
        Predictor.from_checkpoint(ckpt, device="cpu", backend="onnxruntime", precision="bf16")
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; registered: torch, onnxruntime"):
        Predictor.from_checkpoint(ckpt, device="cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="unet.onnx: exported from model"):
        Predictor.from_checkpoint(ckpt, device="cpu", backend="onnxruntime", onnx_model=exported["unet"][1])
    with pytest.raises(ValueError, match="onnxruntime backend .* compile=True"):
        Predictor.from_checkpoint(ckpt, device="cpu", backend="onnxruntime", compile=True)
    with pytest.raises(ValueError, match="needs backend='onnxruntime'"):
        Predictor.from_checkpoint(ckpt, device="cpu", onnx_model=exported["unet_bn"][1])


def test_onnxruntime_backend_takes_the_cpu_and_float32_for_auto(exported):
    ckpt, path = exported["unet_bn"]
    predictor = Predictor.from_checkpoint(ckpt, backend="onnxruntime", onnx_model=path)  # device, precision: auto
    assert predictor.device.type == "cpu" and predictor.precision == "fp32"
    assert predictor.settings()["backend"] == "onnxruntime"


def test_metadata_without_a_checkpoint_uses_the_default_class_names():
    model = create_model("unet_bn", base_channels=WIDTH, depth=2)
    meta = onnx_metadata(model)
    assert meta["num_classes"] == 2 and meta["class_names"] == ["background", "foreground"]
    assert "epoch" not in meta and meta["normalization"] is None
    three = onnx_metadata(create_model("unet_bn", base_channels=WIDTH, depth=2, num_classes=3))
    assert three["num_classes"] == 3 and three["class_names"] == ["class0", "class1", "class2"]


def test_export_errors_name_the_file(exported, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "missing.safetensors"
    assert main(["export", str(missing), str(tmp_path / "a.onnx")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    assert main(["export", str(junk), str(tmp_path / "a.onnx")]) == 2
    assert "junk.safetensors" in capsys.readouterr().err
    ckpt, _ = exported["unet"]
    assert main(["export", str(ckpt), str(tmp_path / "a.onnx"), "--size", "45"]) == 2
    assert "size 45" in capsys.readouterr().err
    assert main(["export", str(ckpt), str(tmp_path / "a.pt")]) == 2
    assert "a.pt" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the package were not installed
    assert main(["export", str(ckpt), str(tmp_path / "a.onnx")]) == 2
    assert "pip install unetseg[onnx]" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*.tmp"))
