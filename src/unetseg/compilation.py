"""``torch.compile`` for prediction and training, opt-in (``--compile``).

The network is compiled in place (``nn.Module.compile``): it stays the same object of the same class, so its
input-size rules keep working and its ``state_dict`` keys are unchanged (checkpoints written from a compiled model
load into an eager one). Compilation happens on the first forward pass of each new input shape (tens of seconds
on a small CPU; later calls of that shape are fast), so it pays off only for many images or tiles of one size.
"""

from __future__ import annotations

import shutil
from typing import Any

import torch


def compile_unavailable_reason(device: torch.device | str = "cpu") -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here (no TorchDynamo for this Python, no C++ compiler for
    the CPU backend, no Triton for the CUDA backend), or None when it should (a best-effort check: the compiler
    itself runs on first use)."""
    import torch._dynamo
    from torch.utils._triton import has_triton

    kind = torch.device(device).type
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile (TorchDynamo) is not supported on this Python/platform"
    if kind == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return "torch.compile on the CPU needs a C++ compiler (g++ or clang++) on PATH"
    if kind == "cuda" and not has_triton():
        return "torch.compile on a CUDA device needs Triton (pip install triton, matching the installed torch)"
    return None


def compile_model(model: torch.nn.Module, enabled: bool = True, device: torch.device | str = "cpu",
                  **options: Any) -> torch.nn.Module:
    """Compile ``model``'s forward in place with ``torch.compile`` when ``enabled``; returns ``model``.

    Args:
        model: the network (already on its device, in its memory format).
        enabled: False returns ``model`` untouched, so callers can pass a ``--compile`` flag straight through.
        device: where the model runs (for the availability check).
        options: passed to ``torch.compile`` (``mode``, ``dynamic``, ``backend``, ...).

    Raises:
        RuntimeError: ``enabled`` but compilation is unavailable (:func:`compile_unavailable_reason`).

    Example:
        >>> net = compile_model(create_model("unet_bn"), enabled=args.compile)  # doctest: +SKIP
    """
    if not enabled:
        return model
    reason = compile_unavailable_reason(device)
    if reason is not None:
        raise RuntimeError(f"cannot compile the model: {reason}; run without --compile")
    model.compile(**options)
    return model
