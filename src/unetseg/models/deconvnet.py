"""DeconvNet (Noh, Hong and Han, ICCV 2015): a VGG16 encoder mirrored by a deconvolution network.

The encoder is the convolutional part of VGG16 with batch normalisation after every convolution; its five 2x2
max-pools record the positions of the maxima ("switches"). fc6 becomes a 7x7 convolution without padding (the pool5
map shrinks to ``pool5 - 6``) and fc7 a 1x1 convolution. The decoder mirrors it: a 7x7 transposed convolution
(deconv-fc6) restores the pool5 size, then each stage unpools with the switches of the matching encoder pool
(``MaxUnpool2d``) and applies as many 3x3 deconvolution layers as the encoder stage had convolutions, the last one of
the stage going back to the width of the previous encoder stage. Every convolution and deconvolution is followed by
batch normalisation and ReLU. A 1x1 convolution gives the class scores at the input resolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import SegmentationModel
from .blocks import MaxUnpool2x2
from .registry import register_model
from .vgg import VGG16_CONVS, DeconvNormAct, init_vgg_weights, vgg16_widths, vgg_stage

STRIDE = 2 ** len(VGG16_CONVS)
"""Total downsampling of the five 2x2 max-pools."""


class FcBatchNorm2d(nn.BatchNorm2d):
    """Batch norm that, in training mode, falls back to its running statistics when it sees ONE value per channel.

    At the smallest input (224 for the defaults) fc6 and fc7 produce 1x1 maps, so with a batch of one image the
    batch statistics are undefined (PyTorch raises; the value would normalise to 0). The reference training uses
    batches of 8 images, where this never happens. With the fallback, a batch of one still trains (that forward normalises with
    the running estimates and does not update them); every other batch behaves exactly like ``nn.BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def _fc_block(layer: nn.Module, channels: int) -> nn.Sequential:
    """``layer`` followed by batch norm (:class:`FcBatchNorm2d`) and ReLU."""
    return nn.Sequential(layer, FcBatchNorm2d(channels), nn.ReLU(inplace=True))


class DeconvNet(SegmentationModel):
    """DeconvNet: VGG16-BN encoder with pooling switches, fc6/fc7 as convolutions, mirrored unpool+deconv decoder.

    Args:
        in_channels: image channels (3 in the paper).
        num_classes: output channels: 1 for a binary (sigmoid) head, K >= 2 for softmax over K classes (21 for VOC).
        base_channels: width of the first VGG16 stage (64 in the paper); the stages have ``base * (1, 2, 4, 8, 8)``.
        fc_channels: channels of fc6 and fc7 (4096 in the paper).
        fc_kernel: kernel of fc6 and deconv-fc6 (7 in the paper); the pool5 map must be at least this large, so the
            smallest input side is ``32 * fc_kernel``.

    Convolutions and deconvolutions followed by batch norm have no bias (the norm's shift makes it redundant; the
    reference Caffe model has 16,704 such biases more); the score layer has one. Weights are He-initialised (the paper
    starts the encoder from ImageNet VGG16). The norms of fc6, fc7 and deconv-fc6, whose maps are 1x1 or
    ``fc_kernel`` x ``fc_kernel`` at the smallest input, are :class:`FcBatchNorm2d`, so a batch of a single image
    trains.

    Shape:
        input (N, in_channels, H, W) -> logits (N, num_classes, H, W); H and W multiples of 32, at least
        ``32 * fc_kernel``.

    With 3 input channels, 21 classes and the default widths the network has 251,788,949 parameters (252M as
    published; 251,805,653 with the reference's redundant biases); with 1 input channel and 2 classes, 251,786,562.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_channels: int = 64,
        fc_channels: int = 4096,
        fc_kernel: int = 7,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                            ("base_channels", base_channels), ("fc_channels", fc_channels),
                            ("fc_kernel", fc_kernel)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_channels, self.num_classes, self.fc_kernel = in_channels, num_classes, fc_kernel
        widths = vgg16_widths(base_channels)
        ins = [in_channels, *widths[:-1]]
        self.encoder = nn.ModuleList(
            vgg_stage(cin, cout, n, "batch") for cin, cout, n in zip(ins, widths, VGG16_CONVS)
        )
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.fc6 = _fc_block(nn.Conv2d(widths[4], fc_channels, fc_kernel, bias=False), fc_channels)
        self.fc7 = _fc_block(nn.Conv2d(fc_channels, fc_channels, 1, bias=False), fc_channels)
        self.deconv_fc6 = _fc_block(nn.ConvTranspose2d(fc_channels, widths[4], fc_kernel, bias=False), widths[4])
        self.unpool = MaxUnpool2x2()
        # decoder stage k mirrors encoder stage k (deepest first): n_k deconvs at width_k, the last to width_{k-1}
        targets = [widths[0], *widths[:-1]]
        self.decoder = nn.ModuleList(
            nn.Sequential(*(DeconvNormAct(w, w if i < n - 1 else t) for i in range(n)))
            for w, t, n in reversed(list(zip(widths, targets, VGG16_CONVS)))
        )
        self.score = nn.Conv2d(widths[0], num_classes, 1)
        init_vgg_weights(self)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        switches = []
        for stage in self.encoder:
            x, indices = self.pool(stage(x))
            switches.append(indices)
        x = self.deconv_fc6(self.fc7(self.fc6(x)))
        for stage, indices in zip(self.decoder, reversed(switches)):
            x = stage(self.unpool(x, indices))
        return self.score(x)

    def output_size(self, input_size: int) -> int:
        """The input size itself; ValueError unless it is a multiple of 32 of at least ``32 * fc_kernel``."""
        if input_size % STRIDE or input_size < STRIDE * self.fc_kernel:
            raise ValueError(
                f"input side {input_size} is not accepted: DeconvNet needs a multiple of {STRIDE} of at least "
                f"{STRIDE * self.fc_kernel} (the pool5 map, side / {STRIDE}, must be >= fc_kernel={self.fc_kernel})"
            )
        return input_size

    def input_size_rule(self) -> str:
        return f"multiple of {STRIDE}, at least {STRIDE * self.fc_kernel}; output size == input size"


@register_model(
    "deconvnet",
    "DeconvNet: VGG16-BN encoder with pooling switches, fc6 7x7/fc7 1x1, mirrored unpooling + 3x3 deconvolutions",
    "Noh, Hong and Han, Learning Deconvolution Network for Semantic Segmentation, ICCV 2015",
)
def deconvnet(
    in_channels: int = 1,
    num_classes: int = 2,
    base_channels: int = 64,
    fc_channels: int = 4096,
    fc_kernel: int = 7,
) -> DeconvNet:
    """The paper's network with batch norm everywhere; multiples of 32 from 32 * fc_kernel (224 by default)."""
    return DeconvNet(in_channels, num_classes, base_channels, fc_channels, fc_kernel)
