"""UNet++ (Zhou, Rahman Siddiquee, Tajbakhsh and Liang, DLMIA 2018): U-Net with nested, dense skip pathways.

Node ``X^{i,j}`` sits at resolution level ``i`` (``i`` 2x2 max-pools below the input) and skip-pathway column ``j``.
The backbone (encoder) is the column ``j = 0``; every other node with ``i + j <= depth`` is

    X^{i,j} = H([X^{i,0}, ..., X^{i,j-1}, Up(X^{i+1,j-1})])

with ``H`` a double 3x3 convolution (same padding) producing ``base_channels * 2**i`` maps. The U-Net decoder is the
diagonal ``X^{depth-j,j}``; UNet++ fills the triangle between encoder and decoder with these dense nodes.

Deep supervision puts a 1x1 head on each ``X^{0,j}``, ``j = 1..depth``: head ``j`` is the output of the embedded
U-Net of depth ``j``, so head ``j`` only needs the nodes with ``i + j' <= j``. At inference the heads are averaged
("accurate mode") or a single head ``k`` is used and the deeper nodes are never computed ("pruned" UNet++ L^k).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SameSizeModel
from .blocks import DoubleConv, Down, check_norm, upsample2x
from .registry import register_model

class NestedNode(nn.Module):
    """A skip-pathway node ``X^{i,j}`` (``j >= 1``): upsample the node below, concatenate, double convolution.

    Args:
        channels: feature maps of this level (``base_channels * 2**i``).
        below_channels: feature maps of the level below (``2 * channels``).
        num_previous: ``j``, the number of same-level nodes ``X^{i,0..j-1}`` concatenated.
        norm: normalisation after each 3x3 convolution (see :data:`unetseg.models.blocks.NORMS`).
        up_mode: ``"bilinear"`` or ``"transpose"``.

    Shape:
        previous: ``j`` tensors (N, channels, H, W); below: (N, below_channels, H/2, W/2) -> (N, channels, H, W).
    """

    def __init__(self, channels: int, below_channels: int, num_previous: int, norm: str, up_mode: str) -> None:
        super().__init__()
        self.up = upsample2x(below_channels, channels, up_mode)
        self.conv = DoubleConv((num_previous + 1) * channels, channels, "same", norm)

    def forward(self, previous: list[torch.Tensor], below: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([*previous, self.up(below)], dim=1))


class UNetPlusPlus(SameSizeModel):
    """UNet++ with configurable depth, width, normalisation, upsampling and deep supervision.

    Args:
        in_channels: image channels (1 for grey, 3 for RGB).
        num_classes: output channels: 1 for a binary (sigmoid) head, K >= 2 for softmax over K classes.
        base_channels: feature maps of level 0; level ``i`` has ``base_channels * 2**i`` (32-64-128-256-512 in the
            paper).
        depth: number of 2x2 max-pool steps (4 in the paper); there are ``depth`` skip-pathway columns.
        norm: ``"none"`` (the authors' code), ``"batch"``, ``"instance"`` or ``"group"`` after every 3x3 conv.
        up_mode: ``"bilinear"`` (bilinear + 1x1 conv) or ``"transpose"`` (2x2 transposed conv, the authors' code).
        deep_supervision: one 1x1 head on every ``X^{0,j}``, ``j = 1..depth``. In training mode forward then
            returns the list of the ``depth`` heads' logits (shallow to deep); in evaluation mode one tensor, the
            mean of the heads' logits, or head ``inference_head`` alone.
        inference_head: with deep supervision, evaluate only head ``k`` (1..depth) in evaluation mode and compute
            only the nodes it depends on (the pruned sub-network of depth ``k``). Can be changed after training
            by assigning :attr:`inference_head`.

    Shape:
        input (N, in_channels, H, W) with H, W multiples of ``2**depth`` -> logits (N, num_classes, H, W).

    Example:
        >>> net = UNetPlusPlus(base_channels=4, depth=2, deep_supervision=True).eval()
        >>> net(torch.zeros(1, 1, 8, 8)).shape
        torch.Size([1, 2, 8, 8])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_channels: int = 32,
        depth: int = 4,
        norm: str = "batch",
        up_mode: str = "bilinear",
        deep_supervision: bool = False,
        inference_head: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("depth", depth),
                            ("base_channels", base_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_norm(norm)
        self.in_channels, self.num_classes, self.depth = in_channels, num_classes, depth
        self.size_step = 2**depth
        self.deep_supervision = bool(deep_supervision)
        self._inference_head: int | None = None
        self.inference_head = inference_head
        widths = [base_channels * 2**i for i in range(depth + 1)]
        # encoder[i] computes X^{i,0}; nodes[i][j - 1] computes X^{i,j} (j >= 1, i + j <= depth)
        self.encoder = nn.ModuleList(
            [DoubleConv(in_channels, widths[0], "same", norm)]
            + [Down(widths[i - 1], widths[i], "same", norm) for i in range(1, depth + 1)]
        )
        self.nodes = nn.ModuleList(
            nn.ModuleList(NestedNode(widths[i], widths[i + 1], j, norm, up_mode) for j in range(1, depth - i + 1))
            for i in range(depth)
        )
        num_heads = depth if self.deep_supervision else 1
        self.heads = nn.ModuleList(nn.Conv2d(widths[0], num_classes, 1) for _ in range(num_heads))

    @property
    def inference_head(self) -> int | None:
        """The single deep-supervision head used in evaluation mode (1..depth), or None for the mean of all."""
        return self._inference_head

    @inference_head.setter
    def inference_head(self, value: int | None) -> None:
        if value is not None:
            if not self.deep_supervision:
                raise ValueError("inference_head needs deep_supervision=True (without it there is one head)")
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= self.depth:
                raise ValueError(f"inference_head must be None or an integer in 1..{self.depth}, got {value!r}")
        self._inference_head = value

    def active_depth(self) -> int:
        """Depth of the sub-network the next forward pass computes (``inference_head`` when pruned in eval mode)."""
        if not self.training and self.inference_head is not None:
            return self.inference_head
        return self.depth

    def active_nodes(self) -> list[tuple[int, int]]:
        """The nodes ``(i, j)`` the next forward pass computes, in computation order (``i + j <= active_depth``)."""
        d = self.active_depth()
        return [(i, s - i) for s in range(d + 1) for i in range(s, -1, -1)]

    def _forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        d = self.active_depth()
        # grid[i] holds X^{i,0}, X^{i,1}, ... Nodes are computed by anti-diagonals i + j = s, so X^{0,s} (head s)
        # is ready as soon as the encoder reaches level s.
        grid: list[list[torch.Tensor]] = [[] for _ in range(d + 1)]
        for s in range(d + 1):
            grid[s].append(self.encoder[s](x if s == 0 else grid[s - 1][0]))
            for i in range(s - 1, -1, -1):
                j = s - i
                grid[i].append(self.nodes[i][j - 1](grid[i][:j], grid[i + 1][j - 1]))
        if not self.deep_supervision:
            return self.heads[0](grid[0][d])
        if not self.training and self.inference_head is not None:
            return self.heads[d - 1](grid[0][d])
        logits = [head(grid[0][j]) for j, head in enumerate(self.heads, start=1)]
        if self.training:
            return logits
        return torch.stack(logits).mean(dim=0)


@register_model(
    "unetpp",
    "UNet++: nested dense skip pathways, same padding, optional deep supervision (mean of heads or pruned head)",
    "Zhou et al., UNet++: A Nested U-Net Architecture for Medical Image Segmentation, DLMIA 2018",
)
def unetpp(
    in_channels: int = 1,
    num_classes: int = 2,
    base_channels: int = 32,
    depth: int = 4,
    norm: str = "batch",
    up_mode: str = "transpose",
    deep_supervision: bool = False,
    inference_head: int | None = None,
) -> UNetPlusPlus:
    """UNet++ L^depth with the authors' 2x2 transposed-conv upsampling. With the defaults and 1 class: 9,045,249
    parameters; ``norm="none"`` reproduces the authors' Keras network (9,041,601 parameters, the paper's 9.04M)."""
    return UNetPlusPlus(in_channels, num_classes, base_channels, depth, norm, up_mode, deep_supervision,
                        inference_head)
