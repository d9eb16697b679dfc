"""The OpenVINO backend: logits against float32 eager PyTorch at dynamic sizes, bfloat16 labels, the Predictor and
the command line against the torch backend, and the errors for options it cannot honour."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

ov = pytest.importorskip("openvino", reason="the openvino backend needs pip install unetseg[openvino]")
onnx = pytest.importorskip("onnx", reason="exporting the network for OpenVINO needs pip install unetseg[onnx]")
pytest.importorskip("onnxscript", reason="exporting the network for OpenVINO needs pip install unetseg[onnx]")

from unetseg import Predictor  # noqa: E402
from unetseg.checkpoint import Checkpoint, build_model, load_checkpoint, save_checkpoint  # noqa: E402
from unetseg.cli.main import main  # noqa: E402
from unetseg.data.io import read_image  # noqa: E402
from unetseg.data.normalize import Normalization  # noqa: E402
from unetseg.export import METADATA_KEY, ExportError  # noqa: E402
from unetseg.inference import openvino as ov_backend  # noqa: E402
from unetseg.inference.backends import BACKENDS  # noqa: E402
from unetseg.inference.openvino import OpenVinoForward  # noqa: E402
from unetseg.models import create_model  # noqa: E402
from unetseg.precision import resolve_precision  # noqa: E402

from conftest import randomize_weights  # noqa: E402

# Float32 tolerance: OpenVINO's CPU kernels (oneDNN) sum the same products in another order and may use other
# convolution algorithms, so each layer differs by rounding (relative ~1e-7 per operation, growing with the fan-in
# and the depth); 1e-4 of the logit scale is far above that yet far below a wrong weight, layout or padding,
# which changes logits at the scale of the logits themselves. It is the bound the ONNX Runtime backend meets.
FP32_TOL = 1e-4
SIZES = [(64, 64), (48, 80)]  # square and non-square; unet_bn at depth 4 takes multiples of 16
BF16_SUPPORTED = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _random_unet_bn(seed: int = 0) -> nn.Module:
    """A thin unet_bn with random weights that make every layer matter (:func:`conftest.randomize_weights`), so
    that the logits depend on the input and label agreement is not vacuous."""
    return randomize_weights(create_model("unet_bn", base_channels=4, depth=4), seed)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """The model, its checkpoint and its ONNX file written by ``unetseg export``."""
    out = tmp_path_factory.mktemp("openvino")
    model = _random_unet_bn()
    ckpt = out / "unet_bn.safetensors"
    save_checkpoint(ckpt, Checkpoint(model_config=model.config, num_classes=2, class_names=["background", "nucleus"],
                                     normalization=Normalization("zscore").to_dict(), run_config={}, epoch=1,
                                     model_state=model.state_dict()))
    onnx_file = out / "unet_bn.onnx"
    assert main(["export", str(ckpt), str(onnx_file)]) == 0
    return {"model": build_model(load_checkpoint(ckpt)).eval(), "ckpt": ckpt, "onnx": onnx_file}


@pytest.fixture(scope="module")
def fp32_forward(network):
    return OpenVinoForward(network["onnx"], "fp32")


def _batch(height: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(2, 1, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", SIZES)
def test_float32_logits_match_torch_eager(network, fp32_forward, size):
    x = _batch(*size, seed=size[1])
    with torch.no_grad():
        ref = network["model"](x)
    out = fp32_forward(x)
    assert out.dtype == torch.float32 and out.device == x.device and out.shape == ref.shape == (2, 2, *size)
    assert (out - ref).abs().max() <= FP32_TOL * max(1.0, ref.abs().max().item())
    labels = ref.argmax(1)
    assert 0.05 < labels.float().mean() < 0.95  # both classes present
    assert (out.argmax(1) == labels).float().mean() >= 0.999


def test_precision_and_threads_are_set_explicitly(fp32_forward):
    # float32 was asked for: OpenVINO must not pick bfloat16 by itself, even on a CPU that has it
    assert fp32_forward.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert fp32_forward.compiled.get_property("INFERENCE_NUM_THREADS") == torch.get_num_threads()
    assert fp32_forward.fixed_size is None  # the exported graph takes every size


@pytest.mark.skipif(not BF16_SUPPORTED, reason="OpenVINO reports no BF16 capability on this CPU")
@pytest.mark.parametrize("size", SIZES)
def test_bfloat16_labels_agree_with_torch_float32(network, size):
    forward = OpenVinoForward(network["onnx"], "bf16")
    assert forward.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    x = _batch(*size, seed=size[0])
    with torch.no_grad():
        ref = network["model"](x)
    out = forward(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    # bfloat16 keeps 8 significant bits: pixels whose class margin is below ~1% of the logit scale may flip
    # (about 0.4% of them for this network, as with torch's own bfloat16 autocast)
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.99


@pytest.mark.parametrize("tta", ["none", "flips"])
def test_predictor_matches_the_torch_backend_on_a_tiled_image(network, tta):
    image = np.random.default_rng(6).integers(0, 255, (100, 130), dtype=np.uint8)
    options = dict(device="cpu", tile=32, tta=tta, batch_size=3, precision="fp32")  # several tiles, last batch short
    torch_probs = Predictor.from_checkpoint(network["ckpt"], **options).predict_proba(image)
    predictor = Predictor.from_checkpoint(network["ckpt"], backend="openvino", onnx_model=network["onnx"], **options)
    assert predictor.settings()["backend"] == "openvino" and predictor.precision == "fp32"
    ov_probs = predictor.predict_proba(image)
    labels = torch_probs.argmax(0)
    assert 0.05 < labels.mean() < 0.95
    assert np.abs(ov_probs - torch_probs).max() <= FP32_TOL
    assert (ov_probs.argmax(0) == labels).mean() >= 0.999


def test_auto_takes_the_cpu_and_the_torch_precision_rule(network):
    predictor = Predictor.from_checkpoint(network["ckpt"], backend="openvino", onnx_model=network["onnx"])
    assert predictor.device.type == "cpu"
    assert predictor.precision == resolve_precision("auto", torch.device("cpu"))
    assert predictor.forward.precision == predictor.precision


def test_cli_predict_with_the_openvino_backend(network, tmp_path):
    # the network is exported in memory here (the tests above run the file written by unetseg export)
    image = tmp_path / "in" / "noise.png"
    image.parent.mkdir()
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (61, 40), dtype=np.uint8)).save(image)
    outs = {}
    for backend in ("torch", "openvino"):
        outs[backend] = tmp_path / backend
        assert main(["predict", "--checkpoint", str(network["ckpt"]), "--input", str(image), "--output",
                     str(outs[backend]), "--backend", backend, "--precision", "fp32", "--device", "cpu"]) == 0
    a, b = read_image(outs["torch"] / image.name), read_image(outs["openvino"] / image.name)
    assert a.shape == (61, 40) and 0.05 < (a > 0).mean() < 0.95
    assert (a == b).mean() >= 0.999


def test_options_the_backend_cannot_honour_are_named(network, tmp_path):
    ckpt, model = network["ckpt"], network["model"]
    with pytest.raises(ValueError, match="openvino backend .* compile=True"):
        Predictor.from_checkpoint(ckpt, device="cpu", backend="openvino", compile=True)
    with pytest.raises(ValueError, match="openvino backend .*device=cuda"):
        BACKENDS.build("openvino", model, torch.device("cuda"), "fp32")
    other = tmp_path / "other.onnx"  # the same graph, its metadata naming another configuration
    proto = onnx.load(str(network["onnx"]))
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            meta = json.loads(prop.value)
            meta["model_config"]["depth"] = 3
            prop.value = json.dumps(meta)
    onnx.save(proto, str(other))
    with pytest.raises(ValueError, match="other.onnx: exported from model .*'depth': 3"):
        Predictor.from_checkpoint(ckpt, device="cpu", backend="openvino", onnx_model=other)
    with pytest.raises(ValueError, match="needs backend='onnxruntime' or 'openvino'"):
        Predictor.from_checkpoint(ckpt, device="cpu", onnx_model=network["onnx"])


def test_bfloat16_without_hardware_support_is_refused(network, monkeypatch):
    monkeypatch.setattr(ov_backend, "openvino_bf16_supported", lambda: False)
    with pytest.raises(ValueError, match="precision='bf16': OpenVINO reports no bfloat16 support"):
        OpenVinoForward(network["onnx"], "bf16")
    with pytest.raises(ValueError, match="precision='fp16'"):
        OpenVinoForward(network["onnx"], "fp16")


def test_a_fixed_size_graph_names_the_sizes(tmp_path):
    from onnx import TensorProto, helper

    shape = [1, 1, 16, 16]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "fixed",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    forward = OpenVinoForward(path)
    assert forward.fixed_size == (16, 16)
    x = torch.randn(*shape)
    assert torch.equal(forward(x), x.relu())
    with pytest.raises(ValueError, match="input of 32x16 pixels: .* exported for 16x16 inputs only"):
        forward(torch.randn(1, 1, 32, 16))


def test_a_missing_openvino_says_how_to_install_it(monkeypatch):
    real = importlib.import_module

    def without_openvino(name, *args):
        if name == "openvino":
            raise ImportError("No module named 'openvino'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_openvino)
    with pytest.raises(ExportError, match=r"openvino backend: pip install unetseg\[openvino\]"):
        OpenVinoForward(b"")
