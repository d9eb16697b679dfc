"""FCN-8s (Long, Shelhamer and Darrell, CVPR 2015), laid out as the authors' reference network ``voc-fcn8s``.

The VGG16 trunk becomes fully convolutional: fc6 is a 7x7 convolution without padding and fc7 a 1x1 convolution.
To let any input size through the 7x7 fc6, the first convolution pads the image by 100 pixels (Caffe pooling rounds
up, ``ceil_mode=True``). Class scores from fc7 (stride 32) are upsampled 2x by a learned transposed convolution and
summed with 1x1 scores of pool4 (cropped at offset 5), upsampled 2x again and summed with 1x1 scores of pool3
(cropped at offset 9), then upsampled 8x and cropped at offset 31 to the input size. The offsets are the ones Caffe's
crop layer computes for this network; they are constant for every input size thanks to the 100-pixel padding.

Size arithmetic for an input side ``H`` (``a = H + 198`` after the padded first convolution): pool ``k`` has side
``ceil(a / 2**k)``; score_fr has ``f = ceil(a / 32) - 6 >= 1``; the 2x upsampled map has ``2f + 2`` and must fit in
pool4 after offset 5, the 4x map ``4f + 6`` in pool3 after offset 9, and the 8x map ``32f + 56`` covers ``H`` after
offset 31. All these hold for every ``H >= 1`` (see :meth:`FCN8s.output_size`, which checks them), so the output
always has exactly the input size.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SegmentationModel
from .registry import register_model
from .vgg import VGG16_CONVS, bilinear_kernel, init_vgg_weights, vgg16_widths, vgg_stage

FIRST_PADDING = 100
"""Zero padding of conv1_1 in the reference network."""

POOL4_OFFSET, POOL3_OFFSET, OUTPUT_OFFSET = 5, 9, 31
"""Crop offsets of score_pool4, score_pool3 and the final 8x upsampled scores (Caffe's crop layer)."""


def _crop(x: torch.Tensor, offset: int, height: int, width: int) -> torch.Tensor:
    """``x[..., offset:offset + height, offset:offset + width]``."""
    return x[..., offset : offset + height, offset : offset + width]


class FCN8s(SegmentationModel):
    """FCN-8s: VGG16 fully convolutional network fusing stride-32, -16 and -8 class scores by summation.

    Args:
        in_channels: image channels (3 in the paper).
        num_classes: output channels: 1 for a binary (sigmoid) head, K >= 2 for softmax over K classes (21 for VOC).
        base_channels: width of the first VGG16 stage (64 in the paper); the stages have ``base * (1, 2, 4, 8, 8)``.
        fc_channels: channels of fc6 and fc7 (4096 in the paper).
        dropout: dropout probability after fc6 and after fc7 (0.5 in the paper).

    Initialisation: the VGG16 trunk, fc6 and fc7 are He-initialised (the paper fine-tunes from ImageNet VGG16,
    which is not shipped here); score_fr, score_pool4 and score_pool3 start at zero (as the reference does); the three
    transposed convolutions start as bilinear interpolation (as the paper does) and are learned.

    Shape:
        input (N, in_channels, H, W) -> logits (N, num_classes, H, W), for any H, W >= 1.

    With 3 input channels, 21 classes and the default widths the network has 134,489,759 parameters (the paper's
    "134M"); with 1 input channel and 2 classes, 134,270,278.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_channels: int = 64,
        fc_channels: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                            ("base_channels", base_channels), ("fc_channels", fc_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.in_channels, self.num_classes = in_channels, num_classes
        widths = vgg16_widths(base_channels)
        ins = [in_channels, *widths[:-1]]
        self.stages = nn.ModuleList(
            vgg_stage(cin, cout, n, "none", FIRST_PADDING if i == 0 else 1)
            for i, (cin, cout, n) in enumerate(zip(ins, widths, VGG16_CONVS))
        )
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.fc6 = nn.Sequential(nn.Conv2d(widths[4], fc_channels, 7), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.fc7 = nn.Sequential(nn.Conv2d(fc_channels, fc_channels, 1), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        self.score_pool4 = nn.Conv2d(widths[3], num_classes, 1)
        self.score_pool3 = nn.Conv2d(widths[2], num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-initialise the trunk, zero the score layers, set the upsampling layers to bilinear interpolation."""
        init_vgg_weights(self)
        with torch.no_grad():
            for score in (self.score_fr, self.score_pool4, self.score_pool3):
                score.weight.zero_()
                score.bias.zero_()
            for up in (self.upscore2, self.upscore_pool4, self.upscore8):
                up.weight.copy_(bilinear_kernel(self.num_classes, up.kernel_size[0]).to(up.weight.device))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        pools = []
        for stage in self.stages:
            x = self.pool(stage(x))
            pools.append(x)
        pool3, pool4, pool5 = pools[2], pools[3], pools[4]
        scores = self.upscore2(self.score_fr(self.fc7(self.fc6(pool5))))
        scores = scores + _crop(self.score_pool4(pool4), POOL4_OFFSET, scores.shape[-2], scores.shape[-1])
        scores = self.upscore_pool4(scores)
        scores = scores + _crop(self.score_pool3(pool3), POOL3_OFFSET, scores.shape[-2], scores.shape[-1])
        return _crop(self.upscore8(scores), OUTPUT_OFFSET, height, width)

    def output_size(self, input_size: int) -> int:
        """The input size itself; ValueError for sides < 1 (or should a crop ever not fit, which cannot happen)."""
        if input_size < 1:
            raise ValueError(f"input side {input_size} must be >= 1")
        size = input_size + 2 * (FIRST_PADDING - 1)
        pools = []
        for _ in VGG16_CONVS:
            size = -(-size // 2)  # ceil_mode pooling
            pools.append(size)
        score = pools[4] - 6  # fc6: 7x7, no padding
        up2 = 2 * (score - 1) + 4
        up4 = 2 * (up2 - 1) + 4
        up32 = 8 * (up4 - 1) + 16
        fits = pools[3] >= POOL4_OFFSET + up2 and pools[2] >= POOL3_OFFSET + up4 and up32 >= OUTPUT_OFFSET + input_size
        if score < 1 or not fits:
            raise ValueError(f"input side {input_size}: a crop of FCN-8s does not fit (pool sides {pools})")
        return input_size

    def input_size_rule(self) -> str:
        return "any size >= 1; output size == input size"


@register_model(
    "fcn8s",
    "FCN-8s: fully convolutional VGG16 (pad 100, fc6 7x7, fc7 1x1), learned 2x/2x/8x upsampling summed with "
    "pool4 and pool3 scores",
    "Long, Shelhamer and Darrell, Fully Convolutional Networks for Semantic Segmentation, CVPR 2015",
)
def fcn8s(
    in_channels: int = 1,
    num_classes: int = 2,
    base_channels: int = 64,
    fc_channels: int = 4096,
    dropout: float = 0.5,
) -> FCN8s:
    """The reference voc-fcn8s layout; any input size, output size == input size (134.3M parameters by default)."""
    return FCN8s(in_channels, num_classes, base_channels, fc_channels, dropout)
