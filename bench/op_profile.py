"""Where the time of one prediction goes, by kind of operation, and how fast the convolutions alone run.

Every operator's own (self) CPU time from ``torch.profiler`` is charged to a category: dtype and memory-format
conversions (``aten::to``, ``copy_``, ``contiguous``, ... wherever they are called, e.g. autocast casting weights
to bfloat16) are their own category; any other operator is charged to the outermost operator above it that names a
network layer (``conv2d``, ``conv_transpose2d``, ``batch_norm``, ``relu_``, ``max_pool2d``, ``cat``, ...), so the
kernels inside a convolution count as convolution. The rest (mirror padding, slicing, allocation) is "other".
Convolution FLOPs come from the layer shapes (2 * outputs * inputs-per-output), recorded by forward hooks.

Used by ``python bench/speed.py --profile``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import torch
from torch import nn

CONVERSIONS = {"aten::to", "aten::_to_copy", "aten::copy_", "aten::contiguous", "aten::clone",
               "aten::to_dense", "aten::to_mkldnn", "aten::_to_dense", "aten::empty_strided"}
LAYERS = {
    "aten::conv2d": "convolution", "aten::convolution": "convolution",
    "aten::conv_transpose2d": "upsampling", "aten::upsample_bilinear2d": "upsampling",
    "aten::upsample_nearest2d": "upsampling",
    "aten::batch_norm": "batch norm", "aten::native_batch_norm": "batch norm",
    "aten::_native_batch_norm_legit_no_training": "batch norm",
    "aten::relu": "activation", "aten::relu_": "activation", "aten::clamp_min_": "activation",
    "aten::threshold": "activation", "aten::sigmoid": "activation", "aten::softmax": "activation",
    "aten::max_pool2d": "pooling", "aten::max_pool2d_with_indices": "pooling",
    "aten::cat": "concatenation",
}
CONVERSION = "memory-format / dtype conversions"
CATEGORIES = ("convolution", "batch norm", "activation", "pooling", "upsampling", "concatenation", CONVERSION,
              "other")


def conv_flops(model: nn.Module, run: Callable[[], object]) -> tuple[dict[str, float], dict[tuple, float]]:
    """FLOPs of one ``run()`` in the model's convolutions (``"convolution"``) and transposed convolutions
    (``"upsampling"``): 2 per multiply-add, one multiply-add per output element, input channel and kernel tap;
    and the FLOPs per call of each (input shape, weight shape)."""
    totals: dict[str, float] = defaultdict(float)
    per_shape: dict[tuple, float] = {}

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        kernel = module.weight.shape[2] * module.weight.shape[3]
        if isinstance(module, nn.ConvTranspose2d):  # every input element meets out_channels * kernel weights
            flops = 2 * inputs[0].numel() * module.out_channels // module.groups * kernel
            totals["upsampling"] += flops
        else:
            flops = 2 * output.numel() * module.in_channels // module.groups * kernel
            totals["convolution"] += flops
        per_shape[(tuple(inputs[0].shape), tuple(module.weight.shape))] = flops

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return dict(totals), per_shape


def category(event) -> tuple[str, object]:
    """The category of a profiler event's self time (see the module docstring) and the layer event it is charged
    to (None for conversions and "other")."""
    if event.name in CONVERSIONS:
        return CONVERSION, None
    found, layer, node = "other", None, event
    while node is not None:
        if node.name in LAYERS:
            found, layer = LAYERS[node.name], node  # keep climbing: the outermost layer operator wins
        node = node.cpu_parent
    return found, layer


def profile_prediction(model: nn.Module, run: Callable[[], object], peak_gflops: float, repeats: int = 3) -> dict:
    """Profile ``run()`` (after a warm-up; ``repeats`` runs without the profiler, then ``repeats`` with it) and
    return seconds per run by category, their shares, the wall time per run with the profiler and without it
    (median), the achieved GFLOP/s of convolutions and transposed convolutions, and the time and GFLOP/s of each
    convolution shape."""
    run()
    walls = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        run()
        walls.append(time.perf_counter() - started)
    wall = sorted(walls)[len(walls) // 2]
    flops, shape_flops = conv_flops(model, run)
    runs = max(1, repeats)
    schedule = torch.profiler.schedule(wait=0, warmup=1, active=runs, repeat=1)  # the first profiled run is slow
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True,
                                schedule=schedule) as prof:
        run()
        prof.step()
        started = time.perf_counter()
        for _ in range(runs):
            run()
            prof.step()
        profiled_wall = (time.perf_counter() - started) / runs
    seconds: dict[str, float] = {c: 0.0 for c in CATEGORIES}
    layers: dict[tuple, dict] = {}  # per convolution shape: calls and seconds
    for event in prof.events():
        kind, layer = category(event)
        seconds[kind] += event.self_cpu_time_total / 1e6 / runs
        if kind in ("convolution", "upsampling") and layer is not None and len(layer.input_shapes) >= 2:
            key = (tuple(layer.input_shapes[0]), tuple(layer.input_shapes[1]))
            entry = layers.setdefault(key, {"calls": set(), "s": 0.0})
            entry["calls"].add(layer.id)
            entry["s"] += event.self_cpu_time_total / 1e6 / runs
    total = sum(seconds.values())
    result = {"wall_s": wall, "profiled_wall_s": profiled_wall, "op_total_s": total,
              "seconds": seconds, "share": {c: s / total for c, s in seconds.items()}}
    result["layers"] = sorted(
        ({"input": list(k[0]), "weight": list(k[1]), "calls": len(v["calls"]) // runs, "ms": v["s"] * 1e3,
          "gflops_per_s": shape_flops.get(k, float("nan")) * len(v["calls"]) / runs / v["s"] / 1e9}
         for k, v in layers.items()), key=lambda row: -row["ms"])
    for kind in ("convolution", "upsampling"):
        gflops = flops.get(kind, 0.0) / 1e9
        rate = gflops / seconds[kind] if seconds[kind] else float("nan")
        result[f"{kind}_gflop"] = gflops
        result[f"{kind}_gflops_per_s"] = rate
        result[f"{kind}_fraction_of_peak"] = rate / peak_gflops
    all_flops = sum(flops.values()) / 1e9
    result["model_gflops_per_s"] = all_flops / wall
    result["model_fraction_of_peak"] = all_flops / wall / peak_gflops
    return result


def print_profile(result: dict, title: str) -> None:
    """The table of :func:`profile_prediction` on screen."""
    print(f"\n{title}: {result['wall_s'] * 1e3:.0f} ms without the profiler (median), "
          f"{result['profiled_wall_s'] * 1e3:.0f} ms with it ({result['op_total_s'] * 1e3:.0f} ms of operator self "
          "time; per run, the table below too)")
    print(f"{'category':<36}{'ms':>10}{'share':>9}")
    for name in CATEGORIES:
        print(f"{name:<36}{result['seconds'][name] * 1e3:>10.1f}{result['share'][name]:>9.1%}")
    print(f"\n{'convolution input':<22}{'weight':<20}{'calls':>6}{'ms':>9}{'GFLOP/s':>9}")
    for row in result["layers"]:
        print(f"{'x'.join(map(str, row['input'])):<22}{'x'.join(map(str, row['weight'])):<20}{row['calls']:>6}"
              f"{row['ms']:>9.1f}{row['gflops_per_s']:>9.0f}")
    print()
    for kind in ("convolution", "upsampling"):
        print(f"{kind}: {result[f'{kind}_gflop']:.1f} GFLOP at {result[f'{kind}_gflops_per_s']:.0f} GFLOP/s "
              f"= {result[f'{kind}_fraction_of_peak']:.0%} of the matmul peak")
    print(f"whole prediction: {result['model_gflops_per_s']:.0f} GFLOP/s = {result['model_fraction_of_peak']:.0%} "
          "of the matmul peak")
