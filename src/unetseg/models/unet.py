"""U-Net (Ronneberger, Fischer and Brox, MICCAI 2015) and its common padded variant.

``padding="valid"`` is the published network: unpadded 3x3 convolutions, so every double convolution loses 4
pixels per side length, and the skip features are centre-cropped before concatenation. A 572x572 input tile gives a
388x388 output map. ``padding="same"`` keeps the spatial size, so the output covers the input exactly and any
multiple of ``2**depth`` is accepted.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SegmentationModel
from .blocks import DoubleConv, Down, Up, check_norm


class UNet(SegmentationModel):
    """U-Net with configurable depth, width, padding, normalisation and upsampling.

    Args:
        in_channels: image channels (1 for grey, 3 for RGB).
        num_classes: output channels: 1 for a binary (sigmoid) head, K >= 2 for softmax over K classes.
        depth: number of 2x2 max-pool steps (4 in the paper).
        base_channels: feature maps of the first level (64 in the paper); each level doubles it.
        padding: ``"valid"`` (the paper, output smaller than input) or ``"same"`` (output size == input size).
        norm: ``"none"`` (the paper), ``"batch"``, ``"instance"`` or ``"group"`` after every 3x3 convolution.
        up_mode: ``"transpose"`` (2x2 up-convolution, the paper) or ``"bilinear"`` (+ 1x1 convolution).
        dropout: dropout probability at the end of the contracting path (after the bottom double convolution).

    Shape:
        input (N, in_channels, H, W) -> logits (N, num_classes, H', W') with H' = :meth:`output_size` (H).

    Example:
        >>> net = UNet(padding="valid")
        >>> net.output_size(572)
        388
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        depth: int = 4,
        base_channels: int = 64,
        padding: str = "valid",
        norm: str = "none",
        up_mode: str = "transpose",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("depth", depth),
                            ("base_channels", base_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if padding not in ("valid", "same"):
            raise ValueError(f"padding={padding!r} is not one of valid, same")
        check_norm(norm)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.in_channels, self.num_classes, self.depth, self.padding = in_channels, num_classes, depth, padding
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, widths[0], padding, norm)
        self.downs = nn.ModuleList(
            Down(widths[i], widths[i + 1], padding, norm, dropout if i == depth - 1 else 0.0) for i in range(depth)
        )
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i], padding, norm, up_mode) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)

    def output_size(self, input_size: int) -> int:
        """Output side for input side ``input_size``; ValueError when a pooling step would see an odd size."""
        shrink = 4 if self.padding == "valid" else 0
        size = input_size - shrink
        for _ in range(self.depth):
            if size < 2 or size % 2:
                raise ValueError(f"input side {input_size} reaches an odd or too small size ({size}) before pooling")
            size = size // 2 - shrink
        if size < 1:
            raise ValueError(f"input side {input_size} is too small: the bottom level would be {size} pixels")
        for _ in range(self.depth):
            size = size * 2 - shrink
        if size < 1:
            raise ValueError(f"input side {input_size} is too small: the output would be {size} pixels")
        return size

    def input_size_rule(self) -> str:
        step = 2**self.depth
        if self.padding == "same":
            return f"multiple of {step}; output size == input size"
        first = self.input_size_for(1)
        return (
            f"{first} + k*{step} pixels; output = input - {2 * self.margin(first)}"
        )
