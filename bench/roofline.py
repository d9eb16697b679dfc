"""How far the default network's prediction and training step are from this machine's roofline.

Every aten operator call of one prediction (and of one training step) is recorded in an untimed pass with a
``TorchDispatchMode``, below autograd and autocast, so autocast's bfloat16 casts and the backward and optimizer
operators are calls of their own. For each call:

* FLOPs: the formula of ``torch.utils.flop_counter.flop_registry`` (matrix products and convolutions, forward and
  backward); every other operator counts 0 FLOPs: elementwise operators, normalisations, pooling, casts and copies
  are taken as memory-bound, their time on the roofline is their bytes over the bandwidth. Operators are seen as
  ``FlopCounterMode`` sees them (composite operators decomposed first), so the FLOP totals equal its totals, which
  is checked and printed for every path.
* bytes: the sizes (numel x element size) of the distinct tensors read and of those written: all tensor inputs,
  outputs and arguments the operator writes in place. A tensor the operator only overwrites (an ``out=`` argument,
  the destination of ``copy_``, ``fill_``, ``zero_``) counts as written, not read; the gradients of a fused
  Adam(W) step count as read only (its schema marks them written, for unscaling with ``grad_scale``). Views and
  aliases (``view``, ``_unsafe_view``, ``t``, ``permute``, ``expand``, ``as_strided``, ``detach``, ...) and
  allocations (``empty``, ...) move 0 bytes.
* roofline time: max(FLOPs / peak, bytes / bandwidth), with the bfloat16 matmul peak for operators on bfloat16
  (or float16) tensors and the float32 peak otherwise.

The peaks are the highest median GFLOP/s of ``torch.mm`` over several square sizes, measured interleaved (the
bfloat16 matmul of a CPU varies from run to run: medians, not maxima); the bandwidth is a STREAM-like copy
(``dst.copy_(src)`` of float32 arrays far larger than the caches, read + write = 2 x size), with the triad
(``c = b + s * a``, 3 x size) reported beside it. Both are measured in the same run as the paths. The measured time
of each path is the median of repeats run interleaved with the other paths.

Paths: ``unet_bn`` prediction of a 512 x 512 image as ``Predictor`` runs it (batch norm folded, bfloat16 autocast
where the CPU has it, channels-last, inference mode, ``padded_forward``) with the preset's 64 base channels and
with 32; and the training step of ``unet_bn`` with 32 base channels, batch or instance norm, a batch of 2 x 1 x
256 x 256, BCE + Dice on one output channel and an AdamW step.

Used by ``python bench/speed.py --roofline`` (``--quick``: 64 x 64 images, small matmuls and a 64 MiB copy).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from common import machine
from speed import interleaved, predict_fn, step_fn
from unetseg.inference.fusion import fold_batch_norm
from unetseg.losses import build_loss
from unetseg.models import create_model
from unetseg.optim import build_optimizer
from unetseg.precision import resolve_precision

aten = torch.ops.aten
#: operators that alias their input or only allocate: no bytes move (views are found from the schema as well)
NO_TRAFFIC = {aten.view, aten._unsafe_view, aten.t, aten.permute, aten.expand, aten.as_strided, aten.detach,
              aten.alias, aten.lift_fresh, aten._reshape_alias, aten.empty, aten.empty_like, aten.empty_strided,
              aten.new_empty, aten.new_empty_strided, aten.resize_, aten.set_}
#: in-place operators that overwrite their first argument without reading it
OVERWRITE = {aten.copy_, aten.fill_, aten.zero_}
#: fused optimizers whose schema marks the gradients as written: they are only read unless ``grad_scale`` is given
FUSED_OPTIMIZERS = {aten._fused_adam_, aten._fused_adamw_}
#: shape and metadata queries: not operators that compute anything
QUERIES = {aten.size.default, aten.sym_size.default, aten.stride.default, aten.sym_stride.default,
           aten.storage_offset.default, aten.sym_storage_offset.default, aten.numel.default, aten.sym_numel.default,
           aten.dim.default, aten.is_contiguous.default, aten.is_contiguous.memory_format,
           aten.is_strides_like_format.default, aten.is_non_overlapping_and_dense.default,
           aten.sym_is_contiguous.default, torch.ops.prim.layout.default}
LOW_PRECISION = (torch.bfloat16, torch.float16)


@dataclass
class OpCall:
    """One recorded aten operator call: its name, input shapes and dtypes (a string), FLOPs, bytes moved and
    whether it runs in bfloat16/float16 (which matmul peak applies)."""

    name: str
    shapes: str
    flops: int
    bytes: int
    low_precision: bool


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in a (nested) argument value."""
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


def _arguments(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> list[tuple[Any, Any]]:
    """(schema argument, value) pairs of a call, positional then keyword."""
    pairs = []
    for i, arg in enumerate(func._schema.arguments):
        if i < len(args):
            pairs.append((arg, args[i]))
        elif arg.name in kwargs:
            pairs.append((arg, kwargs[arg.name]))
    return pairs


def op_bytes(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> int:
    """Bytes one call moves: distinct tensors read plus distinct tensors written (module docstring)."""
    if func.is_view or func._overloadpacket in NO_TRAFFIC:
        return 0
    read: dict[int, torch.Tensor] = {}
    written: dict[int, torch.Tensor] = {id(t): t for t in _tensors(out)}
    pairs = _arguments(func, args, kwargs)
    unscaled = func._overloadpacket in FUSED_OPTIMIZERS and all(
        value is None for arg, value in pairs if arg.name == "grad_scale")
    for position, (arg, value) in enumerate(pairs):
        mutated = arg.alias_info is not None and arg.alias_info.is_write and not (unscaled and arg.name == "grads")
        overwritten = arg.is_out or (position == 0 and func._overloadpacket in OVERWRITE)
        for t in _tensors(value):
            if mutated:
                written[id(t)] = t
            if not overwritten:
                read[id(t)] = t
    return sum(t.numel() * t.element_size() for t in [*read.values(), *written.values()])


def _describe(args: tuple, kwargs: dict) -> tuple[str, bool]:
    """(the shapes and dtypes of a call's tensor inputs, the first three of them; whether the first floating-point
    input is bfloat16/float16)."""
    tensors = _tensors((args, kwargs))
    names = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32", torch.int64: "i64",
             torch.bool: "bool"}
    parts = ["x".join(map(str, t.shape)) + " " + names.get(t.dtype, str(t.dtype).replace("torch.", ""))
             for t in tensors[:3]]
    if len(tensors) > 3:
        parts.append(f"+{len(tensors) - 3} more")
    floating = next((t for t in tensors if t.is_floating_point()), None)
    return ", ".join(parts), floating is not None and floating.dtype in LOW_PRECISION


class OpRecorder(TorchDispatchMode):
    """Records an :class:`OpCall` for every aten operator call under it, decomposing composite operators first as
    ``FlopCounterMode`` does (so both see the same calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[OpCall] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        """Run the call (or its decomposition, whose calls come back here) and record it."""
        kwargs = kwargs or {}
        if func in QUERIES or func.namespace != "aten":  # e.g. the optimizer's profiler.record_function
            return func(*args, **kwargs)
        if func is not torch.ops.prim.device.default:
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        shapes, low = _describe(args, kwargs)
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        flops = int(formula(*args, **kwargs, out_val=out)) if formula is not None else 0
        self.calls.append(OpCall(str(func._overloadpacket).replace("aten.", ""), shapes, flops,
                                 op_bytes(func, args, kwargs, out), low))
        return out


def record(fn: Callable[[], object]) -> list[OpCall]:
    """The operator calls of one ``fn()``."""
    recorder = OpRecorder()
    with recorder:
        fn()
    return recorder.calls


def counted_flops(fn: Callable[[], object]) -> int:
    """``FlopCounterMode``'s total FLOPs of one ``fn()`` (the check of :func:`record`)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peaks(sizes: tuple[int, ...], repeats: int) -> dict[str, dict[int, float]]:
    """Median GFLOP/s of ``torch.mm`` of two n x n matrices in bfloat16 and float32 for each n, interleaved."""
    fns: dict[str, Callable[[], object]] = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a16, b16 = a.bfloat16(), b.bfloat16()
        fns[f"bf16 {n}"] = lambda a16=a16, b16=b16: torch.mm(a16, b16)
        fns[f"fp32 {n}"] = lambda a=a, b=b: torch.mm(a, b)
    seconds = interleaved(fns, repeats)
    result: dict[str, dict[int, float]] = {"bf16": {}, "fp32": {}}
    for key, s in seconds.items():
        dtype, n = key.split()
        result[dtype][int(n)] = round(2 * int(n) ** 3 / s / 1e9, 1)
    return result


def bandwidth(mib: int, repeats: int) -> dict[str, float]:
    """GB/s (1e9 bytes) of a float32 copy of ``mib`` MiB (read + write: 2 x size) and of the triad
    ``c = b + 3 a`` (3 x size), medians of interleaved repeats."""
    n = mib * 2**20 // 4
    a, b, c = torch.rand(n), torch.rand(n), torch.empty(n)
    c.zero_()  # touch every page before timing
    size = n * 4
    seconds = interleaved({"copy": lambda: b.copy_(a), "triad": lambda: torch.add(b, a, alpha=3.0, out=c)}, repeats)
    result = {"copy": round(2 * size / seconds["copy"] / 1e9, 2), "triad": round(3 * size / seconds["triad"] / 1e9, 2)}
    del a, b, c
    return result


def prediction(base: int, size: int, precision: str) -> Callable[[], torch.Tensor]:
    """One ``unet_bn`` prediction of a ``size`` x ``size`` image as ``Predictor`` runs it: batch norm folded,
    channels-last for bfloat16, ``speed.predict_fn`` (inference mode, autocast, ``padded_forward``)."""
    model = fold_batch_norm(create_model("unet_bn", num_classes=2, base_channels=base))[0]
    x = torch.randn(1, 1, size, size)
    if precision == "bf16":
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return predict_fn(model, x, precision)


def training_step(norm: str, size: int, precision: str) -> Callable[[], None]:
    """One training step of ``unet_bn`` (32 base channels, ``norm``, one output channel) on a batch of 2 x 1 x
    ``size`` x ``size``, as ``speed.py`` times it: forward under autocast (channels-last for bfloat16), BCE + Dice
    on the float32 logits, backward, an AdamW step (``unetseg.optim.build_optimizer``, as a run builds it)."""
    model = create_model("unet_bn", num_classes=1, base_channels=32, norm=norm).train()
    x = torch.randn(2, 1, size, size)
    y = (torch.rand(2, size, size) > 0.5).long()
    if precision == "bf16":
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = build_optimizer("adamw", model.parameters(), lr=1e-3)  # as a run builds it (fused where it can)
    return step_fn(model, optimizer, x, y, build_loss("bce_dice", 1), precision)


def paths(size: int, train_size: int, precision: str) -> dict[str, Callable[[], object]]:
    """The measured paths by name (module docstring)."""
    return {
        f"predict unet_bn base 64 {size}x{size}": prediction(64, size, precision),
        f"predict unet_bn base 32 {size}x{size}": prediction(32, size, precision),
        f"train step base 32 batch norm 2x{train_size}x{train_size}": training_step("batch", train_size, precision),
        f"train step base 32 instance norm 2x{train_size}x{train_size}":
            training_step("instance", train_size, precision),
    }


def roofline_seconds(call: OpCall, peaks: dict[str, float], bytes_per_s: float) -> float:
    """max(FLOPs / peak, bytes / bandwidth) of one call; ``peaks`` in FLOP/s by ``"bf16"`` / ``"fp32"``."""
    peak = peaks["bf16"] if call.low_precision else peaks["fp32"]
    return max(call.flops / peak, call.bytes / bytes_per_s)


def aggregate(calls: list[OpCall], peaks: dict[str, float], bytes_per_s: float) -> list[dict[str, Any]]:
    """Rows per (operator, input shapes): calls, FLOPs, bytes, roofline seconds and which bound sets it; sorted by
    roofline seconds, largest first."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for call in calls:
        row = rows.setdefault((call.name, call.shapes), {"op": call.name, "inputs": call.shapes, "calls": 0,
                                                        "flops": 0, "bytes": 0, "roofline_s": 0.0,
                                                        "compute_s": 0.0})
        seconds = roofline_seconds(call, peaks, bytes_per_s)
        row["calls"] += 1
        row["flops"] += call.flops
        row["bytes"] += call.bytes
        row["roofline_s"] += seconds
        peak = peaks["bf16"] if call.low_precision else peaks["fp32"]
        row["compute_s"] += seconds if call.flops / peak >= call.bytes / bytes_per_s else 0.0
    for row in rows.values():
        row["bound"] = "compute" if row["compute_s"] >= row["roofline_s"] / 2 else "memory"
    return sorted(rows.values(), key=lambda r: -r["roofline_s"])


def summarize(calls: list[OpCall], measured_s: float, reference_flops: int, peaks: dict[str, float],
              bytes_per_s: float) -> dict[str, Any]:
    """Totals of one path: FLOPs, bytes, arithmetic intensity, roofline seconds (and the part of it in
    compute-bound calls), measured seconds, their ratio, the FLOP check and the roofline seconds per operator."""
    rows = aggregate(calls, peaks, bytes_per_s)
    flops, moved = sum(c.flops for c in calls), sum(c.bytes for c in calls)
    roof = sum(r["roofline_s"] for r in rows)
    by_op: dict[str, float] = defaultdict(float)
    for row in rows:
        by_op[row["op"]] += row["roofline_s"]
    by_op = {op: round(s, 6) for op, s in by_op.items() if round(s, 6) > 0}
    return {
        "calls": len(calls), "flops": flops, "bytes": moved, "intensity_flop_per_byte": round(flops / moved, 2),
        "roofline_s": roof, "roofline_compute_bound_s": sum(r["compute_s"] for r in rows),
        "measured_s": measured_s, "ratio": measured_s / roof,
        "flop_counter_flops": reference_flops, "flops_agree": flops == reference_flops,
        "roofline_s_by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1])), "top": rows[:15],
    }


def print_path(name: str, summary: dict[str, Any]) -> None:
    """The table of the 15 costliest (operator, shapes) rows of a path on the roofline, and its totals."""
    print(f"\n{name}: {summary['calls']} operator calls")
    print(f"{'op':<28}{'inputs':<52}{'calls':>6}{'GFLOP':>9}{'MB':>9}{'FLOP/B':>8}{'roof ms':>9}  bound")
    for r in summary["top"]:
        intensity = r["flops"] / r["bytes"] if r["bytes"] else float("nan")
        print(f"{r['op'][:27]:<28}{r['inputs'][:51]:<52}{r['calls']:>6}{r['flops'] / 1e9:>9.2f}"
              f"{r['bytes'] / 1e6:>9.1f}{intensity:>8.1f}{r['roofline_s'] * 1e3:>9.2f}  {r['bound']}")
    shares = ", ".join(f"{op} {s / summary['roofline_s']:.0%}" for op, s in
                       list(summary["roofline_s_by_op"].items())[:6])
    print(f"roofline time by operator: {shares}")
    print(f"total: {summary['flops'] / 1e9:.2f} GFLOP, {summary['bytes'] / 1e9:.3f} GB, "
          f"{summary['intensity_flop_per_byte']:.1f} FLOP/byte; roofline {summary['roofline_s'] * 1e3:.1f} ms "
          f"({summary['roofline_compute_bound_s'] / summary['roofline_s']:.0%} in compute-bound calls), measured "
          f"{summary['measured_s'] * 1e3:.1f} ms: measured / roofline = {summary['ratio']:.2f}")
    check = "equal" if summary["flops_agree"] else "DIFFERENT"
    print(f"FLOP check: recorded {summary['flops']} vs FlopCounterMode {summary['flop_counter_flops']}: {check}")


def measure_machine(quick: bool, repeats: int) -> dict[str, Any]:
    """The matmul peaks (GFLOP/s by dtype and size, and the highest median of each dtype) and the copy and triad
    bandwidths (GB/s), printed as they come."""
    sizes = (256, 512, 1024) if quick else (1024, 2048, 4096)
    gflops = matmul_peaks(sizes, repeats)
    peaks = {dtype: max(by_size.values()) for dtype, by_size in gflops.items()}
    print(f"matmul GFLOP/s (medians of {repeats}): " + "; ".join(
        f"{dtype} " + ", ".join(f"{n}: {v:.0f}" for n, v in by_size.items()) for dtype, by_size in gflops.items())
        + f"; peaks: bf16 {peaks['bf16']:.0f}, fp32 {peaks['fp32']:.0f}", flush=True)
    mib = 64 if quick else 512
    stream = bandwidth(mib, repeats)
    print(f"bandwidth GB/s ({mib} MiB float32 arrays, medians of {repeats}): copy {stream['copy']:.1f}, "
          f"triad {stream['triad']:.1f}", flush=True)
    if stream["triad"] > 1.2 * stream["copy"]:
        print("note: the triad moves bytes faster than the copy (a busy machine, or a copy that does not reach the "
              "memory's bandwidth): the memory-bound roofline times, taken at the copy's rate, are long", flush=True)
    return {"matmul_gflops": gflops, "peak_gflops": peaks, "bandwidth_gbs": stream, "stream_mib": mib}


def run_roofline(quick: bool = False, repeats: int = 5, size: int | None = None) -> dict[str, Any]:
    """Measure the machine, record and time every path, print the tables; returns the report (a JSON-ready dict).
    ``size``: the prediction image side (default 512; 64 with ``quick``, which also trains on 64 x 64)."""
    precision = resolve_precision("auto", torch.device("cpu"))
    report: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d"),
                              "threads": torch.get_num_threads(), "torch": torch.__version__, "precision": precision}
    report.update(measure_machine(quick, max(5, repeats)))
    peaks = {dtype: g * 1e9 for dtype, g in report["peak_gflops"].items()}
    bytes_per_s = report["bandwidth_gbs"]["copy"] * 1e9
    size = size or (64 if quick else 512)
    fns = paths(size, 64 if quick else 256, precision)
    recorded: dict[str, tuple[list[OpCall], int]] = {}
    for name, fn in fns.items():
        fn()  # warm-up: the optimizer's state exists before the recorded step
        recorded[name] = (record(fn), counted_flops(fn))
    measured = interleaved(fns, max(3, repeats))
    report["paths"] = {}
    for name, (calls, reference) in recorded.items():
        summary = summarize(calls, measured[name], reference, peaks, bytes_per_s)
        print_path(name, summary)
        report["paths"][name] = {k: v for k, v in summary.items() if k != "top"}
    print("\nmeasured / roofline: " + "; ".join(f"{name} {p['ratio']:.2f}" for name, p in report["paths"].items()))
    return report
