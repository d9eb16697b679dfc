"""FusionNet (Quan, Hildebrand and Jeong, 2016): a U-shaped network built from residual blocks whose skip
connections ADD the encoder features to the upsampled decoder features instead of concatenating them.

Every level, in the encoder, at the bottom (the bridge) and in the decoder, is the same conv-residual-conv block:
a 3x3 convolution that sets the level's width, a residual block (three 3x3 convolutions whose input is added to
the output of the third) and a closing 3x3 convolution; every convolution is followed by batch norm and ReLU and
uses same padding. The encoder halves the size with 2x2 max-pooling; the decoder doubles it with a stride-2
transposed convolution (+ BN + ReLU) that halves the width, then adds the encoder features of the same level. A 1x1
convolution gives the class scores.

The up-convolution is 3x3 with stride 2 (padding 1, output padding 1) by default, as in FusionNet's figure and
common re-implementations; ``up_kernel=2`` selects U-Net's 2x2 up-convolution instead. The convolutions followed by
batch norm have no bias (the norm's shift makes it redundant).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SameSizeModel
from .blocks import ConvNormAct
from .registry import register_model


class ResidualBlock(nn.Module):
    """Three 3x3 conv + BN + ReLU layers with an identity shortcut: ``out = f3(f2(f1(x))) + x``.

    Args:
        channels: feature maps of the input, of every convolution and of the output.

    Shape:
        (N, channels, H, W) -> (N, channels, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*(ConvNormAct(channels, channels, "same", "batch") for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ConvResidualConv(nn.Sequential):
    """FusionNet's level block: 3x3 conv (``in -> out``), :class:`ResidualBlock` (``out``), 3x3 conv (``out``).

    Five 3x3 convolutions in all, each followed by BN and ReLU.

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            ConvNormAct(in_channels, out_channels, "same", "batch"),
            ResidualBlock(out_channels),
            ConvNormAct(out_channels, out_channels, "same", "batch"),
        )


class UpConvNormAct(nn.Sequential):
    """2x up-convolution (transposed convolution with stride 2, no bias), batch norm, ReLU.

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: 3 (padding 1, output padding 1; FusionNet's 3x3 deconvolution) or 2 (U-Net's 2x2).

    Shape:
        (N, in_channels, h, w) -> (N, out_channels, 2h, 2w).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        if kernel_size == 3:
            up = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=False)
        elif kernel_size == 2:
            up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=False)
        else:
            raise ValueError(f"up_kernel must be 2 or 3, got {kernel_size!r}")
        super().__init__(up, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class FusionNet(SameSizeModel):
    """FusionNet: residual conv-residual-conv blocks in a U shape with summed (not concatenated) skips.

    Args:
        in_channels: image channels (1 for the paper's EM images).
        num_classes: output channels: 1 for a binary (sigmoid) head, K >= 2 for softmax over K classes.
        base_channels: width of the first level (64 in the paper); level ``i`` has ``base * 2**i`` feature maps and
            the bridge ``base * 2**depth``.
        depth: number of 2x2 max-pool steps (4 in the paper).
        up_kernel: kernel of the stride-2 up-convolution, 3 (the paper) or 2.

    Shape:
        input (N, in_channels, H, W) with H and W multiples of ``2**depth`` -> logits (N, num_classes, H, W).

    Example:
        >>> net = FusionNet(base_channels=4)
        >>> net(torch.zeros(1, 1, 32, 48)).shape
        torch.Size([1, 2, 32, 48])
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 64, depth: int = 4, up_kernel: int = 3
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                            ("base_channels", base_channels), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_channels, self.num_classes, self.depth = in_channels, num_classes, depth
        self.size_step = 2**depth
        widths = [base_channels * 2**i for i in range(depth + 1)]  # widths[depth] is the bridge
        self.encoders = nn.ModuleList(
            ConvResidualConv(in_channels if i == 0 else widths[i - 1], widths[i]) for i in range(depth)
        )
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bridge = ConvResidualConv(widths[depth - 1], widths[depth])
        # ups[0] / decoders[0] are the deepest level
        self.ups = nn.ModuleList(UpConvNormAct(widths[i + 1], widths[i], up_kernel) for i in reversed(range(depth)))
        self.decoders = nn.ModuleList(ConvResidualConv(widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bridge(x)
        for up, decoder in zip(self.ups, self.decoders):
            x = decoder(up(x) + skips.pop())
        return self.head(x)


@register_model(
    "fusionnet",
    "FusionNet: conv-residual-conv blocks (5 BN convs per level), 3x3 stride-2 up-convs, summed skips, 1x1 head",
    "Quan, Hildebrand and Jeong, FusionNet: A deep fully residual convolutional neural network for image "
    "segmentation in connectomics, arXiv:1612.05360, 2016",
)
def fusionnet(
    in_channels: int = 1, num_classes: int = 2, base_channels: int = 64, depth: int = 4, up_kernel: int = 3
) -> FusionNet:
    """The paper's network. With the defaults: 78,515,522 parameters; inputs: multiples of ``2**depth`` (16)."""
    return FusionNet(in_channels, num_classes, base_channels, depth, up_kernel)
