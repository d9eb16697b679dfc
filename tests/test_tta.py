"""Test-time augmentation: inverse transforms, non-square images, averaging in probability space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unetseg.models.apply import logits_to_probabilities
from unetseg.inference.tta import TTA_SETS, Flip90, tta_predict


def same(x: torch.Tensor) -> torch.Tensor:
    return x


@pytest.mark.parametrize("name", list(TTA_SETS))
@pytest.mark.parametrize("shape", [(5, 7), (6, 6), (1, 9)])
def test_inverse_undoes_apply(name: str, shape: tuple[int, int]) -> None:
    x = torch.randn(2, *shape)
    for t in TTA_SETS[name]:
        assert torch.equal(t.inverse(t.apply(x)), x), t.name


def test_sets_are_distinct_group_elements() -> None:
    x = torch.arange(12.0).reshape(1, 3, 4)
    images = {t.name: t.apply(x) for t in TTA_SETS["d4"]}
    assert len(images) == 8
    keys = {(tuple(im.shape), tuple(im.flatten().tolist())) for im in images.values()}
    assert len(keys) == 8  # the eight elements of D4 act differently
    assert len(TTA_SETS["rot"]) == 4 and len(TTA_SETS["flips"]) == 4 and len(TTA_SETS["none"]) == 1
    flips = {tuple(t.apply(x).flatten().tolist()) for t in TTA_SETS["flips"]}
    expected = {tuple(v.flatten().tolist()) for v in (x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2))}
    assert flips == expected


@pytest.mark.parametrize("name", list(TTA_SETS))
@pytest.mark.parametrize("shape", [(5, 8), (7, 7)])
def test_identity_predictor_returns_input(name: str, shape: tuple[int, int]) -> None:
    image = torch.rand(3, *shape)
    seen: list[tuple[int, ...]] = []

    def predict(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return x

    out = tta_predict(predict, image, name, to_probabilities=same)
    torch.testing.assert_close(out, image)
    if name in ("rot", "d4"):
        assert (3, shape[1], shape[0]) in seen  # quarter turns swap H and W for non-square images


def shifted_right(x: torch.Tensor) -> torch.Tensor:
    """Not equivariant: moves the image one pixel to the right (circularly) in whatever frame it is given."""
    return torch.roll(x, 1, dims=-1)


@pytest.mark.parametrize("shape", [(5, 8), (6, 6)])
def test_inverse_is_applied_to_the_output(shape: tuple[int, int]) -> None:
    image = torch.rand(2, *shape)
    right, left = torch.roll(image, 1, -1), torch.roll(image, -1, -1)
    down, up = torch.roll(image, 1, -2), torch.roll(image, -1, -2)
    # A right shift seen in a transformed frame is, back in the image frame, a shift by the inverse-transformed
    # direction: the four quarter turns give each of right, up, left, down once; D4 gives each twice; the flips
    # give right (identity, up-down flip) and left (left-right flip, half turn) twice each.
    expected = {
        "none": right,
        "flips": (right + left) / 2,
        "rot": (right + left + up + down) / 4,
        "d4": (right + left + up + down) / 4,
    }
    for name, value in expected.items():
        torch.testing.assert_close(tta_predict(shifted_right, image, name, to_probabilities=same), value)
    # single transforms: a quarter turn counter-clockwise maps "right" in its frame to "down" in the image
    torch.testing.assert_close(tta_predict(shifted_right, image, [Flip90(1)], same), down)
    torch.testing.assert_close(tta_predict(shifted_right, image, [Flip90(3)], same), up)


def test_none_equals_plain_prediction_and_probabilities_are_averaged() -> None:
    torch.manual_seed(0)
    weight = torch.randn(3, 2)

    def predict(x: torch.Tensor) -> torch.Tensor:  # a pixelwise (hence equivariant) non-linear classifier
        return 5 * torch.tanh(torch.einsum("kc,chw->khw", weight, x))

    image = torch.randn(2, 6, 9)
    plain = torch.softmax(predict(image), dim=0)
    torch.testing.assert_close(tta_predict(predict, image, "none"), plain)
    # an equivariant predictor gives the same probabilities under every set, and they sum to 1
    for name in TTA_SETS:
        out = tta_predict(predict, image, name)
        torch.testing.assert_close(out, plain)
        torch.testing.assert_close(out.sum(0), torch.ones(6, 9))
    # averaging happens after the softmax: compare with the mean of the per-transform probabilities
    out = tta_predict(shifted_right, image, "flips")
    probs = [torch.softmax(torch.roll(image, s, -1), 0) for s in (1, -1)]
    torch.testing.assert_close(out, (probs[0] + probs[1]) / 2)
    assert not torch.allclose(out, torch.softmax((torch.roll(image, 1, -1) + torch.roll(image, -1, -1)) / 2, 0))


def test_one_channel_head_gives_two_probabilities() -> None:
    image = torch.randn(1, 4, 5)
    out = tta_predict(same, image, "d4", logits_to_probabilities)
    torch.testing.assert_close(out, torch.cat([1 - torch.sigmoid(image), torch.sigmoid(image)]))


def test_with_tiled_prediction() -> None:
    from unetseg.inference.tiling import predict_logits
    from unetseg.models.unet import UNet

    torch.manual_seed(1)
    model = UNet(depth=2, base_channels=2).eval()
    image = torch.randn(1, 13, 22)
    out = tta_predict(lambda x: predict_logits(model, x, 8), image, "d4")
    assert out.shape == (2, 13, 22)
    torch.testing.assert_close(out.sum(0), torch.ones(13, 22))


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown TTA set 'rot90'"):
        tta_predict(same, torch.zeros(1, 2, 2), "rot90")
    with pytest.raises(ValueError, match="at least one"):
        tta_predict(same, torch.zeros(1, 2, 2), [])
    with pytest.raises(ValueError, match="\\(C, H, W\\) tensor, got \\(2, 2\\)"):
        tta_predict(same, torch.zeros(2, 2), "none")
    with pytest.raises(ValueError, match="predict_fn gave"):
        tta_predict(lambda x: x[..., :1], torch.zeros(1, 2, 3), "none")


class _FixedScores:
    """A scorer with given validation scores per (tta, min_size)."""

    def __init__(self, scores: dict[tuple[str, int], float]) -> None:
        self.values = scores

    def __call__(self, tta: str, min_size: int) -> float:
        return self.values[(tta, min_size)]


@pytest.mark.parametrize("flips, d4, chosen", [
    (0.900, 0.9149, "none"),   # d4 costs 8 passes: 3 doublings x 0.005 = 0.015 needed, 0.0149 is not enough
    (0.900, 0.9150, "d4"),     # exactly the margin
    (0.9099, 0.900, "none"),   # flips costs 4 passes: 0.01 needed
    (0.9100, 0.9149, "flips"),  # flips earns its cost; d4 must then gain 0.005 over flips
    (0.9100, 0.9150, "d4"),
])
def test_a_costlier_tta_must_gain_the_margin_per_doubling_of_passes(flips, d4, chosen):
    from unetseg.inference.tune import _choose_tta_and_size, required_gain

    assert required_gain("none", "flips") == pytest.approx(0.01) and required_gain("flips", "d4") == pytest.approx(0.005)
    scores = _FixedScores({("none", 0): 0.900, ("flips", 0): flips, ("d4", 0): d4})
    tta, size, best = _choose_tta_and_size(scores, [0], min_gain=0.001)
    assert (tta, size) == (chosen, 0) and best == scores(chosen, 0)


def test_tuning_records_the_cost_of_each_tta_per_image():
    from unetseg.inference.tune import tune_prediction
    from unetseg.models import create_model

    labels = np.zeros((32, 32), dtype=np.int64)
    labels[8:20, 10:24] = 1
    image = labels[None].astype(np.float32) * 2 - 1
    torch.manual_seed(0)
    model = create_model("unet_bn", num_classes=2, base_channels=4, depth=2)
    settings = tune_prediction(model, [image], [labels], 2, [labels], torch.device("cpu"))
    cost = settings.cost
    assert set(cost) == {"none", "flips", "d4"} and 0 < cost["none"] < 5
    assert cost["flips"] == pytest.approx(4 * cost["none"], rel=1e-2) and cost["d4"] == pytest.approx(8 * cost["none"], rel=1e-2)
    assert settings.tta in cost and settings.to_dict()["cost"] == cost  # stored with the settings
