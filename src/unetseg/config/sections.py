"""The three sections of a run configuration: which network (model), which images (data), how to train (train).

Every field is declared with :func:`.options.option`: its type and default here, its help text, choices,
bounds and command-line flag in the metadata. None means "chosen later": from the preset, the data or the recipe
(:mod:`unetseg.engine.plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from . import choices
from .image_options import channel_option, plane_option
from .options import option


@dataclass
class ModelConfig:
    """Which network to build (`unetseg models` lists them with their options)."""

    SECTION: ClassVar[str] = "model"

    name: str = option("unet_bn", flag="--model", help="registered model name (unet = the paper's network)")
    depth: int | None = option(None, help="number of pooling steps (default: the preset's, 4 for the U-Nets)")
    base_channels: int | None = option(
        None, help="feature maps of the first level (default: the preset's, or chosen from the data)")
    norm: str | None = option(None, choices=choices.NORMS,
                              help="normalisation layer (default: the preset's, or chosen from the batch size)")
    up_mode: str | None = option(None, choices=choices.UP_MODES,
                                 help="decoder upsampling of the U-Nets (default: the preset's, transpose)")
    dropout: float | None = option(None, help="dropout probability where the network has dropout (default: the "
                                              "preset's)")
    num_classes: int | None = option(
        None, flag="--model-num-classes",
        help="output channels (default: 1, a sigmoid head, for binary data, else data.num_classes)")
    options: dict[str, Any] = option(
        {}, flag="--model-options", aliases=("--model-opt",), metavar="KEY=VALUE",
        help="a further model option, e.g. deep_supervision=true (repeatable; `unetseg models --options` lists them)")


@dataclass
class DataConfig:
    """Where the images are and how to read them."""

    SECTION: ClassVar[str] = "data"

    train: str = option("", flag="--data", metavar="DATA",
                        help="the training dataset folder (images/ + masks/, or another layout)")
    layout: str = option("auto", choices=choices.LAYOUTS,
                         help="dataset layout; auto detects it from the folder contents (see `unetseg inspect`)")
    mask_suffix: str = option("", metavar="SUFFIX",
                              help="folder layout: masks/<stem><SUFFIX>.* pairs images/<stem>.*")
    colormap: str | None = option(None, metavar="FILE", help="folder layout: YAML/JSON file mapping class index -> "
                                                             "[R, G, B] of colour-coded masks")
    split: str | None = option(None, help="voc / cityscapes: the split of --data to train on (default train); "
                                          "--val-data reads 'val'; ctc: the sequences, e.g. 01 or 01,02 (default: "
                                          "all)")
    val: str | None = option(None, flag="--val-data", metavar="DIR",
                             help="a separate validation folder (default: hold out --val-fraction of --data)")
    val_fraction: float | None = option(
        None, ge=0, lt=1, help="fraction of --data held out for validation (default: 20% of the images, at most "
                               "max(50 images, 10%))")
    num_classes: int | None = option(
        None, help="label values in the masks incl. background, 2 = binary (default: detect from the masks)")
    class_names: list[str] | None = option(None, metavar="NAME",
                                           help="one name per class, background first (default: background, "
                                                "foreground for 2 classes, else class0, class1, ...)")
    ignore_index: int | None = option(
        None, help="a mask value meaning 'not annotated' (e.g. 255): left out of losses and metrics")
    truth: str | None = option(
        None, choices=choices.CTC_TRUTHS,
        help="ctc layout: the segmentation to learn: gold (NN_GT/SEG, often partial), silver (NN_ST/SEG, complete, "
             "computer-made) or gold+silver (gold where annotated, silver elsewhere) (default: gold when the "
             "dataset has it, else silver)")
    annotated_regions: bool = option(
        True, help="leave pixels known to be unannotated out of losses and metrics: folder layout: outside the "
                   "masks of DATA/regions/ (when it exists); ctc layout: cells with a tracking marker but no gold "
                   "label (--no-annotated-regions teaches them as background)")
    normalization: str = option("percentile", choices=choices.NORMALIZATIONS, help="intensity normalisation")
    normalization_scope: str = option(
        "image", choices=choices.NORMALIZATION_SCOPES,
        help="statistics of each image, or of the whole training set (stored in the checkpoint)")
    percentile_low: float = option(1.0, help="percentile normalisation: the intensity percentile mapped to 0")
    percentile_high: float = option(99.8, help="percentile normalisation: the intensity percentile mapped to 1")
    channel: list[int] | None = channel_option()
    plane: int | None = plane_option()


@dataclass
class TrainConfig:
    """How to train."""

    SECTION: ClassVar[str] = "train"

    epochs: int | None = option(None, gt=0, help="epochs (default 50, or fitted to --time-budget; with --resume: a "
                                                 "new total, the only option it takes)")
    time_budget: float | None = option(
        None, gt=0, metavar="MINUTES", help="train for this many minutes instead of a number of epochs (the whole "
                                            "run, from reading the data to choosing the prediction settings): "
                                            "epochs sized from a measured step, training stopped on time, the "
                                            "learning-rate schedule over the time spent")
    batch_size: int | None = option(None, gt=0, help="patches per step (default: about 2 x 256^2 pixels per step, "
                                                     "12 x on a GPU)")
    patch_size: int | None = option(
        None, gt=0, help="side of the training patches (output side); default: the median shorter image side, at "
                         "most 256 (512 on a GPU)")
    samples_per_epoch: int | None = option(
        None, gt=0, help="patches per epoch (default: enough to cover the training pixels once; with --time-budget "
                         "at most the steps of a tenth of the budget, from a measured step)")
    optimizer: str = option("adam", choices=choices.OPTIMIZERS, help="optimizer of the network weights")
    lr: float = option(1e-3, gt=0, help="learning rate (the peak, after warm-up)")
    weight_decay: float = option(0.0, ge=0, help="weight decay of the optimizer")
    momentum: float = option(0.99, help="SGD momentum (sgd only; the paper's value)")
    schedule: str = option("cosine", choices=choices.SCHEDULES, help="learning-rate schedule")
    warmup_epochs: int = option(0, ge=0, help="epochs of linear learning-rate warm-up")
    init: str | None = option(
        None, metavar="CHECKPOINT",
        help="fine-tune: start a new run from the weights of a trained network (a .safetensors file, or a run "
             "directory for its best checkpoint); its architecture is kept, a head for other classes is "
             "re-initialised (default: random weights)")
    freeze_encoder: int = option(
        0, ge=0, metavar="EPOCHS",
        help="with --init: the encoder (contracting path) gets no weight updates for the first EPOCHS epochs")
    tune_prediction: bool = option(
        True, help="after training, choose test-time augmentation, small-object removal and the instance method on "
                   "the validation set")
    loss: str = option("auto", choices=choices.LOSSES, help="loss; auto = CE+Dice (BCE+Dice for a one-channel head)")
    loss_options: dict[str, Any] = option(
        {}, aliases=("--loss-opt",), metavar="KEY=VALUE",
        help="a loss option, e.g. class_weights=[1,3] or ignore_index=255 (repeatable)")
    weight_map: bool | None = option(
        None, help="weight the loss with the U-Net border weight map, with gaps between touching objects (needs "
                   "DATA/labels instance labels; default: on when the training data has them)")
    weight_map_w0: float = option(10.0, gt=0, aliases=("--w0",), metavar="W0", help="weight map: border weight w0")
    weight_map_sigma: float = option(5.0, gt=0, aliases=("--sigma",), metavar="SIGMA",
                                     help="weight map: border width sigma in pixels")
    weight_map_balance: bool | None = option(
        None, help="weight map: include the paper's class-balance term (else 1 plus the border term; default: on "
                   "when foreground is under 5% of the annotated training pixels)")
    augment: bool = option(True, help="augment the training patches (flips, rotations, --augmentation)")
    augmentation: dict[str, Any] = option(
        {}, aliases=("--aug",), metavar="KEY=VALUE",
        help="augmentation override, e.g. elastic=false, affine=true, noise=0.3 (repeatable; keys: flip, rot90, "
             "affine, elastic, brightness_contrast, gamma, blur, noise)")
    foreground_fraction: float = option(
        0.33, ge=0, le=1, help="share of patches centred on foreground, so rare classes are seen")
    monitor: str = option("foreground_dice", choices=choices.MONITORS,
                          help="validation metric that picks the best checkpoint (higher is better; its mean "
                               "over the epoch and the two validated epochs before it)")
    seed: int = option(0, ge=0, help="random seed of the split, the network and the patches")
    device: str = option("auto", help="auto, cpu, cuda, cuda:N or mps")
    precision: str = option("auto", choices=choices.PRECISIONS,
                            help="auto: bf16 autocast + channels-last where the device has native bfloat16, else fp32")
    compile: bool = option(False, help="torch.compile the network (opt-in: the first steps and each new image size "
                                       "compile first)")
    num_workers: int | None = option(
        None, ge=0, aliases=("--workers",),
        help="data loader worker processes (default: 0 on a machine of 4 cores or fewer, else a quarter of the "
             "cores, at most 8)")
    cache_size: float | None = option(
        None, gt=0, metavar="GIB",
        help="GiB of prepared training images kept in memory; the others are read again when a patch needs them "
             "(default: 2, at most an eighth of the memory)")
    output_dir: str = option("runs", aliases=("--output",), metavar="DIR", help="folder for run directories")
    name: str | None = option(None, help="run directory name under --output-dir (default: a timestamp)")
    tensorboard: bool = option(
        False, help="also log to TensorBoard in RUN_DIR/tensorboard: the losses, validation metrics and learning "
                    "rate of every epoch, and a few validation images with their predictions (view it with "
                    "tensorboard --logdir RUN_DIR/tensorboard; needs pip install unetseg[tensorboard])")
    tensorboard_images_every: int = option(
        5, ge=1, help="with --tensorboard: log the validation images and their predictions every this many epochs "
                      "(and after the last)")
