"""VGG16 pieces shared by the VGG16-based segmentation networks (FCN-8s and DeconvNet).

VGG16 (Simonyan and Zisserman, ICLR 2015) has five stages of 3x3 convolutions + ReLU, each followed by a 2x2 max-pool
with stride 2: 2, 2, 3, 3 and 3 convolutions with widths ``base * (1, 2, 4, 8, 8)`` (``base = 64`` in the paper).
This module holds the stage layout, one stage builder (reusing :class:`~unetseg.models.blocks.ConvNormAct`), the
mirrored 3x3 deconvolution layer of DeconvNet, the bilinear kernel FCN uses to initialise its upsampling layers and
the weight initialisation both networks use when training from scratch.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvNormAct

VGG16_CONVS: tuple[int, ...] = (2, 2, 3, 3, 3)
"""Number of 3x3 convolutions in each of the five VGG16 stages."""

VGG16_WIDTH_FACTORS: tuple[int, ...] = (1, 2, 4, 8, 8)
"""Width of each VGG16 stage as a multiple of ``base_channels``."""


def vgg16_widths(base_channels: int) -> list[int]:
    """Output channels of the five VGG16 stages: ``base_channels * (1, 2, 4, 8, 8)``."""
    return [base_channels * f for f in VGG16_WIDTH_FACTORS]


def vgg_stage(
    in_channels: int, out_channels: int, num_convs: int, norm: str = "none", first_padding: int = 1
) -> nn.Sequential:
    """``num_convs`` 3x3 convolutions (each + optional norm + ReLU): ``in -> out -> ... -> out`` channels.

    Every convolution has padding 1 (size kept) except the first, which has ``first_padding`` (FCN pads the very
    first convolution of the network by 100 pixels). The convolutions carry a bias only when ``norm == "none"``.

    Args:
        in_channels: input feature maps.
        out_channels: feature maps of every convolution of the stage.
        num_convs: number of convolutions (2 or 3 in VGG16).
        norm: normalisation after each convolution (``"none"`` or ``"batch"``, see :func:`~.blocks.make_norm`).
        first_padding: zero padding of the first convolution.

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, H + 2 * (first_padding - 1), W + 2 * (first_padding - 1)).
    """
    if num_convs < 1:
        raise ValueError(f"num_convs must be >= 1, got {num_convs}")
    layers = [
        ConvNormAct(in_channels if i == 0 else out_channels, out_channels, "same", norm) for i in range(num_convs)
    ]
    if first_padding != 1:
        conv = layers[0][0]
        assert isinstance(conv, nn.Conv2d)
        conv.padding = (first_padding, first_padding)  # plain zero padding: F.conv2d reads this attribute
    return nn.Sequential(*layers)


class DeconvNormAct(nn.Sequential):
    """3x3 transposed convolution (stride 1, padding 1: the size is kept), batch norm, ReLU (DeconvNet's deconv layer).

    The transposed convolution has no bias: the batch norm's shift makes it redundant.

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights of a ``channels -> channels`` transposed convolution that upsamples each channel bilinearly.

    The kernel for upsampling by ``f`` has size ``2f`` (or ``2f - 1``); each output channel takes only its own input
    channel. With stride ``f`` and the crop FCN applies, this reproduces bilinear interpolation.

    Returns:
        A (channels, channels, kernel_size, kernel_size) tensor, the layout of ``ConvTranspose2d.weight``.
    """
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(kernel_size, dtype=torch.float64) - centre).abs() / factor
    kernel = (taps[:, None] * taps[None, :]).float()
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    for c in range(channels):
        weight[c, c] = kernel
    return weight


def init_vgg_weights(module: nn.Module) -> None:
    """He (fan-in, ReLU) initialisation of convolutions, zero biases, unit/zero batch norms.

    The papers start from ImageNet-trained VGG16 weights, which this package does not ship; He initialisation keeps
    the activation variance through the 15 stacked convolutions of the VGG16 trunk (PyTorch's default would shrink
    it by ~2.5x per layer, leaving FCN's un-normalised trunk nearly silent at the start of training).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            # a transposed convolution's weight is (in, out, k, k), so its true fan-in is PyTorch's "fan_out"
            mode = "fan_out" if isinstance(m, nn.ConvTranspose2d) else "fan_in"
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
