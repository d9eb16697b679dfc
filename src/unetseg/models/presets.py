"""The registered U-Net presets."""

from __future__ import annotations

from .registry import register_model
from .unet import UNet


@register_model(
    "unet",
    "the published U-Net: valid 3x3 convs, copy-and-crop skips, 2x2 up-convs, dropout 0.5 at the bottom",
    "Ronneberger et al., U-Net: Convolutional Networks for Biomedical Image Segmentation, MICCAI 2015",
)
def unet(
    in_channels: int = 1,
    num_classes: int = 2,
    depth: int = 4,
    base_channels: int = 64,
    norm: str = "none",
    up_mode: str = "transpose",
    dropout: float = 0.5,
) -> UNet:
    """The paper's network (valid padding). With the defaults: 31,030,658 parameters, 572x572 -> 388x388."""
    return UNet(in_channels, num_classes, depth, base_channels, "valid", norm, up_mode, dropout)


@register_model(
    "unet_bn",
    "U-Net with same padding and batch norm (output size == input size), transposed-conv upsampling",
    "Ronneberger et al. 2015, padded variant with batch normalisation (Ioffe and Szegedy 2015)",
)
def unet_bn(
    in_channels: int = 1,
    num_classes: int = 2,
    depth: int = 4,
    base_channels: int = 64,
    norm: str = "batch",
    up_mode: str = "transpose",
    dropout: float = 0.0,
) -> UNet:
    """Same-padding U-Net with batch norm; any multiple of 2**depth is accepted and the output matches the input."""
    return UNet(in_channels, num_classes, depth, base_channels, "same", norm, up_mode, dropout)
