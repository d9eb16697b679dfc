"""A table of the registered models: parameters, compute, input-size rule, description and paper."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import create_model, list_models, model_entry, model_options


@dataclass
class ModelSummary:
    """One row of ``unetseg models``."""

    name: str
    parameters: int
    gflops: float  # forward pass to segment one 1-channel image of `image_size` (the padded tile prediction uses)
    image_size: int
    input_size: int  # the network input prediction uses for such an image
    input_rule: str
    description: str
    paper: str
    options: dict


def summarize(name: str, image_size: int = 512, in_channels: int = 1, num_classes: int = 2) -> ModelSummary:
    """Count parameters and forward FLOPs (2 per multiply-add, counted by torch's FlopCounterMode on the meta
    device, so nothing is allocated) of model ``name`` with its default options."""
    with torch.device("meta"):
        model = create_model(name, in_channels=in_channels, num_classes=num_classes).eval()
        side = model.input_size_for(image_size)
        x = torch.empty(1, in_channels, side, side)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    entry = model_entry(name)
    options = {k: v for k, v in model_options(name).items() if k not in ("in_channels", "num_classes")}
    return ModelSummary(name, sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 1e9,
                        image_size, side, model.input_size_rule(), entry.description, entry.paper, options)


def models_table(image_size: int = 512, markdown: bool = False) -> str:
    """Every registered model as a text (or Markdown) table, for 1 input channel and 2 classes."""
    rows = [summarize(name, image_size) for name in list_models()]
    header = ["name", "parameters", f"GFLOPs ({image_size}x{image_size})", "input sizes", "description", "paper"]
    cells = [[r.name, f"{r.parameters:,}", f"{r.gflops:.1f}", r.input_rule, r.description, r.paper] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(x[i]) for x in [header[:4]] + [c[:4] for c in cells]) for i in range(4)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header[:4], widths)) + "  description"]
    for c in cells:
        out.append("  ".join(v.ljust(w) for v, w in zip(c[:4], widths)) + f"  {c[4]} [{c[5]}]")
    return "\n".join(out)
