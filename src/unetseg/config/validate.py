"""Range, choice and consistency checks that types alone cannot express, for a run and for ``unetseg predict``.

The choices and bounds come from the field metadata (:mod:`.sections`, :mod:`.commands`); the checks that involve
more than one field are written out here.
"""

from __future__ import annotations

from ..compilation import compile_unavailable_reason
from ..data.augment import build_augmentation
from ..data.io import DataError
from ..distributed import rank_and_world
from ..inference.files import OutputConflictError, check_outputs, collect_inputs
from ..inference.memory import parse_memory
from .commands import PredictConfig
from .errors import ConfigError
from .options import check_fields
from .run import Config


def validate(config: Config) -> None:
    """Check every value of ``config`` against its choices and bounds, and the combinations of values.

    Raises:
        ConfigError: naming the key and the bad value, e.g. ``train.lr must be > 0, got -1`` or
            ``train.optimizer='x' is not one of adam, adamw, sgd``.
    """
    for section in Config.section_types():
        check_fields(getattr(config, section), section)
    tc = config.train
    if tc.epochs is not None and tc.time_budget is not None:
        raise ConfigError(f"train.epochs={tc.epochs} and train.time_budget={tc.time_budget}: set one of them "
                          "(the time budget fits the number of epochs)")
    if tc.freeze_encoder and not tc.init:
        raise ConfigError(f"train.freeze_encoder={tc.freeze_encoder} (--freeze-encoder) freezes the encoder weights "
                          "that --init loads, and train.init is not set: give --init CHECKPOINT, or leave "
                          "--freeze-encoder out")
    if tc.init is not None and not tc.init.strip():
        raise ConfigError("train.init is empty: give a checkpoint file or run directory (--init CHECKPOINT), or "
                          "leave it out to start from random weights")
    try:
        build_augmentation(tc.augmentation)
    except ValueError as err:
        raise ConfigError(f"train.augmentation: {err}") from err


def validate_predict(options: PredictConfig) -> None:
    """Check the options of ``unetseg predict`` before any image is read.

    Raises:
        ConfigError: a bad --block/--halo, --tile/--overlap/--batch-size, an option the onnxruntime or openvino
            backend does not take, --compile where torch.compile cannot run, a value outside its choices, a bad
            --memory-budget or --halo, --dask options that do not go together, or an --output that would lose data
            (see :func:`_check_predict_paths`).
    """
    o = options
    if o.block is not None and (o.block < 256 or o.block % 256 or o.halo < 0):
        raise ConfigError(f"--block must be a positive multiple of 256 (got {o.block}) and --halo >= 0 "
                          f"(got {o.halo})")
    if o.tile is not None and o.tile < 1 or not 0 <= o.overlap < 1 or o.batch_size < 1:
        raise ConfigError(f"--tile must be >= 1 (got {o.tile}), --overlap in [0, 1) (got {o.overlap}), "
                          f"--batch-size >= 1 (got {o.batch_size})")
    if o.backend in ("onnxruntime", "openvino"):
        runs = "float32 on the CPU" if o.backend == "onnxruntime" else "on the CPU"
        clashes = [flag for flag, bad in (("--precision bf16", o.backend == "onnxruntime" and o.precision == "bf16"),
                                          ("--compile", o.compile),
                                          (f"--device {o.device}", o.device not in ("auto", "cpu"))) if bad]
        if clashes:
            raise ConfigError(f"--backend {o.backend} runs {runs}; it does not go with {', '.join(clashes)}")
    if o.compile and (reason := compile_unavailable_reason("cuda" if "cuda" in o.device else "cpu")):
        raise ConfigError(f"--compile: {reason}")
    check_fields(o, PredictConfig.SECTION)
    _check_block_options(o)
    _check_predict_paths(o)


def _check_block_options(options: PredictConfig) -> None:
    """ConfigError for a bad --memory-budget, --halo, or Dask option (see :func:`validate_predict`)."""
    o = options
    if o.halo < 0:
        raise ConfigError(f"--halo must be >= 0 pixels, got {o.halo}")
    if o.memory_budget is not None:
        try:
            parse_memory(o.memory_budget)
        except ValueError as err:
            raise ConfigError(f"--memory-budget: {err}") from None
    if not (o.dask or o.scheduler):
        return
    if o.block is not None and o.halo > o.block:
        raise ConfigError(f"--halo {o.halo} is larger than --block {o.block}: with --dask a block's context comes "
                          "from its neighbouring blocks; use a smaller --halo or a larger --block")
    if o.scheduler and o.dask_workers is not None:
        raise ConfigError(f"--dask-workers {o.dask_workers} sizes a local cluster; the cluster of --scheduler "
                          f"{o.scheduler} runs already: leave out one of them")
    if rank_and_world()[1] > 1:
        raise ConfigError("--dask (or --scheduler) and several processes (torchrun) do not go together: start one "
                          "process, which hands the blocks to the Dask workers")


def _check_predict_paths(options: PredictConfig) -> None:
    """ConfigError for an --output that is (or holds) an input image or an input folder, or whose output files
    exist already without --overwrite (:func:`~unetseg.inference.files.check_outputs`). Inputs that are missing or
    not images are left to ``predict``, which names them."""
    o = options
    try:
        files = collect_inputs(o.input)
    except DataError:
        return
    try:
        check_outputs(o.input, files, o.output, o.overlay, o.probabilities, o.instances is not None, o.block,
                      o.overwrite, o.format, o.rois, o.dask or bool(o.scheduler))
    except OutputConflictError as err:
        raise ConfigError(str(err)) from None
