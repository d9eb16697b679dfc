"""Tiled prediction for images of any size: overlap-tile (valid networks) and blended sliding windows (same padding).

``overlap_tile_predict`` is the strategy of the U-Net paper: the image is extrapolated by mirroring, input tiles
carry the network's context margin, and their output tiles are pasted side by side. ``sliding_window_predict``
runs a same-padding network on overlapping windows and blends them with a (Gaussian) importance map, as nnU-Net
and MONAI do. ``predict_logits`` picks the right one for a :class:`SegmentationModel`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..data.sampling import mirror_indices
from ..models.base import SegmentationModel
from ..models.apply import padded_forward

Forward = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None] | None
BLENDINGS = ("gaussian", "constant")
PAD_MODES = ("reflect", "replicate", "constant")
WEIGHT_FLOOR = 1e-3  # smallest blending weight, relative to the window centre: borders never get weight 0


def tile_starts(size: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of side ``tile`` at stride ``step`` covering ``[0, size)``.

    Starts are ``0, step, 2*step, ...`` and the last tile is flush with the end (start ``size - tile``), so it may
    overlap its neighbour by more than the others. For ``size <= tile`` a single tile starts at 0.

    Example:
        >>> tile_starts(10, 4, 3)
        [0, 3, 6]
        >>> tile_starts(3, 4, 2)
        [0]
    """
    for name, value in (("size", size), ("tile", tile), ("step", step)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if step > tile:
        raise ValueError(f"step {step} > tile {tile} would leave gaps between tiles")
    if size <= tile:
        return [0]
    return list(range(0, size - tile, step)) + [size - tile]


def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a (C, H, W) tensor, got {shape}")
    if min(image.shape) < 1:
        raise ValueError(f"image must not be empty, got shape {tuple(image.shape)}")


def _check_batch(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _size_step(model: SegmentationModel, size: int) -> int:
    """Gap from the accepted input ``size`` to the next accepted one (``2**depth`` for a U-Net)."""
    for nxt in range(size + 1, 2 * size + 4097):
        if model.is_valid_input(nxt):
            return nxt - size
    raise ValueError(f"no accepted input side above {size}")


def _run_tiles(forward: Forward, tiles: list[torch.Tensor], batch_size: int, progress: Progress):
    """Yield ``(index, output)`` for each tile, running ``forward`` on batches; ``progress(done, total)`` per batch."""
    total = len(tiles)
    for first in range(0, total, batch_size):
        out = forward(torch.stack(tiles[first:first + batch_size]))
        if out.ndim != 4 or out.shape[0] != len(tiles[first:first + batch_size]):
            raise ValueError(f"forward must return (N, K, h, w), got {tuple(out.shape)}")
        yield from enumerate(out, start=first)
        if progress is not None:
            progress(min(first + batch_size, total), total)


def overlap_tile_predict(forward: Forward, image: torch.Tensor, model: SegmentationModel, tile_output: int,
                         batch_size: int = 4, progress: Progress = None) -> torch.Tensor:
    """Logits for a whole image from a valid-padding network with the U-Net paper's overlap-tile strategy.

    The input tile side ``T`` is the smallest accepted input whose output ``t = model.output_size(T)`` has at
    least ``max(tile_output, s)`` pixels, where ``s`` is the gap between consecutive accepted input sides
    (``2**depth`` for a U-Net). Output tiles start at multiples of ``t`` rounded down to a multiple of ``s``:
    with max-pooling a valid network is translation-equivariant only for shifts that are multiples of ``s``, so
    with that alignment every tile gives exactly the values one forward pass over the whole mirrored image would.
    When ``t`` is a multiple of ``s`` (depth-2 U-Net) the output tiles abut exactly; otherwise (``t = 388`` for the
    paper's 572 tile) neighbours overlap by ``t mod s`` pixels and the later tile is kept. The input around each
    tile, including beyond the image borders, is the image mirrored (no edge repeat); the last row and column of
    tiles may reach past the image end and are cropped.

    Args:
        forward: maps a batch (N, C, T, T) to logits (N, K, t, t), usually ``model`` itself.
        image: the image to segment.
        model: gives the input-size rules (``output_size``, ``input_size_for``, ``margin``).
        tile_output: wanted output tile side (rounded up to an accepted size).
        batch_size: tiles per call of ``forward``.
        progress: called after each batch with (tiles done, tiles in all).

    Shape:
        image (C, H, W) -> (K, H, W)
    """
    _check_image(image)
    _check_batch(batch_size)
    if not isinstance(tile_output, int) or tile_output < 1:
        raise ValueError(f"tile_output must be a positive integer, got {tile_output!r}")
    step = _size_step(model, model.input_size_for(tile_output))
    size = model.input_size_for(max(tile_output, step))
    out = model.output_size(size)
    margin = model.margin(size)
    if size - out != 2 * margin:
        raise ValueError(f"input {size} -> output {out}: the context margin is not the same on both sides")
    stride = out // step * step
    _, h, w = image.shape
    starts = [[k * stride for k in range(1 + math.ceil(max(n - out, 0) / stride))] for n in (h, w)]
    ys = torch.from_numpy(mirror_indices(-margin, starts[0][-1] + size, h)).to(image.device)
    xs = torch.from_numpy(mirror_indices(-margin, starts[1][-1] + size, w)).to(image.device)
    mirrored = image.index_select(-2, ys).index_select(-1, xs)
    places = [(y, x) for y in starts[0] for x in starts[1]]
    tiles = [mirrored[:, y:y + size, x:x + size] for y, x in places]
    result: torch.Tensor | None = None
    for i, logits in _run_tiles(forward, tiles, batch_size, progress):
        if logits.shape[-2:] != (out, out):
            raise ValueError(f"forward gave a {tuple(logits.shape[-2:])} output for a {size} tile, expected {out}")
        if result is None:
            result = logits.new_empty((logits.shape[0], starts[0][-1] + out, starts[1][-1] + out))
        y, x = places[i]
        result[:, y:y + out, x:x + out] = logits
    assert result is not None
    return result[:, :h, :w]


def blending_weights(window: int, blending: str = "gaussian", sigma_scale: float = 0.125,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Importance map (window, window): a Gaussian with sigma ``sigma_scale * window`` centred on the window,
    normalised to 1 at the centre and floored at ``WEIGHT_FLOOR`` (so never 0), or all ones for ``"constant"``."""
    if blending == "constant":
        return torch.ones(window, window, device=device)
    coords = torch.arange(window, dtype=torch.float64, device=device) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * (sigma_scale * window) ** 2))
    weights = torch.outer(g, g)
    return (weights / weights.max()).clamp_min(WEIGHT_FLOOR).float()


def _pad(image: torch.Tensor, ph: int, pw: int, mode: str) -> torch.Tensor:
    """Pad the last two axes by ``ph``/``pw`` pixels in all, split evenly between both sides."""
    if mode == "constant":
        return torch.nn.functional.pad(image, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    index = []
    for pad, n in ((ph, image.shape[-2]), (pw, image.shape[-1])):
        if mode == "reflect":
            idx = torch.from_numpy(mirror_indices(-(pad // 2), n + pad, n))
        else:
            idx = torch.arange(-(pad // 2), n + pad - pad // 2).clamp(0, n - 1)
        index.append(idx.to(image.device))
    return image.index_select(-2, index[0]).index_select(-1, index[1])


def sliding_window_predict(forward: Forward, image: torch.Tensor, window: int, overlap: float = 0.25,
                           blending: str = "gaussian", sigma_scale: float = 0.125, batch_size: int = 4,
                           pad_mode: str = "reflect", progress: Progress = None) -> torch.Tensor:
    """Logits for a whole image from a same-padding network run on overlapping square windows.

    Windows of side ``window`` start every ``max(1, int(window * (1 - overlap)))`` pixels, the last one flush with
    the image end (:func:`tile_starts`). An image smaller than the window is first padded (evenly on both sides)
    up to it and the result cropped back. Window outputs are summed with the weights of
    :func:`blending_weights` and divided by the summed weights, so a network returning its input reproduces the
    image exactly.

    Args:
        forward: maps a batch (N, C, window, window) to logits (N, K, window, window).
        image: the image to segment.
        window: window side (must be accepted by the network).
        overlap: fraction of the window shared by neighbouring windows, in [0, 1).
        blending: ``"gaussian"`` (centre weighted, like nnU-Net) or ``"constant"`` (plain average).
        sigma_scale: Gaussian sigma as a fraction of the window (> 0).
        batch_size: windows per call of ``forward``.
        pad_mode: ``"reflect"`` (mirror, no edge repeat), ``"replicate"`` or ``"constant"`` (zeros).
        progress: called after each batch with (windows done, windows in all).

    Shape:
        image (C, H, W) -> (K, H, W)
    """
    _check_image(image)
    _check_batch(batch_size)
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")
    if blending not in BLENDINGS:
        raise ValueError(f"blending={blending!r} is not one of {', '.join(BLENDINGS)}")
    if not sigma_scale > 0:
        raise ValueError(f"sigma_scale must be > 0, got {sigma_scale!r}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode={pad_mode!r} is not one of {', '.join(PAD_MODES)}")
    _, h, w = image.shape
    ph, pw = max(window - h, 0), max(window - w, 0)
    padded = _pad(image, ph, pw, pad_mode) if ph or pw else image
    step = max(1, int(window * (1 - overlap)))
    places = [(y, x) for y in tile_starts(padded.shape[-2], window, step)
              for x in tile_starts(padded.shape[-1], window, step)]
    tiles = [padded[:, y:y + window, x:x + window] for y, x in places]
    weights = blending_weights(window, blending, sigma_scale, image.device)
    norm = torch.zeros(padded.shape[-2:], device=image.device)
    result: torch.Tensor | None = None
    for i, logits in _run_tiles(forward, tiles, batch_size, progress):
        if logits.shape[-2:] != (window, window):
            raise ValueError(f"forward gave a {tuple(logits.shape[-2:])} output for a {window} window")
        if result is None:
            result = torch.zeros((logits.shape[0], *padded.shape[-2:]), device=image.device)
        y, x = places[i]
        result[:, y:y + window, x:x + window] += logits.float() * weights
        norm[y:y + window, x:x + window] += weights
    assert result is not None
    result /= norm
    return result[:, ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]


def predict_logits(model: SegmentationModel, image: torch.Tensor, tile: int | None = None, overlap: float = 0.25,
                   blending: str = "gaussian", batch_size: int = 4, progress: Progress = None,
                   forward: Forward | None = None) -> torch.Tensor:
    """Logits for a whole image, tiled the way the network needs, under ``torch.inference_mode``.

    ``tile=None`` runs the whole (mirror-padded) image in one pass (:func:`padded_forward`). Otherwise a
    valid-padding network (positive context margin) uses :func:`overlap_tile_predict` with output tiles of
    ``tile`` pixels and a same-padding one :func:`sliding_window_predict` with windows of
    ``model.input_size_for(tile)`` pixels (``overlap`` and ``blending`` apply to it only). ``forward`` runs the
    network on a batch (default: ``model`` itself); ``model`` always gives the size rules.

    Shape:
        image (C, H, W) -> (K, H, W)
    """
    _check_image(image)
    forward = model if forward is None else forward
    with torch.inference_mode():
        if tile is None:
            return padded_forward(model, image[None], forward)[0]
        if not isinstance(tile, int) or tile < 1:
            raise ValueError(f"tile must be a positive integer or None, got {tile!r}")
        window = model.input_size_for(tile)
        if model.margin(window) > 0:
            return overlap_tile_predict(forward, image, model, tile, batch_size, progress)
        return sliding_window_predict(forward, image, window, overlap, blending, batch_size=batch_size,
                                      progress=progress)
