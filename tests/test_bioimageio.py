"""bioimage.io model packages (``unetseg export --format bioimageio``), checked by bioimageio.core's own model test:
it loads the package, runs both weight formats on the test input through the package's preprocessing and
postprocessing, and compares the result with the test output (which unetseg computed itself)."""

from __future__ import annotations

import shutil
import sys
import zipfile

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
core = pytest.importorskip("bioimageio.core", reason="the bioimageio extra is not installed")

from unetseg.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from unetseg.data.normalize import Normalization  # noqa: E402
from unetseg.export import ExportError, PackageInfo, export_bioimageio  # noqa: E402
from unetseg.models import create_model  # noqa: E402

# bioimageio.core loads the TorchScript weights with torch.jit.load, which this torch deprecates
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

# the paper's valid U-Net at depth 2: sides 44 + 4k, 20 pixels lost a side (44 -> 40 -> 20 -> 16 -> 8 -> 4 at the
# bottom -> 8 -> 4 -> 8 -> 4); the test tensors: 104 -> 64, the smallest input giving 64 output pixels a side
VALID_RULE = (44, 4, 20)


def _checkpoint(path, name: str, normalization: Normalization, logits: int = 2, channels: int = 1):
    """A thin, untrained depth-2 network in a checkpoint: He-initialised convolutions (so that the output depends
    on the image through every layer), the head shifted so that both classes occur."""
    torch.manual_seed(0)
    model = create_model(name, base_channels=4, depth=2, num_classes=logits, in_channels=channels).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel() if isinstance(m, torch.nn.Conv2d) else m.weight.shape[0] * 4
                m.weight.normal_(0, (2 / fan_in) ** 0.5)
        out = model(torch.randn(1, channels, model.input_size_for(64), model.input_size_for(64)))
        model.head.bias[-1] -= (out[:, -1] - (out[:, 0] if logits > 1 else 0)).median()
    save_checkpoint(path, Checkpoint(model_config=model.config, num_classes=2, class_names=["background", "nucleus"],
                                     normalization=normalization.to_dict(), epoch=3, model_state=model.state_dict()))
    return path


def _status(package, **options) -> str:
    """The status of bioimageio.core's model test of ``package`` ("passed" or "failed"), failures printed."""
    summary = core.test_model(package, **options)
    for detail in summary.details:
        if detail.status != "passed":
            print(detail.name, [error.msg for error in detail.errors])
    return summary.status


@pytest.fixture(scope="module")
def valid_zip(tmp_path_factory):
    """The paper's (valid) U-Net with percentile normalisation and a softmax head, exported as a zip by the CLI."""
    from unetseg.cli.main import main

    folder = tmp_path_factory.mktemp("bioimageio")
    ckpt = _checkpoint(folder / "unet.safetensors", "unet", Normalization("percentile"))
    output = folder / "unet.zip"
    assert main(["export", str(ckpt), str(output), "--author", "Jane Doe", "John Roe", "--license", "MIT",
                 "--cite", "Doe et al. 2025=https://example.org/paper", "--name", "nuclei U-Net (test)"]) == 0
    return output


def test_the_package_passes_bioimageio_cores_model_test(valid_zip):
    assert _status(valid_zip) == "passed"  # both weight formats, the test tensors and the parametrized sizes


def test_the_description_holds_the_size_rule_normalisation_and_options(valid_zip):
    with zipfile.ZipFile(valid_zip) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        names = set(archive.namelist())
        test_input = np.load(archive.open("test_input.npy"))
        test_output = np.load(archive.open("test_output.npy"))
        cover = Image.open(archive.open("cover.png"))
        readme = archive.read("README.md").decode()
    assert names == {"rdf.yaml", "README.md", "cover.png", "weights.pt", "weights.onnx", "test_input.npy",
                     "test_output.npy", "sample_input.tif", "sample_output.tif"}
    assert rdf["format_version"].startswith("0.5") and rdf["type"] == "model"
    assert rdf["name"] == "nuclei U-Net (test)" and rdf["license"] == "MIT"
    assert [a["name"] for a in rdf["authors"]] == ["Jane Doe", "John Roe"]
    assert rdf["cite"] == [{"text": "Doe et al. 2025", "url": "https://example.org/paper"}]
    first, step, margin = VALID_RULE
    (inputs,), (outputs,) = rdf["inputs"], rdf["outputs"]
    assert [axis["type"] for axis in inputs["axes"]] == ["batch", "channel", "space", "space"]
    assert inputs["axes"][2]["size"] == {"min": first, "step": step}
    assert outputs["axes"][1]["channel_names"] == ["background", "nucleus"]
    assert outputs["axes"][3]["size"] == {"tensor_id": "image", "axis_id": "x", "offset": -2 * margin}
    steps = {p["id"]: p.get("kwargs") for p in inputs["preprocessing"]}
    assert steps["scale_range"] == {"axes": ["y", "x"], "min_percentile": 1.0, "max_percentile": 99.8}
    assert [p["id"] for p in outputs["postprocessing"]][0] == "softmax"
    assert set(rdf["weights"]) == {"torchscript", "onnx"} and rdf["weights"]["onnx"]["parent"] == "torchscript"
    assert test_input.shape == (1, 1, 104, 104) and test_input.dtype == np.float32
    assert test_output.shape == (1, 2, 64, 64)
    np.testing.assert_allclose(test_output.sum(axis=1), 1.0, atol=1e-5)  # probabilities
    assert np.ptp(test_output[0, 1]) > 0.1  # the output depends on the image: the comparison is not vacuous
    assert cover.format == "PNG" and cover.size[0] == 2 * cover.size[1]  # input and prediction side by side
    assert "## Validation" in readme and "scale_range" in readme


def test_a_sigmoid_head_dataset_statistics_and_a_fixed_size_as_a_folder(tmp_path):
    stats = ((20.0, 30.0), (90.0, 45.0), (5.0, 12.0))  # per channel (mean, std) of a training set
    ckpt = _checkpoint(tmp_path / "c.safetensors", "unet_bn",
                       Normalization("zscore", scope="dataset", stats=stats), logits=1, channels=3)
    image = tmp_path / "rgb.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(image)
    output = export_bioimageio(ckpt, tmp_path / "package", image=image, size=48)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors", "package", "rgb.png"]
    rdf = yaml.safe_load((output / "rdf.yaml").read_text())
    (inputs,), (outputs,) = rdf["inputs"], rdf["outputs"]
    steps = {p["id"]: p.get("kwargs") for p in inputs["preprocessing"]}
    assert steps["fixed_zero_mean_unit_variance"] == {"axis": "channel", "mean": [20.0, 90.0, 5.0],
                                                      "std": [30.0, 45.0, 12.0]}
    assert outputs["postprocessing"][0]["id"] == "sigmoid"
    assert outputs["axes"][1]["channel_names"] == ["nucleus"]
    assert inputs["axes"][3]["size"] == 48 and outputs["axes"][3]["size"]["offset"] == 0
    assert np.ptp(np.load(output / "test_output.npy")) > 0.1
    test_input = np.load(output / "test_input.npy")  # the image's centre, 48 x 48
    assert test_input.shape == (1, 3, 48, 48)
    np.testing.assert_array_equal(test_input[0], np.moveaxis(np.asarray(Image.open(image))[1:49, 11:59], -1, 0))
    assert _status(output) == "passed"
    # the model test has teeth: other statistics in the description no longer reproduce the test output
    changed = tmp_path / "changed"
    shutil.copytree(output, changed)
    for step in rdf["inputs"][0]["preprocessing"]:
        if step["id"] == "fixed_zero_mean_unit_variance":
            step["kwargs"]["mean"] = [m + 10.0 for m in step["kwargs"]["mean"]]
    (changed / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    assert _status(changed, weight_format="torchscript", stop_early=True) != "passed"


def test_export_errors(tmp_path, capsys):
    from unetseg.cli.main import main

    ckpt = _checkpoint(tmp_path / "c.safetensors", "unet_bn", Normalization("percentile", low=0.0, high=0.5))
    with pytest.raises(ExportError, match="upper percentile must be above 1"):
        export_bioimageio(ckpt, tmp_path / "a.zip")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("keep")
    assert main(["export", str(ckpt), str(tmp_path / "full"), "--format", "bioimageio"]) == 2
    assert "full: exists" in capsys.readouterr().err
    assert main(["export", str(ckpt), str(tmp_path / "m.onnx"), "--format", "bioimageio"]) == 2
    assert "m.onnx: a bioimage.io package is a .zip file or a folder" in capsys.readouterr().err
    assert main(["export", str(ckpt), str(tmp_path / "b.zip"), "--size", "42"]) == 2
    assert "size 42 is not accepted" in capsys.readouterr().err
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setitem(sys.modules, "bioimageio.spec.model", None)  # as if the package were not installed
    try:
        assert main(["export", str(ckpt), str(tmp_path / "c.zip")]) == 2
    finally:
        monkeypatch.undo()
    assert "pip install unetseg[bioimageio]" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors", "full"]  # nothing written, no temporaries
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]


def test_invalid_fields_name_their_flag(tmp_path, capsys):
    from unetseg.cli.main import main

    ckpt = _checkpoint(tmp_path / "c.safetensors", "unet_bn", Normalization("zscore"))
    assert main(["export", str(ckpt), str(tmp_path / "a.zip"), "--name", "a/b?c!", "--license", "FOO-1"]) == 2
    err = capsys.readouterr().err
    assert "the bioimage.io description is not valid" in err
    assert "name (--name): got 'a/b?c!'; expected 5 to 128 letters, digits, spaces and _+-()" in err
    assert "license (--license): got 'FOO-1'; expected an SPDX licence identifier" in err
    assert main(["export", str(ckpt), str(tmp_path / "a.zip"), "--cite", "Me=12.3/x"]) == 2
    assert "--cite Me=12.3/x: expected TEXT=DOI (10.NNNN/...) or TEXT=URL" in capsys.readouterr().err
    assert main(["export", str(ckpt), str(tmp_path / "a.zip"), "--author", "A/B"]) == 2
    assert "--authors A/B: expected names without '/'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob(".*.tmp"))
    assert PackageInfo().license == "CC-BY-4.0"
