"""bioimage.io model packages: the network of a checkpoint with everything the bioimage.io tools (bioimageio.core,
ilastik, deepImageJ, the model zoo) need to run it, in the current model specification (0.5), written with
bioimageio.spec's own classes and validated by them.

A package (a zip, or a folder) holds:

- ``weights.pt`` (TorchScript: ``torch.jit.trace`` of the network at an accepted size, checked against the network
  at another size) and ``weights.onnx`` (the ONNX export of :mod:`.onnx`, dynamic sizes), the TorchScript weights
  being the parent of the ONNX ones;
- ``test_input.npy`` (the raw image, float32 (1, C, S, S)) and ``test_output.npy`` (the class probabilities
  unetseg computes from it: its own normalisation, the network in float32, sigmoid or softmax);
- ``cover.png`` (the input and the prediction side by side) and a generated ``README.md``;
- ``rdf.yaml``: the description. The input axes ``batch, channel, y, x`` follow the network's size rule
  (``min + k * step``, :func:`~unetseg.export.onnx.size_rule`), the output's ``y, x`` refer to the input's less
  the margin the network crops. Preprocessing: ``scale_range`` (percentile normalisation per image and channel),
  ``zero_mean_unit_variance`` (z-score), fixed values (``scale_linear`` / ``fixed_zero_mean_unit_variance``) for
  dataset-wide statistics, ``scale_linear`` by the dtype's maximum for ``scale``. Postprocessing: ``sigmoid`` for
  a one-channel head, ``softmax`` over the channels otherwise, so the output is class probabilities.

Needs ``pip install unetseg[bioimageio]`` (bioimageio.core, and onnx + onnxscript for the ONNX weights).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

from ..checkpoint import Checkpoint, build_model, load_checkpoint, resolve_checkpoint
from ..data.io import read_image, to_channels
from ..data.normalize import Normalization
from ..data.sampling import crop_mirror
from ..data.synthetic import make_nuclei_image
from ..fileio import atomic_path, current_umask
from ..models.base import SegmentationModel
from .onnx import DEFAULT_OPSET, ExportError, export_model, onnx_metadata, require, size_rule

INSTALL_HINT = "pip install unetseg[bioimageio]"
DEFAULT_LICENSE = "CC-BY-4.0"
DEFAULT_AUTHOR = "Unknown"
#: the test tensors cover at least this many output pixels a side (a given image: at most MAX_TEST_SIDE)
TEST_SIDE, MAX_TEST_SIDE = 64, 256
INPUT_ID, OUTPUT_ID = "image", "probabilities"
#: the cover is scaled up (nearest neighbour) to at least this height
COVER_HEIGHT = 256
#: the paper of each network: (citation, DOI or URL)
PAPERS = {
    "unet": ("Ronneberger, Fischer, Brox: U-Net: Convolutional Networks for Biomedical Image Segmentation. "
             "MICCAI 2015", "10.1007/978-3-319-24574-4_28"),
    "unetpp": ("Zhou, Rahman Siddiquee, Tajbakhsh, Liang: UNet++: A Nested U-Net Architecture for Medical Image "
               "Segmentation. DLMIA 2018", "10.1007/978-3-030-00889-5_1"),
    "fcn8s": ("Long, Shelhamer, Darrell: Fully Convolutional Networks for Semantic Segmentation. CVPR 2015",
              "10.1109/CVPR.2015.7298965"),
    "segnet": ("Badrinarayanan, Kendall, Cipolla: SegNet: A Deep Convolutional Encoder-Decoder Architecture for "
               "Image Segmentation. IEEE TPAMI 2017", "10.1109/TPAMI.2016.2644615"),
    "deconvnet": ("Noh, Hong, Han: Learning Deconvolution Network for Semantic Segmentation. ICCV 2015",
                  "10.1109/ICCV.2015.178"),
    "fusionnet": ("Quan, Hildebrand, Jeong: FusionNet: A deep fully residual convolutional neural network for image "
                  "segmentation in connectomics. arXiv 2016", "https://arxiv.org/abs/1612.05360"),
}
PAPERS["unet_bn"] = PAPERS["unet"]
#: flags of the package fields, for messages about invalid values
FIELD_FLAGS = {"name": "--name", "description": "--description", "authors": "--authors", "license": "--license",
               "cite": "--cite"}
#: what those fields take, for messages
FIELD_HINTS = {"name": "expected 5 to 128 letters, digits, spaces and _+-()",
               "license": "expected an SPDX licence identifier such as CC-BY-4.0, MIT or BSD-3-Clause "
                          "(https://spdx.org/licenses/)"}


@dataclass
class PackageInfo:
    """The descriptive fields of a package. Empty values take defaults from the checkpoint: the name and the
    description from the network and its classes, :data:`DEFAULT_AUTHOR`, and the network's paper
    (:data:`PAPERS`, the U-Net paper for networks not listed) as the citation.

    Attributes:
        name: the model's name (5 to 128 letters, digits, spaces and ``_+-()``).
        description: one line on what the model does.
        authors: the authors' names.
        license: an SPDX licence identifier (``CC-BY-4.0``, ``MIT``, ...).
        cite: citation text -> its DOI or URL.
    """

    name: str | None = None
    description: str | None = None
    authors: Sequence[str] = ()
    license: str = DEFAULT_LICENSE
    cite: Mapping[str, str] = field(default_factory=dict)


def require_bioimageio() -> Any:
    """The ``bioimageio.spec.model.v0_5`` module (the model specification's classes).

    Raises:
        ExportError: bioimageio.spec is not installed (the message says how to install it).
    """
    try:
        from bioimageio.spec.model import v0_5
    except ImportError as err:
        raise ExportError(f"the 'bioimageio.core' package is needed for bioimage.io export: {INSTALL_HINT} ({err})"
                          ) from err
    return v0_5


def _package_kind(output: Path, checkpoint: Path) -> bool:
    """Whether ``output`` is a zip (else a folder); ExportError for an output that would replace the checkpoint,
    an ``.onnx`` name, or an existing file or non-empty folder where a package folder would go."""
    if output.exists() and output.resolve() == checkpoint.resolve():
        raise ExportError(f"{output}: would overwrite the checkpoint")
    suffix = output.suffix.lower()
    if suffix == ".onnx":
        raise ExportError(f"{output}: a bioimage.io package is a .zip file or a folder; for an ONNX file use "
                          "--format onnx")
    if suffix == ".zip":
        if output.is_dir():
            raise ExportError(f"{output}: is a folder; expected a .zip file name: move it away or choose another "
                              "OUTPUT")
        return True
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ExportError(f"{output}: exists; a bioimage.io package folder is written only where nothing is: "
                          "remove it, or choose another OUTPUT (a new folder, or a name ending in .zip)")
    return False


def _test_image(model: SegmentationModel, image: str | os.PathLike | None, size: int | None) -> np.ndarray:
    """The raw test image, (C, S, S) in its own dtype, with the network's channels: the centre of ``image`` (at most
    :data:`MAX_TEST_SIDE` pixels a side) with the context the network needs mirrored around it, S the smallest
    accepted side whose output covers it; or a synthetic nuclei image of that side for :data:`TEST_SIDE` output
    pixels. ``size`` fixes S."""
    if image is not None:
        picture = to_channels(read_image(image), model.in_channels, image)
        side = size or model.input_size_for(min(*picture.shape[:2], MAX_TEST_SIDE))
    else:
        side = size or model.input_size_for(TEST_SIDE)
        picture = to_channels(make_nuclei_image(np.random.default_rng(0), side, side)[0], model.in_channels)
    chw = np.moveaxis(picture, -1, 0)
    height, width = chw.shape[1:]
    return crop_mirror(chw, (height - side) // 2, (width - side) // 2, side, side)


def _probabilities(model: SegmentationModel, normalization: Normalization, raw: np.ndarray) -> np.ndarray:
    """What unetseg computes from the raw (C, H, W) image: its normalisation, the network in float32, then sigmoid
    (one logit channel) or softmax; (1, K, H', W') float32."""
    x = torch.from_numpy(normalization(np.moveaxis(raw, 0, -1)))[None]
    with torch.no_grad():
        logits = model(x)
    probs = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
    return probs.numpy().astype(np.float32)


def _write_torchscript(model: SegmentationModel, side: int, step: int, path: Path) -> None:
    """Trace ``model`` at ``side`` x ``side`` and save it; ExportError when the trace does not reproduce the
    network at another accepted size (``step`` > 0) and batch."""
    with warnings.catch_warnings():  # tracer and deprecation warnings: the check below is what counts
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.zeros(1, model.in_channels, side, side), check_trace=False)
    if step:
        x = torch.randn(2, model.in_channels, side + step, side + 2 * step, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected, got = model(x), traced(x)
        if expected.shape != got.shape or not torch.allclose(expected, got, rtol=1e-4, atol=1e-4):
            raise ExportError(f"the TorchScript trace of model {model.config.get('name')!r} does not reproduce the "
                              f"network at other sizes; export a fixed --size instead")
    traced.save(str(path))


def _stretch(chw: np.ndarray) -> np.ndarray:
    """A (C, H, W) image as RGB uint8 (H, W, 3), contrast-stretched to its 1-99.8 percentiles."""
    rgb = np.moveaxis(chw if chw.shape[0] == 3 else chw.mean(axis=0, keepdims=True).repeat(3, 0), 0, -1)
    lo, hi = np.percentile(rgb, [1.0, 99.8])
    return (np.clip((rgb.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def _cover(raw: np.ndarray, probs: np.ndarray, path: Path) -> None:
    """Write the cover: the input (where the output covers it) and the prediction side by side, the predicted
    classes blended over the input in tab10 colours (background left as it is)."""
    from matplotlib import colormaps
    from PIL import Image

    margin = (raw.shape[-1] - probs.shape[-1]) // 2
    left = _stretch(raw[:, margin:raw.shape[1] - margin, margin:raw.shape[2] - margin])
    labels = (probs[0, 0] > 0.5).astype(int) if probs.shape[1] == 1 else probs[0].argmax(axis=0)
    colours = (np.array(colormaps["tab10"].colors)[(labels - 1) % 10] * 255).astype(np.float32)
    right = np.where((labels > 0)[..., None], 0.5 * left + 0.5 * colours, left).astype(np.uint8)
    cover = np.concatenate([left, right], axis=1)
    scale = max(1, -(-COVER_HEIGHT // cover.shape[0]))
    Image.fromarray(cover.repeat(scale, 0).repeat(scale, 1)).save(path, format="PNG")


def _preprocessing(spec: Any, normalization: Normalization, dtype: np.dtype) -> tuple[list[Any], str]:
    """The specification's preprocessing steps for ``normalization`` of images of ``dtype``, and what they are
    in words (for the README).

    Raises:
        ExportError: percentile normalisation with an upper percentile <= 1 (the specification takes (1, 100]), or
            dataset-wide normalisation without statistics.
    """
    n, yx = normalization, [spec.AxisId("y"), spec.AxisId("x")]
    if n.mode == "scale":
        if not np.issubdtype(dtype, np.integer):
            return [], "none: float images are taken as they are (normalisation `scale`)"
        top = float(np.iinfo(dtype).max)
        return ([spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=1.0 / top))],
                f"`scale_linear` with gain 1/{top:g}: the maximum of {dtype} images (normalisation `scale`)")
    if n.scope == "dataset":
        if not n.stats:
            raise ExportError("the checkpoint's dataset-wide normalisation has no statistics; the checkpoint is "
                              "damaged: export another one")
        offset = [float(o) for o, _ in n.stats]
        spread = [max(float(s), 1e-6) for _, s in n.stats]
        if n.mode == "zscore":
            kwargs = spec.FixedZeroMeanUnitVarianceAlongAxisKwargs(axis="channel", mean=offset, std=spread)
            return ([spec.FixedZeroMeanUnitVarianceDescr(kwargs=kwargs)],
                    f"`fixed_zero_mean_unit_variance` per channel, mean {offset}, std {spread}: the training set's "
                    "statistics (normalisation `zscore`, scope `dataset`)")
        gain, shift = [1 / s for s in spread], [-o / s for o, s in zip(offset, spread)]
        kwargs = spec.ScaleLinearAlongAxisKwargs(axis="channel", gain=gain, offset=shift)
        return ([spec.ScaleLinearDescr(kwargs=kwargs)],
                f"`scale_linear` per channel mapping the training set's {n.low:g}th/{n.high:g}th percentiles "
                f"{offset} and {[o + s for o, s in zip(offset, spread)]} to 0 and 1 (normalisation `percentile`, "
                "scope `dataset`)")
    if n.mode == "zscore":
        return ([spec.ZeroMeanUnitVarianceDescr(kwargs=spec.ZeroMeanUnitVarianceKwargs(axes=yx))],
                "`zero_mean_unit_variance` over y and x, per image and channel (normalisation `zscore`)")
    if n.high <= 1:
        raise ExportError(f"percentile normalisation to the {n.low:g}th-{n.high:g}th percentiles cannot be written "
                          "in a bioimage.io package: its upper percentile must be above 1")
    kwargs = spec.ScaleRangeKwargs(axes=yx, min_percentile=n.low, max_percentile=n.high)
    return ([spec.ScaleRangeDescr(kwargs=kwargs)],
            f"`scale_range` over y and x, per image and channel, mapping the {n.low:g}th and {n.high:g}th "
            "percentiles to 0 and 1 (normalisation `percentile`)")


def _size(spec: Any, rule: Mapping[str, int], size: int | None) -> Any:
    """The size of an input space axis: ``size`` (fixed), else ``min + n * step``."""
    if size is not None:
        return size
    return spec.ParameterizedSize(min=rule["min_side"], step=rule["side_step"])


def _tensors(spec: Any, model: SegmentationModel, ckpt: Checkpoint, files: Mapping[str, Path],
             preprocessing: list[Any], size: int | None) -> tuple[Any, Any]:
    """The input and output tensor descriptions (axes, test tensors, pre- and postprocessing)."""
    rule = size_rule(model) if size is None else {"margin": model.margin(size)}
    channels = [f"channel{i}" for i in range(model.in_channels)]
    space = [spec.SpaceInputAxis(id=spec.AxisId(axis), size=_size(spec, rule, size)) for axis in ("y", "x")]
    inputs = spec.InputTensorDescr(
        id=spec.TensorId(INPUT_ID), axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=channels), *space],
        test_tensor=spec.FileDescr(source=files["test_input"]),
        sample_tensor=spec.FileDescr(source=files["sample_input"]), preprocessing=preprocessing,
        description=f"raw image, {model.in_channels} channel(s), any intensities (the preprocessing normalises it)")
    sigmoid = model.num_classes == 1
    names = [ckpt.class_names[-1]] if sigmoid else list(ckpt.class_names)
    out_space = [spec.SpaceOutputAxis(id=spec.AxisId(axis), size=spec.SizeReference(
        tensor_id=spec.TensorId(INPUT_ID), axis_id=spec.AxisId(axis), offset=-2 * rule["margin"]))
        for axis in ("y", "x")]
    post = spec.SigmoidDescr() if sigmoid else spec.SoftmaxDescr(kwargs=spec.SoftmaxKwargs(axis="channel"))
    what = (f"probability of {names[0]} (foreground where > 0.5)" if sigmoid else
            "class probabilities (labels: the most probable channel)")
    outputs = spec.OutputTensorDescr(
        id=spec.TensorId(OUTPUT_ID), axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=names), *out_space],
        test_tensor=spec.FileDescr(source=files["test_output"]),
        sample_tensor=spec.FileDescr(source=files["sample_output"]), postprocessing=[post],
        description=what + (f"; {rule['margin']} pixels a side smaller than the input" if rule["margin"] else ""))
    return inputs, outputs


def _default_name(ckpt: Checkpoint) -> str:
    """``unetseg <network> <foreground classes>``, in the characters a model name may hold, at most 64."""
    text = f"unetseg {ckpt.model_config.get('name', 'network')} {' '.join(ckpt.class_names[1:])}"
    return re.sub(r"[^A-Za-z0-9_+\- ()]", "_", text)[:64].strip()


def _readme(ckpt: Checkpoint, model: SegmentationModel, name: str, description: str, preprocessing: str,
            size: int | None) -> str:
    """The package's documentation (README.md): what the model does, its input and output, the preprocessing
    and what it cannot express, how it was validated."""
    rule = size_rule(model) if size is None else {"min_side": size, "side_step": 0, "margin": model.margin(size)}
    sides = (f"{size} x {size} pixels" if size is not None else
             f"sides {rule['min_side']} + n * {rule['side_step']} pixels (n >= 0)")
    score = ckpt.prediction.monitor if ckpt.prediction is not None else "validation score"
    best = f"{ckpt.best_score:.4f}" if ckpt.best_score is not None else "not recorded"
    output = ("the foreground probability (sigmoid)" if model.num_classes == 1 else
              "class probabilities (softmax over the channels)")
    classes = ", ".join(f"{i} = {c}" for i, c in enumerate(ckpt.class_names))
    return f"""# {name}

{description}

Network `{ckpt.model_config.get("name")}` trained with unetseg ({ckpt.epoch} epochs); classes: {classes}.

## Input and output

- input `{INPUT_ID}`: (batch, {model.in_channels} channel(s), y, x), float32, {sides}.
- preprocessing: {preprocessing}.
- output `{OUTPUT_ID}`: {output}, {rule["margin"]} pixels smaller than the input on each side.

Not part of the package, done by `unetseg predict` only: images of any size (mirrored out to an accepted size and
cropped back), tiling with blended overlaps, test-time augmentation, the labels (argmax or threshold 0.5), hole
filling, removal of small objects and separating touching objects.

## Validation

The test tensors are an image and the probabilities unetseg computes from it (its own normalisation, the network
in float32); `bioimageio test PACKAGE` runs both weight formats on the test input through the package's
preprocessing and compares them. The checkpoint's best {score} on its validation images: {best}.
"""


def _citations(spec: Any, ckpt: Checkpoint, cite: Mapping[str, str]) -> list[Any]:
    """Citation entries: ``cite`` (text -> DOI or URL), else the network's paper.

    Raises:
        ExportError: a reference that is neither a DOI nor an http(s) URL (names --cite).
    """
    entries = dict(cite) or dict([PAPERS.get(ckpt.model_config.get("name", ""), PAPERS["unet"])])
    citations = []
    for text, ref in entries.items():
        url = str(ref).startswith(("http://", "https://"))
        try:
            citations.append(spec.CiteEntry(text=text, url=str(ref)) if url else
                             spec.CiteEntry(text=text, doi=str(ref)))
        except ValueError as err:
            raise ExportError(f"--cite {text}={ref}: expected TEXT=DOI (10.NNNN/...) or TEXT=URL (http(s)://...) "
                              f"({_first_problem(err)})") from err
    return citations


def _authors(spec: Any, names: Sequence[str]) -> list[Any]:
    """Author entries of ``names`` (:data:`DEFAULT_AUTHOR` when empty); ExportError naming --authors for a name
    the specification refuses (one with a slash)."""
    try:
        return [spec.Author(name=name) for name in names or (DEFAULT_AUTHOR,)]
    except ValueError as err:
        raise ExportError(f"--authors {' '.join(names)}: expected names without '/' ({_first_problem(err)})"
                          ) from err


def _first_problem(err: Exception) -> str:
    """The message of the first problem of a pydantic validation error."""
    problems = getattr(err, "errors", lambda: [])()
    return " ".join(str(problems[0].get("msg")).split()) if problems else str(err)


def _describe(spec: Any, ckpt: Checkpoint, model: SegmentationModel, files: Mapping[str, Path],
              info: PackageInfo, tensors: tuple[Any, Any], opset: int) -> Any:
    """The ``ModelDescr`` of the package (validated by bioimageio.spec when it is built)."""
    weights = spec.WeightsDescr(
        torchscript=spec.TorchscriptWeightsDescr(source=files["torchscript"],
                                                 pytorch_version=spec.Version(torch.__version__.split("+")[0])),
        onnx=spec.OnnxWeightsDescr(source=files["onnx"], opset_version=opset, parent="torchscript"))
    return spec.ModelDescr(
        name=info.name, description=info.description,
        authors=_authors(spec, info.authors),
        cite=_citations(spec, ckpt, info.cite), license=info.license,
        documentation=spec.FileDescr(source=files["readme"]), covers=[spec.FileDescr(source=files["cover"])],
        tags=["unetseg", "segmentation", "2d", str(ckpt.model_config.get("name")), "pytorch", "onnx"],
        inputs=[tensors[0]], outputs=[tensors[1]], weights=weights)


def _invalid(err: Exception) -> str:
    """The gist of a pydantic validation error of the description: each field (with its flag) and what it
    expects (the first problem of each field, shortened)."""
    fields: dict[str, str] = {}
    for problem in getattr(err, "errors", lambda: [])():
        loc = [str(part) for part in problem.get("loc", ()) if "[" not in str(part)]  # not pydantic's validators
        key = loc[0] if loc else ""
        if key in fields:
            continue
        flag = FIELD_FLAGS.get(key)
        message = FIELD_HINTS.get(key) or " ".join(str(problem.get("msg")).split())
        fields[key] = (f"{'.'.join(loc)}{f' ({flag})' if flag else ''}: got {problem.get('input')!r}; "
                       f"{message if len(message) <= 200 else message[:200] + ' ...'}")
    return "; ".join(fields.values()) or str(err)


def _save(descr: Any, output: Path, as_zip: bool) -> None:
    """Write the package of ``descr`` as the zip or folder ``output``, atomically (a temporary file or folder
    beside it, renamed into place once bioimageio.spec has written it)."""
    from bioimageio.spec import save_bioimageio_package_as_folder, save_bioimageio_package_to_stream

    if as_zip:
        with atomic_path(output) as tmp, open(tmp, "wb") as stream:
            save_bioimageio_package_to_stream(descr, output_stream=stream)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    try:
        save_bioimageio_package_as_folder(descr, output_path=tmp)
        os.chmod(tmp, 0o777 & ~current_umask())
        os.replace(tmp, output)  # onto nothing, or an empty folder (see _package_kind)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _file_names(folder: Path) -> dict[str, Path]:
    """The files of a package in ``folder``, by role."""
    return {role: folder / name for role, name in (
        ("torchscript", "weights.pt"), ("onnx", "weights.onnx"), ("test_input", "test_input.npy"),
        ("test_output", "test_output.npy"), ("sample_input", "sample_input.tif"),
        ("sample_output", "sample_output.tif"), ("cover", "cover.png"), ("readme", "README.md"))}


def _write_files(model: SegmentationModel, ckpt: Checkpoint, raw: np.ndarray, files: Mapping[str, Path],
                 size: int | None, opset: int) -> None:
    """Write the weights (TorchScript, ONNX), test and sample tensors and the cover (:func:`_file_names`)."""
    onnx = require("onnx")
    probs = _probabilities(model, Normalization.from_dict(ckpt.normalization), raw)
    np.save(files["test_input"], raw[None].astype(np.float32))
    np.save(files["test_output"], probs)
    tifffile.imwrite(files["sample_input"], raw.squeeze(0) if raw.shape[0] == 1 else raw, photometric="minisblack")
    tifffile.imwrite(files["sample_output"], probs[0, 0] if probs.shape[1] == 1 else probs[0],
                     photometric="minisblack")
    _cover(raw, probs, files["cover"])
    step = 0 if size is not None else size_rule(model)["side_step"]
    _write_torchscript(model, raw.shape[-1], step, files["torchscript"])
    meta = onnx_metadata(model, ckpt, size)
    onnx.save_model(export_model(model, meta, opset, size), str(files["onnx"]))


def _description(spec: Any, ckpt: Checkpoint, model: SegmentationModel, files: Mapping[str, Path],
                 info: PackageInfo, preprocessing: list[Any], size: int | None, opset: int, output: Path) -> Any:
    """The validated ``ModelDescr``; ExportError naming the fields (and their flags) the specification rejects."""
    try:
        tensors = _tensors(spec, model, ckpt, files, preprocessing, size)
        return _describe(spec, ckpt, model, files, info, tensors, opset)
    except ValueError as err:  # pydantic's ValidationError
        raise ExportError(f"{output}: the bioimage.io description is not valid: {_invalid(err)}") from err


def export_bioimageio(checkpoint: str | os.PathLike, output: str | os.PathLike, info: PackageInfo | None = None,
                      image: str | os.PathLike | None = None, size: int | None = None,
                      opset: int = DEFAULT_OPSET) -> Path:
    """Write the network of a checkpoint as a bioimage.io model package (see the module's description).

    Args:
        checkpoint: a checkpoint file or a run directory.
        output: ``NAME.zip`` (a zipped package) or a folder (created; it must not exist, or be empty).
        info: name, description, authors, licence and citations (defaults: :class:`PackageInfo`).
        image: the image the test tensors and the cover are made from (default: a synthetic nuclei image); its
            centre (at most 256 pixels a side), mirrored out to an accepted size when smaller.
        size: a fixed input side (an accepted one) instead of the network's size rule.
        opset: the ONNX opset of the ONNX weights.

    Returns:
        ``output``.

    Raises:
        CheckpointError: a missing or invalid checkpoint.
        DataError: an unreadable ``image``.
        ExportError: bioimageio.spec, onnx or onnxscript missing, an output that is neither a .zip name nor a new
            (or empty) folder, a size the network does not accept, a normalisation the specification cannot
            express, a field the specification rejects (named with its flag), or a failed export.
    """
    output, checkpoint = Path(output), resolve_checkpoint(checkpoint)
    as_zip = _package_kind(output, Path(checkpoint))
    spec = require_bioimageio()
    require("onnx")
    require("onnxscript")
    ckpt = load_checkpoint(checkpoint)
    model = build_model(ckpt).float().eval()
    if size is not None and not model.is_valid_input(size):
        raise ExportError(f"size {size} is not accepted by model {model.config.get('name')!r}: "
                          f"{model.input_size_rule()}")
    info = info or PackageInfo()
    raw = _test_image(model, image, size)
    preprocessing, in_words = _preprocessing(spec, Normalization.from_dict(ckpt.normalization), raw.dtype)
    name = info.name or _default_name(ckpt)
    description = info.description or (f"Segments {', '.join(ckpt.class_names[1:])} in 2-D images "
                                       f"({model.in_channels} channel(s)): {ckpt.model_config.get('name')} network")
    info = PackageInfo(name, description, info.authors, info.license, info.cite)
    from bioimageio.spec import ValidationContext

    with tempfile.TemporaryDirectory(prefix="unetseg-bioimageio-") as work:
        files = _file_names(Path(work))
        for path in files.values():  # placeholders: the fields are checked first, before the slow part
            path.touch()
        with ValidationContext(perform_io_checks=False):
            _description(spec, ckpt, model, files, info, preprocessing, size, opset, output)
        _write_files(model, ckpt, raw, files, size, opset)
        files["readme"].write_text(_readme(ckpt, model, name, description, in_words, size))
        descr = _description(spec, ckpt, model, files, info, preprocessing, size, opset, output)
        _save(descr, output, as_zip)
    return output
