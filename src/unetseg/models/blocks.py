"""Building blocks shared by the encoder-decoder networks.

The vocabulary follows the common U-Net implementations: :class:`DoubleConv` (two 3x3 convolutions, each followed by
an optional normalisation and ReLU), :class:`Down` (2x2 max-pool then DoubleConv), :class:`Up` (2x upsampling, skip
connection, DoubleConv) and :func:`center_crop` (the paper's copy-and-crop). :data:`NORMS` registers the
normalisation layers and :func:`upsample2x` builds the 2x upsampling of every decoder that halves the channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry
from .instance_norm import InstanceNorm

NORMS: Registry[nn.Module | None] = Registry("norm")
"""The normalisation layers, by name. A factory takes the number of feature maps and ``groups`` (used by
``"group"`` only) and returns the layer, or None for no normalisation."""


@NORMS.register("none", description="no normalisation (the convolution keeps its bias)")
def no_norm(channels: int, groups: int = 8) -> None:
    """No layer."""
    return None


@NORMS.register("batch", description="batch normalisation")
def batch_norm(channels: int, groups: int = 8) -> nn.Module:
    """``nn.BatchNorm2d(channels)``."""
    return nn.BatchNorm2d(channels)


@NORMS.register("instance", description="instance normalisation with a learned scale and shift")
def instance_norm(channels: int, groups: int = 8) -> nn.Module:
    """:class:`~unetseg.models.instance_norm.InstanceNorm`: ``nn.InstanceNorm2d(channels, affine=True)`` computed
    image by image with the faster batch-norm kernel."""
    return InstanceNorm(channels)


@NORMS.register("group", description="group normalisation")
def group_norm(channels: int, groups: int = 8) -> nn.Module:
    """``nn.GroupNorm`` with ``min(groups, channels)`` groups, reduced until it divides ``channels``."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels)


def check_norm(norm: str) -> None:
    """Raise ValueError naming ``norm`` and the registered names when ``norm`` is not in :data:`NORMS`."""
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not one of {', '.join(NORMS)}")


def make_norm(norm: str, channels: int, groups: int = 8) -> nn.Module | None:
    """The normalisation layer named ``norm`` (see :data:`NORMS`) for ``channels`` feature maps, or None for
    ``"none"``.

    Raises:
        ValueError: ``norm`` is not a registered name (the message lists them).
    """
    check_norm(norm)
    return NORMS.build(norm, channels, groups=groups)


UP_MODES = ("transpose", "bilinear")
"""The ways :func:`upsample2x` doubles the size."""


class UpConv2x2(nn.ConvTranspose2d):
    """The 2x2 stride-2 transposed convolution (U-Net's up-convolution), computed as a 1x1 convolution to four times
    the output channels followed by a pixel shuffle.

    The same parameters (``weight`` of shape (in, out, 2, 2), ``bias``), initialisation and results as
    ``nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)``, whose 2x2 output blocks do not overlap: output
    pixel (2i + a, 2j + b) of channel o is sum over c of weight[c, o, a, b] * x[c, i, j] + bias[o], a matrix product
    per input pixel. The matrix-product form has a faster backward pass on CPUs (measured in ``bench/speed.py``).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 2, stride=2)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None:
            raise ValueError("UpConv2x2 doubles the size; output_size is not supported")
        cin, cout = self.weight.shape[:2]
        weight = self.weight.permute(1, 2, 3, 0).reshape(cout * 4, cin, 1, 1)  # (o, a, b) -> 4o + 2a + b
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        return F.pixel_shuffle(F.conv2d(x, weight, bias), 2)


def upsample2x(in_channels: int, out_channels: int, up_mode: str = "transpose") -> nn.Module:
    """2x upsampling from ``in_channels`` to ``out_channels`` feature maps.

    ``"transpose"``: a 2x2 stride-2 transposed convolution (U-Net's up-convolution). ``"bilinear"``: bilinear
    interpolation followed by a 1x1 convolution (``nn.Sequential(Upsample, Conv2d)``), so the output width is the
    same in both modes.

    Shape:
        (N, in_channels, h, w) -> (N, out_channels, 2h, 2w).

    Raises:
        ValueError: ``up_mode`` is not one of :data:`UP_MODES`.
    """
    if up_mode == "transpose":
        return UpConv2x2(in_channels, out_channels)
    if up_mode == "bilinear":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, out_channels, 1),
        )
    raise ValueError(f"up_mode={up_mode!r} is not one of {', '.join(UP_MODES)}")


class ConvNormAct(nn.Sequential):
    """3x3 convolution (padding 0 for ``"valid"``, 1 for ``"same"``), optional normalisation, ReLU.

    The convolution has no bias when a normalisation follows it (the norm's shift makes it redundant).
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "same", norm: str = "none") -> None:
        layer_norm = make_norm(norm, out_channels)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, 3, padding=1 if padding == "same" else 0, bias=layer_norm is None)
        ]
        if layer_norm is not None:
            layers.append(layer_norm)
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """Two :class:`ConvNormAct`: ``in -> out -> out`` channels. A valid block shrinks each side by 4 pixels."""

    def __init__(self, in_channels: int, out_channels: int, padding: str = "same", norm: str = "none") -> None:
        super().__init__(
            ConvNormAct(in_channels, out_channels, padding, norm),
            ConvNormAct(out_channels, out_channels, padding, norm),
        )


class Down(nn.Sequential):
    """2x2 max-pool with stride 2, :class:`DoubleConv`, then an optional (element-wise) dropout."""

    def __init__(
        self, in_channels: int, out_channels: int, padding: str = "same", norm: str = "none", dropout: float = 0.0
    ) -> None:
        layers: list[nn.Module] = [nn.MaxPool2d(2)]
        layers.append(DoubleConv(in_channels, out_channels, padding, norm))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop the last two dimensions of ``x`` to ``height`` x ``width`` around the centre (copy-and-crop).

    ``narrow`` rather than slicing: its output size is ``height`` itself, without the clamping of slice bounds,
    which keeps symbolic sizes simple when the network is traced with dynamic shapes (ONNX export).
    """
    h, w = x.shape[-2:]
    if not torch.compiler.is_compiling() and (height > h or width > w):
        raise ValueError(f"cannot crop a {h}x{w} map to {height}x{width}")
    top, left = (h - height) // 2, (w - width) // 2
    return x.narrow(-2, top, height).narrow(-1, left, width)


class Up(nn.Module):
    """Upsample by 2, concatenate the (centre-cropped) skip features, then :class:`DoubleConv`.

    ``up_mode="transpose"``: a 2x2 transposed convolution halving the channels (the paper's up-convolution).
    ``up_mode="bilinear"``: bilinear upsampling followed by a 1x1 convolution halving the channels.

    Shape:
        x: (N, in_channels, h, w); skip: (N, in_channels // 2, H, W) with H >= 2h, W >= 2w.
        Returns (N, out_channels, 2h - 4, 2w - 4) for valid padding, (N, out_channels, 2h, 2w) for same.
    """

    def __init__(
        self, in_channels: int, out_channels: int, padding: str = "same", norm: str = "none", up_mode: str = "transpose"
    ) -> None:
        super().__init__()
        self.up = upsample2x(in_channels, in_channels // 2, up_mode)
        self.conv = DoubleConv(in_channels // 2 * 2, out_channels, padding, norm)
        self.crop = padding == "valid"  # same padding: skip and upsampled maps have one size for accepted inputs

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if self.crop:
            skip = center_crop(skip, x.shape[-2], x.shape[-1])
        return self.conv(torch.cat([skip, x], dim=1))


class MaxUnpool2x2(nn.MaxUnpool2d):
    """The inverse of 2x2 max-pooling with stride 2: each value goes back to the position its pooling index
    (switch) recorded; every other position is zero.

    The same result as ``nn.MaxUnpool2d(2, 2)`` with output size (2h, 2w), computed with a scatter into the
    flattened planes: ``F.max_unpool2d`` checks the output size with Python comparisons that fail under
    ``torch.jit.trace``, while the scatter traces for any input size.

    Shape:
        x, indices: (N, C, h, w), indices as returned by ``MaxPool2d(2, 2, return_indices=True)`` (flat positions in
        the (2h, 2w) plane) -> (N, C, 2h, 2w).
    """

    def __init__(self) -> None:
        super().__init__(2, stride=2)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        planes = x.new_zeros((n, c, 4 * h * w)).scatter(2, indices.flatten(2), x.flatten(2))
        return planes.view(n, c, 2 * h, 2 * w)
