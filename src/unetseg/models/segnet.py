"""SegNet (Badrinarayanan, Kendall and Cipolla, TPAMI 2017): a VGG16-BN encoder and a mirrored decoder that
upsamples with the encoder's max-pooling indices.

The encoder is the 13 convolutional layers of VGG16 with batch normalisation (stages of 2, 2, 3, 3, 3 convolutions
of widths 64, 128, 256, 512, 512), each stage ending in a 2x2 max-pool that remembers where every maximum came
from. Each decoder stage first puts its input back at those remembered positions (max-unpooling: no learned
upsampling and no concatenated skip features) and then applies 3x3 convolutions + BN + ReLU mirroring the encoder
stage; the last convolution of a stage reduces to the width of the next (shallower) stage. The very last
convolution (``conv1_1_D`` in the authors' Caffe model) outputs the class scores directly, without BN or ReLU.

The encoder convolutions keep their biases, exactly as in VGG16-BN, so its weights can be copied into
``encoder`` layer by layer; with 3 input channels the encoder has 14,714,688 convolution and 8,448 BN parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SameSizeModel
from .blocks import MaxUnpool2x2
from .registry import register_model
from .vgg import VGG16_CONVS, VGG16_WIDTH_FACTORS


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (padding 1, with bias, as in VGG16-BN), batch norm, ReLU.

    :class:`~unetseg.models.blocks.ConvNormAct` (and hence :func:`~unetseg.models.vgg.vgg_stage`) drops the bias
    before a norm; SegNet keeps it so that the encoder is parameter-for-parameter VGG16-BN.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SegNetEncoderStage(nn.Module):
    """``num_convs`` x (3x3 conv + BN + ReLU), then 2x2 max-pooling (stride 2) that also returns the argmax indices.

    Args:
        in_channels: input feature maps.
        out_channels: feature maps of every convolution of the stage.
        num_convs: number of convolutions (2 or 3 in VGG16).

    Shape:
        input (N, in_channels, H, W) -> (pooled (N, out_channels, H/2, W/2), indices of the same shape, int64,
        each the flat position ``row * W + col`` of the maximum in its (H, W) plane).
    """

    def __init__(self, in_channels: int, out_channels: int, num_convs: int) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * num_convs
        self.convs = nn.Sequential(*(conv_bn_relu(widths[i], widths[i + 1]) for i in range(num_convs)))
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pool(self.convs(x))


class SegNetDecoderStage(nn.Module):
    """Max-unpooling with the encoder's indices, then ``num_convs`` 3x3 convolutions mirroring the encoder stage.

    The first ``num_convs - 1`` convolutions keep ``channels`` feature maps; the last one reduces to
    ``out_channels``. With ``final=True`` the last convolution is the classifier: no BN and no ReLU.

    Args:
        channels: feature maps entering the stage (the width of the mirrored encoder stage).
        out_channels: feature maps leaving the stage (next stage's width, or the number of classes).
        num_convs: number of convolutions (as in the mirrored encoder stage).
        final: True for the shallowest stage, whose last convolution outputs the logits.

    Shape:
        x, indices: (N, channels, h, w) -> (N, out_channels, 2h, 2w).
    """

    def __init__(self, channels: int, out_channels: int, num_convs: int, final: bool = False) -> None:
        super().__init__()
        self.unpool = MaxUnpool2x2()
        layers: list[nn.Module] = [conv_bn_relu(channels, channels) for _ in range(num_convs - 1)]
        if final:
            layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
        else:
            layers.append(conv_bn_relu(channels, out_channels))
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.convs(self.unpool(x, indices))


class SegNet(SameSizeModel):
    """SegNet: VGG16-BN encoder, decoder upsampling with the stored max-pooling indices.

    Args:
        in_channels: image channels (3 in the paper).
        num_classes: output channels: 1 for a binary (sigmoid) head, K >= 2 for softmax over K classes.
        base_channels: width of the first stage (64 in VGG16); the stages have base * (1, 2, 4, 8, 8).
        depth: number of encoder (and decoder) stages, 1 to 5 (5 in the paper); fewer stages keep VGG16's first
            ones.

    Shape:
        input (N, in_channels, H, W) with H and W multiples of ``2**depth`` -> logits (N, num_classes, H, W).

    Example:
        >>> net = SegNet(in_channels=3, num_classes=12, base_channels=4)
        >>> net(torch.zeros(1, 3, 64, 96)).shape
        torch.Size([1, 12, 64, 96])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 64, depth: int = 5) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                            ("base_channels", base_channels), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if depth > len(VGG16_CONVS):
            raise ValueError(f"depth must be between 1 and {len(VGG16_CONVS)} (VGG16 stages), got {depth}")
        self.in_channels, self.num_classes, self.depth = in_channels, num_classes, depth
        self.size_step = 2**depth
        widths = [base_channels * m for m in VGG16_WIDTH_FACTORS[:depth]]
        convs = VGG16_CONVS[:depth]
        ins = [in_channels] + widths[:-1]
        self.encoder = nn.ModuleList(SegNetEncoderStage(ins[i], widths[i], convs[i]) for i in range(depth))
        # decoder[0] is the deepest stage, decoder[-1] the shallowest (which outputs the class scores)
        self.decoder = nn.ModuleList(
            SegNetDecoderStage(widths[i], widths[i - 1] if i else num_classes, convs[i], final=i == 0)
            for i in reversed(range(depth))
        )

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        indices = []
        for stage in self.encoder:
            x, idx = stage(x)
            indices.append(idx)
        for stage in self.decoder:
            x = stage(x, indices.pop())
        return x


@register_model(
    "segnet",
    "SegNet: VGG16-BN encoder (13 convs), decoder upsampling with the stored max-pooling indices (no skips)",
    "Badrinarayanan, Kendall and Cipolla, SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image "
    "Segmentation, IEEE TPAMI 2017",
)
def segnet(in_channels: int = 1, num_classes: int = 2, base_channels: int = 64, depth: int = 5) -> SegNet:
    """The paper's network. With 3 input channels and 12 classes (CamVid): 29,449,932 parameters (the paper
    quotes 29.5M); with 1 channel and 2 classes: 29,443,010. Inputs: multiples of ``2**depth`` (32)."""
    return SegNet(in_channels, num_classes, base_channels, depth)
