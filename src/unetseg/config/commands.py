"""The options of each subcommand besides the run configuration, as dataclasses with the same field metadata as
:mod:`.sections`, so that every command-line flag is generated from a field (``unetseg.cli.options``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..export import DEFAULT_LICENSE, DEFAULT_OPSET, EXPORT_FORMATS
from ..inference.outputs import OUTPUT_FORMATS
from . import choices
from .image_options import channel_option, plane_option
from .options import option


@dataclass
class TrainCommandConfig:
    """Options of `unetseg train` that are not part of the run configuration."""

    SECTION: ClassVar[str] = "command"

    config: str | None = option(None, metavar="FILE", help="YAML file with model/data/train sections; the other "
                                                           "options override it")
    resume: str | None = option(None, metavar="RUN_DIR", help="continue the interrupted run in RUN_DIR exactly")
    show_augmentations: str | None = option(
        None, metavar="PNG", help="write a grid of augmented training patches with their masks to PNG, then stop")
    progress: bool = option(True, help="show a progress bar")


@dataclass
class PredictConfig:
    """Options of `unetseg predict`."""

    SECTION: ClassVar[str] = "predict"

    checkpoint: str = option(required=True, metavar="CKPT",
                             help="a .safetensors checkpoint, or a run directory (its best.safetensors, else "
                                  "last.safetensors)")
    input: list[str] = option(required=True, metavar="PATH", help="image files and/or folders of images")
    output: str = option(required=True, metavar="DIR",
                         help="output folder (created if missing); it must not hold any input image")
    overlay: bool = option(False, help="also write <stem>_overlay.png: the classes blended over the image and every "
                                       "object outlined in its own colour (the --instances objects, else each "
                                       "class's connected regions)")
    device: str = option("auto", help="auto, cpu, cuda, cuda:N or mps")
    tile: int | None = option(
        None, ge=1, help="predict in tiles of this output size (default: the whole image in one pass); the paper's "
                         "valid U-Net uses overlap-tile, padded networks a blended sliding window")
    overlap: float = option(0.25, ge=0, lt=1, help="sliding window overlap fraction")
    blending: str = option("gaussian", choices=choices.BLENDINGS, help="sliding window blending of the tiles")
    tta: str | None = option(
        None, choices=choices.TTA_SETS,
        help="test-time augmentation averaged over flips / rotations (d4 = all 8); default: what training chose on "
             "its validation set (prediction.yaml), else none")
    batch_size: int = option(4, ge=1, help="tiles per forward pass")
    precision: str = option("auto", choices=choices.PRECISIONS,
                            help="auto: bfloat16 + channels-last where the device computes bf16 natively, else fp32")
    backend: str = option("torch", choices=choices.BACKENDS,
                          help="what runs the network: torch, onnxruntime (its ONNX export, float32 on the CPU; "
                               "needs pip install unetseg[onnx]) or openvino (its ONNX export on the CPU, float32 "
                               "or bfloat16; needs pip install unetseg[onnx,openvino])")
    compile: bool = option(False, help="torch.compile the network (torch backend; compiles once per tile shape, "
                                       "worth it for many images or tiles of one size)")
    block: int | None = option(
        None, help="predict TIFF and OME-Zarr inputs block by block with bounded memory (a multiple of 256, e.g. "
                   "2048), for images larger than memory; writes a tiled <stem>.tif")
    halo: int = option(64, help="block-wise prediction: context pixels around each block")
    memory_budget: str | None = option(
        None, metavar="SIZE",
        help="memory the prediction of one image may use, e.g. 4GiB or 800MiB: a TIFF or OME-Zarr image that would "
             "need more whole (estimated from its size and the network) is predicted block by block like --block; "
             "default: 2GiB, or a quarter of this machine's memory if less (logged)")
    dask: bool = option(False, help="predict TIFF and OME-Zarr inputs block by block as Dask tasks, on a local "
                                    "cluster of this machine (or the one of --scheduler); labels as --block gives "
                                    "them, --format ome-zarr writes an OME-Zarr label image; needs pip install "
                                    "unetseg[dask]")
    scheduler: str | None = option(None, metavar="ADDRESS",
                                   help="with --dask (implied): the address of a running Dask scheduler, e.g. "
                                        "tcp://host:8786, instead of a local cluster")
    dask_workers: int | None = option(
        None, ge=1, help="with --dask: worker processes of the local cluster (one thread each); default: one per "
                         "core, fewer when their blocks would not fit in half of this machine's memory together")
    min_size: int | None = option(
        None, help="remove objects smaller than this many pixels; default: what training chose on its validation "
                   "set (prediction.yaml), else 0")
    fill_holes: bool = option(False, help="fill holes inside objects")
    instances: str | None = option(
        None, choices=choices.INSTANCE_METHODS,
        help="also write object labels, <stem>_instances.png (16-bit; a 32-bit <stem>_instances.tif beyond "
             "65,535 objects, .tif with --format tif, labels/instances with --format ome-zarr): auto (the method "
             "training chose on validation), connected components, a distance-transform watershed or a watershed "
             "seeded at confident foreground, which split touching objects")
    instance_threshold: float | None = option(
        None, gt=0, lt=1, help="the foreground probability of the objects --instances and --rois separate (0.5: the "
                               "predicted classes' foreground; lower narrows the gaps between objects, higher widens "
                               "them); default: what training chose on validation (prediction.yaml), else 0.5")
    seed_threshold: float | None = option(
        None, gt=0, lt=1, help="the probability of the confident foreground that seeds the seeded watershed; "
                               "default: what training chose on validation (prediction.yaml), else 0.9")
    probabilities: bool = option(False, help="also write <stem>_prob.tif (float16, a page per class)")
    format: str = option(
        "png", choices=OUTPUT_FORMATS,
        help="label image format: png, tif (zlib-compressed TIFF: <stem>.tif, <stem>_instances.tif) or ome-zarr "
             "(<stem>.ome.zarr: the image with its labels/classes and labels/instances label images, for napari; "
             "needs pip install unetseg[ome])")
    rois: bool = option(
        False, help="also write <stem>_rois.zip, an ImageJ/Fiji ROI set with one polygon per object (objects "
                    "separated by the --instances method; default: what training chose)")
    overwrite: bool = option(False, help="replace output files that exist already (without it, predict refuses to "
                                         "start when any output file exists)")
    channel: list[int] | None = channel_option()
    plane: int | None = plane_option()


@dataclass
class EvaluateConfig:
    """Options of `unetseg evaluate`: either --pred DIR --truth DIR, or --checkpoint CKPT --data DIR."""

    SECTION: ClassVar[str] = "evaluate"

    pred: str | None = option(None, metavar="DIR", help="folder of predicted label images")
    truth: str | None = option(None, metavar="DIR", help="folder of true masks (or a DATA folder with masks/)")
    checkpoint: str | None = option(None, metavar="CKPT", help="predict with this checkpoint (or a run "
                                                               "directory: its best.safetensors) instead of reading "
                                                               "--pred")
    data: str | None = option(None, metavar="DIR", help="DATA folder (images/ + masks/) to predict and score with "
                                                        "--checkpoint")
    num_classes: int | None = option(None, help="classes incl. background (default: detect from the masks)")
    ignore_index: int | None = option(None, help="a mask value meaning 'not annotated' (e.g. 255), not scored")
    json: str | None = option(None, metavar="PATH", help="where to write the JSON report (default: PRED/metrics.json "
                                                         "or ./metrics.json)")
    device: str = option("auto", help="auto, cpu, cuda, cuda:N or mps")
    instances: bool = option(
        False, help="also score objects: AP@0.5, DSB AP 0.5:0.95, F1@0.5, AJI, Rand error, VI, Hausdorff/HD95 "
                    "(predictions: uint16 instance label images, or masks split into connected components; with "
                    "--checkpoint: the objects of the run's chosen instance method)")
    truth_instances: str | None = option(
        None, metavar="DIR", help="folder of true instance label images (0 = background, e.g. DATA/labels), paired "
                                  "by stem; implies --instances (default: connected components of the true masks)")
    report: str | None = option(
        None, metavar="HTML", help="also write an HTML report: the metrics, a per-image table to sort and filter, "
                                   "and each image with its truth, prediction and error map, worst first (with "
                                   "--checkpoint from a run directory: the run too)")
    images: str | None = option(None, metavar="DIR", help="with --report and --pred: the folder of the evaluated "
                                                          "images (default: TRUTH/images)")


@dataclass
class ReportConfig:
    """Options of `unetseg report`."""

    SECTION: ClassVar[str] = "report"

    run_dir: str = option(positional=True, metavar="RUN_DIR",
                          help="the run directory of unetseg train (config.yaml, recipe.yaml, log.csv)")
    output: str = option(required=True, aliases=("-o",), metavar="HTML", help="the HTML file to write")
    eval: str | None = option(None, metavar="METRICS_JSON",
                              help="the JSON report of unetseg evaluate (default with --pred: scored here)")
    images: str | None = option(None, metavar="DIR", help="folder of the evaluated images (default: TRUTH/images)")
    pred: str | None = option(None, metavar="DIR", help="folder of predicted label images, to show each image with "
                                                        "its truth, prediction and error map (with --truth)")
    truth: str | None = option(None, metavar="DIR", help="folder of true masks (or a DATA folder with masks/)")
    truth_instances: str | None = option(
        None, metavar="DIR", help="folder of true instance label images, paired by stem, to mark merged and split "
                                  "objects (default: with an --eval that scored objects, the folder it scored "
                                  "against, else the truth's connected components)")
    ignore_index: int | None = option(None, help="a mask value meaning 'not annotated' (e.g. 255), not scored")
    thumbnail: int = option(256, ge=16, help="the longest side of each picture, in pixels")


@dataclass
class InspectConfig:
    """Options of `unetseg inspect`."""

    SECTION: ClassVar[str] = "inspect"

    data: str = option(positional=True, metavar="DATA", help="dataset folder")
    layout: str = option("auto", choices=choices.LAYOUTS, help="dataset layout; auto detects it from the folder "
                                                               "contents")
    json: str | None = option(None, metavar="PATH", help="also write the fingerprint as JSON")
    num_classes: int | None = option(None, help="classes incl. background (default: from the layout / masks)")
    instances: bool = option(False, help="folder layout: also read labels/ instance images")
    mask_suffix: str = option("", metavar="SUFFIX", help="folder layout: masks/<stem><SUFFIX>.* pairs images/<stem>.*")
    split: str | None = option(None, help="voc / cityscapes split (default: train); ctc: the sequences, e.g. 01 "
                                          "or 01,02 (default: all)")
    channel: list[int] | None = channel_option()
    plane: int | None = plane_option()


@dataclass
class ExportConfig:
    """Options of `unetseg export`."""

    SECTION: ClassVar[str] = "export"

    checkpoint: str = option(positional=True, metavar="CHECKPOINT",
                             help="a .safetensors checkpoint, or a run directory (its best.safetensors, else "
                                  "last.safetensors)")
    output: str = option(positional=True, metavar="OUTPUT",
                         help="the ONNX file to write (name ending in .onnx), or the bioimage.io package (a .zip, or "
                              "a new folder with --format bioimageio)")
    opset: int = option(DEFAULT_OPSET, help="ONNX opset version")
    size: int | None = option(
        None, help="export for fixed SIZE x SIZE inputs (an accepted input side) instead of dynamic sizes")
    format: str | None = option(
        None, choices=EXPORT_FORMATS,
        help="onnx (an ONNX file) or bioimageio (a bioimage.io model package: a zip, or a folder for an OUTPUT not "
             "ending in .zip; needs pip install unetseg[bioimageio]); default: bioimageio for an OUTPUT ending in "
             ".zip, else onnx")
    image: str | None = option(
        None, metavar="IMAGE", help="bioimageio: the image its test tensors and cover are made from (default: a "
                                    "synthetic nuclei image)")
    name: str | None = option(None, help="bioimageio: the model's name (5 to 128 letters, digits, spaces and _+-(); "
                                         "default: unetseg NETWORK CLASSES)")
    description: str | None = option(None, help="bioimageio: what the model does, in one line (default: from the "
                                                 "classes and the network)")
    authors: list[str] | None = option(None, aliases=("--author",), metavar="NAME",
                                       help="bioimageio: the authors' names (default: Unknown)")
    license: str = option(DEFAULT_LICENSE, metavar="SPDX",
                          help="bioimageio: the licence, an SPDX identifier such as CC-BY-4.0, MIT or BSD-3-Clause")
    cite: dict[str, Any] = option({}, metavar="TEXT=DOI_OR_URL",
                                  help="bioimageio: a publication to cite, repeatable (default: the network's paper)")


@dataclass
class DemoConfig:
    """Options of `unetseg demo`."""

    SECTION: ClassVar[str] = "demo"

    workdir: str = option("demo_output", metavar="DIR", help="where data, run, predictions and metrics go")
    epochs: int = option(12, help="training epochs")
    progress: bool = option(True, help="show a progress bar")


@dataclass
class ListModelsConfig:
    """Options of `unetseg models`."""

    SECTION: ClassVar[str] = "models"

    image_size: int = option(512, help="image side for the GFLOPs column")
    markdown: bool = option(False, help="print a Markdown table")
    options: bool = option(False, help="also list each model's options and defaults")
