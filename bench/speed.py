"""Speed on this machine, in one process: matmul peaks, FLOPs per model, prediction and training-step times of our
U-Nets and MONAI's (BasicUNet, UNet) in float32 eager and in our fastest path (bfloat16 autocast + channels-last
where the CPU has native bf16), achieved GFLOP/s and the fraction of the bf16 matmul peak. For unet_bn also the
other prediction paths: ONNX Runtime (float32, ``--backend onnxruntime``) and torch.compile in float32 and in the
fastest path (``--compile``), with the compile time of the first call.

Timings are medians over repeats after a warm-up, measured interleaved (A, B, A, B, ...) so that all paths see the
same machine state. Needs the bench extra for the peers (pip install monai) and the onnx extra for ONNX Runtime
(pip install unetseg[onnx]; the row is left out without it).

    python bench/speed.py --repeats 5                 # the full measurement (a quiet machine, ~10+ minutes)
    python bench/speed.py --profile                   # where one unet_bn 512x512 prediction spends its time
    python bench/speed.py --quick                     # smoke test of every path at 64x64 (numbers meaningless)
    python bench/speed.py --roofline                  # measured time / roofline time of unet_bn prediction (base
                                                      # 64 and 32) and training steps (batch and instance norm),
                                                      # from per-operator FLOPs and bytes and this machine's bf16
                                                      # matmul peak and copy bandwidth (bench/roofline.py)
    python bench/speed.py --roofline --quick          # the same at 64x64 with small arrays (< 1 minute)
    python bench/speed.py --cli-default               # what users get: a short default `unetseg train` run on ISBI
                                                      # 2012, its checkpoint's tuned prediction and `unetseg
                                                      # predict` vs the path measured here (bench/cli_path.py)
    python bench/speed.py --cli-default --quick       # the same on 256x256 crops, one repeat (< 2 minutes)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from common import machine
from op_profile import print_profile, profile_prediction
from unetseg.compilation import compile_model, compile_unavailable_reason
from unetseg.inference.fusion import fold_batch_norm
from unetseg.models.apply import padded_forward
from unetseg.losses import build_loss
from unetseg.models import create_model, list_models
from unetseg.models.summary import summarize
from unetseg.precision import autocast, resolve_precision


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, run interleaved after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - started)
    return {k: float(np.median(v)) for k, v in times.items()}


def matmul_peaks(repeats: int, n: int = 2048) -> dict[str, float]:
    """GFLOP/s of an n x n matrix product in float32 and bfloat16 (medians, interleaved)."""
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    t = interleaved({"fp32": lambda: torch.mm(a32, b32), "bf16": lambda: torch.mm(a16, b16)}, repeats)
    return {k: 2 * n**3 / v / 1e9 for k, v in t.items()}


def flops(model: torch.nn.Module, x: torch.Tensor, train: bool = False) -> float:
    """FLOPs of one forward pass of ``model`` on ``x`` (with ``train``: forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        if train:
            model(x).float().mean().backward()
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops()


def networks() -> dict[str, Callable[[], torch.nn.Module]]:
    """Factories of the measured networks by name: ours, and MONAI's where it is installed."""
    nets = {"unet": lambda: create_model("unet", num_classes=2),
            "unet_bn": lambda: create_model("unet_bn", num_classes=2)}
    try:
        from monai.networks.nets import UNet as MonaiUNet
        from monai.networks.nets import BasicUNet
    except ImportError:
        return nets
    nets["monai_basicunet"] = lambda: BasicUNet(spatial_dims=2, in_channels=1, out_channels=2)
    nets["monai_unet"] = lambda: MonaiUNet(spatial_dims=2, in_channels=1, out_channels=2,
                                           channels=(64, 128, 256, 512, 1024), strides=(2, 2, 2, 2), num_res_units=2)
    return nets


def predict_fn(model: torch.nn.Module, x: torch.Tensor, precision: str,
               forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Callable[[], torch.Tensor]:
    """One whole-image prediction as ``Predictor`` runs it (``forward`` replaces the network call)."""
    device = torch.device("cpu")

    def run() -> torch.Tensor:
        with torch.inference_mode(), autocast(precision, device):
            out = padded_forward(model, x, forward) if hasattr(model, "input_size_for") else model(x)
            return out.float()
    return run


def other_paths(make: Callable[[], torch.nn.Module], model: torch.nn.Module, x: torch.Tensor, fastest: str,
                ) -> tuple[dict[str, Callable[[], torch.Tensor]], dict[str, float]]:
    """The ONNX Runtime and torch.compile prediction paths of ``model`` (same weights), and the seconds of the
    first (exporting or compiling) call of each."""
    fns: dict[str, Callable[[], torch.Tensor]] = {}
    first_call: dict[str, float] = {}
    try:
        from unetseg.inference.backends import OnnxRuntimeForward

        started = time.perf_counter()
        fns["ort_fp32"] = predict_fn(model, x, "fp32", OnnxRuntimeForward.from_model(model))
        fns["ort_fp32"]()
        first_call["ort_fp32"] = time.perf_counter() - started
    except Exception as err:  # onnx extra not installed, or the export failed: leave the row out, say why
        print(f"ONNX Runtime row left out: {err}", flush=True)
    reason = compile_unavailable_reason("cpu")
    if reason is not None:
        print(f"torch.compile rows left out: {reason}", flush=True)
        return fns, first_call
    for precision in ("fp32", fastest):
        net = make().eval()
        net.load_state_dict(model.state_dict())
        inp = x
        if precision == "bf16":
            net, inp = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        key = f"compile_{precision}"
        fns[key] = predict_fn(compile_model(net), inp, precision)
        started = time.perf_counter()
        fns[key]()
        first_call[key] = time.perf_counter() - started
    return fns, first_call


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of pixels with the same arg-max class."""
    return float((a.argmax(1) == b.argmax(1)).float().mean())


def run_profile(size: int, peak: float, precision: str, repeats: int) -> dict:
    """The ``--profile`` table for one unet_bn prediction of a ``size`` x ``size`` image."""
    model = fold_batch_norm(create_model("unet_bn", num_classes=2))[0]  # as Predictor runs it
    x = torch.randn(1, 1, size, size)
    if precision == "bf16":
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    result = profile_prediction(model, predict_fn(model, x, precision), peak, repeats)
    print_profile(result, f"unet_bn {size}x{size} {precision} prediction, {torch.get_num_threads()} threads")
    return result


def parse_args() -> argparse.Namespace:
    """The command line, with the defaults that depend on ``--quick`` filled in."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, help="timed repeats per path (default 5; 1 with --quick)")
    parser.add_argument("--size", type=int, help="image side (default 512; 64 with --quick)")
    parser.add_argument("--models", nargs="+", help="only these networks (default: all; unet_bn with --quick)")
    parser.add_argument("--profile", action="store_true",
                        help="only profile one unet_bn prediction in the fastest path (op categories, conv GFLOP/s)")
    parser.add_argument("--roofline", action="store_true",
                        help="only the roofline of unet_bn prediction and training steps (bench/roofline.py)")
    parser.add_argument("--cli-default", action="store_true",
                        help="only the prediction path of a freshly trained default run vs this benchmark's "
                             "(bench/cli_path.py)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test of every prediction path, no training steps (sizes and repeats as above); "
                             "with --roofline or --cli-default their small variants")
    args = parser.parse_args()
    args.size = args.size or (64 if args.quick else 512)
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.models = args.models or (["unet_bn"] if args.quick else None)
    return args


def prediction_row(name: str, make: Callable[[], torch.nn.Module], model: torch.nn.Module, size: int,
                   repeats: int, fastest: str, peak: float) -> dict:
    """Prediction times of one network: float32 eager vs the fastest path (and, for unet_bn, the other paths)."""
    side = model.input_size_for(size) if hasattr(model, "input_size_for") else size
    fwd_flops = flops(model, torch.randn(1, 1, side, side))
    x = torch.randn(1, 1, size, size)
    fast = make().eval()
    fast.load_state_dict(model.state_dict())
    fast = fast.to(memory_format=torch.channels_last)
    unfolded = fast
    if name in list_models():  # our prediction path folds batch norm into the convolutions (Predictor)
        fast = fold_batch_norm(fast)[0]
    xc = x.contiguous(memory_format=torch.channels_last)
    ref = predict_fn(model, x, "fp32")()
    fns = {"fp32": predict_fn(model, x, "fp32"), "fast": predict_fn(fast, xc, fastest)}
    extra, first_call = other_paths(make, model, x, fastest) if name == "unet_bn" else ({}, {})
    if name == "unet_bn":
        extra["fast_without_bn_folding"] = predict_fn(unfolded, xc, fastest)
        first_call["fast_without_bn_folding"] = 0.0
    agree = {key: agreement(ref, fn()) for key, fn in {**fns, **extra}.items() if key != "fp32"}
    t = interleaved({**fns, **extra}, repeats)
    row = {
        "forward_gflops": round(fwd_flops / 1e9, 1),
        "predict_s_fp32": round(t["fp32"], 3), "predict_s_fast": round(t["fast"], 3),
        "predict_speedup": round(t["fp32"] / t["fast"], 2),
        "predict_gflops_per_s_fast": round(fwd_flops / t["fast"] / 1e9, 1),
        "predict_fraction_of_peak": round(fwd_flops / t["fast"] / 1e9 / peak, 3),
        "label_agreement_fast_vs_fp32": agree["fast"],
    }
    for key in extra:
        row[f"predict_s_{key}"] = round(t[key], 3)
        row[f"predict_speedup_{key}_vs_fp32"] = round(t["fp32"] / t[key], 2)
        row[f"predict_speedup_{key}_vs_fast"] = round(t["fast"] / t[key], 2)
        row[f"first_call_s_{key}"] = round(first_call[key], 1)
        row[f"label_agreement_{key}_vs_fp32"] = agree[key]
    return row


def step_fn(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], precision: str) -> Callable[[], None]:
    """One training step as timed here: forward under autocast, the loss on the float32 logits, backward, an
    optimizer step."""
    def run() -> None:
        with autocast(precision, torch.device("cpu")):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return run


def training_row(make: Callable[[], torch.nn.Module], model: torch.nn.Module, repeats: int, fastest: str) -> dict:
    """Training-step times (batch 2 x 256 x 256, CE + Dice, Adam) of one network: float32 vs the fastest path."""
    loss_fn = build_loss("ce_dice", 2)
    train_side = model.input_size_for(256) if hasattr(model, "input_size_for") else 256
    xt_ = torch.randn(2, 1, train_side, train_side)
    out_side = model.output_size(train_side) if hasattr(model, "output_size") else 256
    yt_ = (torch.rand(2, out_side, out_side) > 0.5).long()
    train_flops = flops(make().train(), xt_, train=True)

    net32, netf = make().train(), make().train().to(memory_format=torch.channels_last)
    ts = interleaved({
        "fp32": step_fn(net32, torch.optim.Adam(net32.parameters()), xt_, yt_, loss_fn, "fp32"),
        "fast": step_fn(netf, torch.optim.Adam(netf.parameters()), xt_.contiguous(memory_format=torch.channels_last),
                        yt_, loss_fn, fastest),
    }, max(3, repeats // 2))
    return {
        "train_step_s_fp32": round(ts["fp32"], 3), "train_step_s_fast": round(ts["fast"], 3),
        "train_speedup": round(ts["fp32"] / ts["fast"], 2),
        "train_gflops_per_s_fast": round(train_flops / ts["fast"] / 1e9, 1),
    }


def main() -> None:
    """Run the measurement the command line asks for and print its report as JSON."""
    args = parse_args()
    torch.manual_seed(0)
    if args.roofline:  # imported here: these modules import this one
        from roofline import run_roofline
        print(json.dumps(run_roofline(args.quick, args.repeats, args.size), indent=2, default=str))
        return
    if args.cli_default:
        from cli_path import run_cli_default
        print(json.dumps(run_cli_default(args.quick, args.repeats), indent=2, default=str))
        return
    fastest = resolve_precision("auto", torch.device("cpu"))
    report: dict = {"machine": machine(), "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
                    "torch": torch.__version__, "fastest_path": fastest, "matmul_gflops": matmul_peaks(args.repeats)}
    if args.profile:
        report["profile"] = run_profile(args.size, report["matmul_gflops"][fastest], fastest, args.repeats)
        print(json.dumps(report, indent=2, default=str))
        return
    report["model_gflops_512"] = {n: round(summarize(n).gflops, 1) for n in list_models()}
    rows = {}
    for name, make in networks().items():
        if args.models and name not in args.models:
            continue
        model = make().eval()
        rows[name] = prediction_row(name, make, model, args.size, args.repeats, fastest,
                                    report["matmul_gflops"][fastest])
        if not args.quick:
            rows[name].update(training_row(make, model, args.repeats, fastest))
        print(json.dumps({name: rows[name]}), flush=True)
    report["networks"] = rows
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
