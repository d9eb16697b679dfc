"""Tiled prediction: overlap-tile for valid networks, blended sliding windows for same-padding ones."""

from __future__ import annotations

import itertools

import pytest
import torch

from unetseg.data.sampling import mirror_indices
from unetseg.models.apply import padded_forward
from unetseg.inference.tiling import (
    blending_weights,
    overlap_tile_predict,
    predict_logits,
    sliding_window_predict,
    tile_starts,
)
from unetseg.models.unet import UNet


def lively(model: UNet) -> UNet:
    """He-initialised weights and small positive biases, so that a tiny random network has no dead layers and its
    output varies strongly from pixel to pixel (the equality tests are then not trivially satisfied)."""
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.uniform_(module.bias, 0.0, 0.1)
    return model.eval()


def full_mirrored_forward(model: UNet, image: torch.Tensor) -> torch.Tensor:
    """The reference: one forward pass over the whole image mirrored by the context margin on each side and then
    extended (still by mirroring) at the bottom/right to the smallest accepted input size; output cropped."""
    _, h, w = image.shape
    index = []
    for n in (h, w):
        size = model.input_size_for(n)  # output covers n pixels; input = output + 2 * margin
        index.append(torch.from_numpy(mirror_indices(-model.margin(size), size, n)))
    with torch.no_grad():
        return model(image[:, index[0]][:, :, index[1]][None])[0, :, :h, :w]


# -- tile_starts ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,tile,step", [(10, 4, 3), (4, 4, 1), (3, 8, 2), (100, 17, 5), (9, 4, 4)])
def test_tile_starts_cover_and_end_flush(size: int, tile: int, step: int) -> None:
    starts = tile_starts(size, tile, step)
    assert starts[0] == 0
    if size <= tile:
        assert starts == [0]
        return
    assert starts[-1] == size - tile
    assert all(b - a <= step for a, b in itertools.pairwise(starts))
    covered = set().union(*(range(s, s + tile) for s in starts))
    assert covered == set(range(size))


def test_tile_starts_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="gaps"):
        tile_starts(10, 3, 4)
    with pytest.raises(ValueError, match="tile must be >= 1, got 0"):
        tile_starts(10, 0, 1)


# -- overlap-tile --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(37, 53), (100, 61), (5, 130), (3, 4)])
@pytest.mark.parametrize("tile_output", [8, 12])
def test_overlap_tile_equals_one_full_forward_depth2(shape: tuple[int, int], tile_output: int) -> None:
    # Depth-2 valid U-Net: output sides are 4, 8, 12, ... and accepted inputs step by 4 = 2**depth. Output tiles
    # start at multiples of the output side, itself a multiple of 4, so they abut exactly and every input tile is
    # shifted from the reference input by a multiple of 4: the pooling grids line up and valid convolutions make
    # each tile output the reference's values at the same pixels (translation equivariance for shifts of 2**depth).
    torch.manual_seed(0)
    model = lively(UNet(in_channels=2, num_classes=3, depth=2, base_channels=2))
    image = torch.randn(2, *shape)
    calls = []
    with torch.no_grad():
        tiled = overlap_tile_predict(model, image, model, tile_output, batch_size=3,
                                     progress=lambda d, t: calls.append((d, t)))
    reference = full_mirrored_forward(model, image)
    assert reference.std(dim=(1, 2)).min() > 0.05
    assert tiled.shape == (3, *shape)
    torch.testing.assert_close(tiled, reference, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(tiled, padded_forward(model, image[None])[0], atol=1e-5, rtol=1e-5)
    assert calls[-1][0] == calls[-1][1] and len(calls) == -(-calls[-1][1] // 3)


@pytest.mark.parametrize("shape", [(37, 53), (5, 70)])
def test_overlap_tile_equals_one_full_forward_depth4(shape: tuple[int, int]) -> None:
    # Depth 4: outputs are 4 + 16k pixels, not multiples of 16, so tiles start every 16 (20 -> 16) and overlap by
    # 4 pixels; this keeps the pooling grids aligned with the reference and the values identical.
    torch.manual_seed(1)
    model = lively(UNet(in_channels=1, num_classes=2, depth=4, base_channels=2))
    image = torch.randn(1, *shape)
    with torch.no_grad():
        tiled = overlap_tile_predict(model, image, model, 20, batch_size=8)
    reference = full_mirrored_forward(model, image)
    assert reference.std(dim=(1, 2)).min() > 0.05
    torch.testing.assert_close(tiled, reference, atol=1e-5, rtol=1e-5)


def test_overlap_tile_needs_aligned_tiles() -> None:
    # Why the alignment matters: a tile shifted by 2 (not a multiple of 2**depth = 4) gives different values.
    torch.manual_seed(2)
    model = lively(UNet(depth=2, base_channels=4))
    image = torch.randn(1, 1, 48, 60)
    with torch.no_grad():
        a = model(image[..., 0:48])[0, :, :, 2:8]  # input 48 -> output 8, shifted by 0
        b = model(image[..., 2:50])[0, :, :, 0:6]  # same pixels seen from a tile shifted by 2
        c = model(image[..., 4:52])[0, :, :, 0:4]  # shifted by 4: identical values
    torch.testing.assert_close(a[..., 2:], c, atol=1e-5, rtol=1e-5)
    assert a.std() > 0.05
    assert not torch.allclose(a, b, atol=1e-4)


# -- sliding window ------------------------------------------------------------------------------------------------

CASES = [((37, 53), 16, 0.25), ((40, 40), 16, 0.5), ((5, 130), 16, 0.0), ((7, 9), 16, 0.25), ((64, 17), 32, 0.9),
         ((16, 16), 16, 0.25), ((33, 20), 8, 0.75), ((1, 1), 4, 0.5)]


@pytest.mark.parametrize("shape,window,overlap", CASES)
@pytest.mark.parametrize("blending", ["gaussian", "constant"])
def test_sliding_window_reproduces_analytic_predictors(shape, window, overlap, blending) -> None:
    image = torch.randn(2, *shape)
    for forward, expected in ((lambda x: x, image), (lambda x: x + 1, image + 1)):
        out = sliding_window_predict(forward, image, window, overlap, blending, batch_size=3)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("blending", ["gaussian", "constant"])
@pytest.mark.parametrize("pad_mode", ["reflect", "replicate", "constant"])
def test_sliding_window_places_tiles_correctly(blending: str, pad_mode: str) -> None:
    # The image holds its own row and column coordinates; a predictor returning its input must give them back,
    # so every window output lands where it came from (also when the image is padded up to the window).
    for h, w in ((45, 29), (6, 11)):
        rows, cols = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        image = torch.stack([rows, cols])
        out = sliding_window_predict(lambda x: x.flip(1), image, 12, 0.3, blending, pad_mode=pad_mode)
        torch.testing.assert_close(out, torch.stack([cols, rows]))


def test_sliding_window_constant_blending_averages_overlaps() -> None:
    # forward returns 1 everywhere plus the tile index: with constant blending a pixel gets the mean of the tile
    # indices covering it. Width 12, window 8, step 4: starts 0 and 4; columns 4..7 are covered by both.
    image = torch.zeros(1, 8, 12)
    counter = iter(range(100))
    out = sliding_window_predict(lambda x: torch.stack([torch.full_like(x[0], next(counter)) for _ in x]),
                                 image, 8, 0.5, "constant", batch_size=1)
    torch.testing.assert_close(out[0, 0], torch.tensor([0.0] * 4 + [0.5] * 4 + [1.0] * 4))


def test_blending_weights_have_no_zeros() -> None:
    for window in (1, 2, 7, 64, 257):
        weights = blending_weights(window, "gaussian", 0.125)
        assert weights.shape == (window, window) and weights.min() > 0 and weights.max() == 1
    weights = blending_weights(9, "gaussian", 0.125)
    assert weights[4, 4] == weights.max() and weights[0, 0] < weights[0, 4] < weights[4, 4]
    assert torch.equal(blending_weights(5, "constant"), torch.ones(5, 5))


def test_sliding_window_progress_once_per_batch() -> None:
    calls: list[tuple[int, int]] = []
    sliding_window_predict(lambda x: x, torch.zeros(1, 40, 40), 16, 0.5, batch_size=4,
                           progress=lambda done, total: calls.append((done, total)))
    # starts 0, 8, 16, 24 per axis -> 16 windows in 4 batches
    assert calls == [(4, 16), (8, 16), (12, 16), (16, 16)]


@pytest.mark.parametrize("kwargs,message", [
    ({"window": 0}, "window must be a positive integer, got 0"),
    ({"overlap": 1.0}, "overlap must be in \\[0, 1\\), got 1.0"),
    ({"overlap": -0.1}, "got -0.1"),
    ({"blending": "linear"}, "blending='linear'"),
    ({"sigma_scale": 0.0}, "sigma_scale must be > 0, got 0.0"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"pad_mode": "wrap"}, "pad_mode='wrap'"),
    ({"image": torch.zeros(8, 8)}, "\\(C, H, W\\) tensor, got \\(8, 8\\)"),
])
def test_sliding_window_validates_arguments(kwargs: dict, message: str) -> None:
    args = {"forward": lambda x: x, "image": torch.zeros(1, 8, 8), "window": 4}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sliding_window_predict(**args)


# -- dispatch ------------------------------------------------------------------------------------------------------

def test_predict_logits_dispatch() -> None:
    torch.manual_seed(3)
    image = torch.randn(1, 30, 21)
    valid = lively(UNet(depth=2, base_channels=2))
    reference = full_mirrored_forward(valid, image)
    for tile in (None, 8, 100):
        out = predict_logits(valid, image, tile)
        assert out.shape == (2, 30, 21) and not out.requires_grad
        torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
    same = UNet(depth=2, base_channels=2, padding="same").eval()
    calls: list[tuple[int, int]] = []
    out = predict_logits(same, image, 10, overlap=0.5, progress=lambda d, t: calls.append((d, t)))
    assert out.shape == (2, 30, 21) and calls and calls[-1][0] == calls[-1][1]
    with torch.no_grad():
        expected = sliding_window_predict(same, image, same.input_size_for(10), 0.5)
    torch.testing.assert_close(out, expected)
    assert predict_logits(same, image, None).shape == (2, 30, 21)
