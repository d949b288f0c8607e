"""Mask heads: a feature pyramid in, (B, K, H, W) class logits out at the shallowest level's stride times
that stride, i.e. the model's input resolution (the task resizes when an input size is not a multiple).

unet:   the U-Net decoder of the source's design (ResNet-18 encoder + U-Net): from the deepest level up,
        a transposed convolution doubles the resolution, the skip from the encoder level of that
        resolution is concatenated, two 3x3 convolutions mix them; transposed convolutions then take the
        shallowest level to the input's resolution.
lraspp: torchvision's LR-ASPP head (MobileNetV3's segmentation head): a stride-8 level for detail and the
        deepest level with a global-context gate, upsampled bilinearly: far fewer operations than a full
        decoder."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.lraspp import LRASPPHead
from zoo_core import ZooError


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    """x2 by a transposed convolution, the skip concatenated, two 3x3 convolutions."""

    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.up = _up(cin, cout)
        self.mix = nn.Sequential(_conv_bn(cout + skip, cout), _conv_bn(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:  # an input size that is not a multiple of the deepest stride
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.mix(torch.cat([x, skip], dim=1))


class UNetHead(nn.Module):
    def __init__(self, levels, classes: int, channels: int, dropout: float):
        super().__init__()
        # One level per stride, the deepest map of each (timm gives two at one stride for some models).
        keep, strides = [], []
        for i, lv in enumerate(levels):
            if not strides or lv.stride > strides[-1]:
                keep.append(i)
                strides.append(lv.stride)
            elif lv.stride == strides[-1]:
                keep[-1], strides[-1] = i, lv.stride  # the deeper map of the same stride
        self.keep = keep
        chans = [levels[i].channels for i in keep]
        self.blocks = nn.ModuleList()
        cin = chans[-1]
        for k, skip in enumerate(reversed(chans[:-1])):  # the decoder's width halves towards the input
            cout = max(16, channels >> k)
            self.blocks.append(UpBlock(cin, skip, cout))
            cin = cout
        ups = int(round(math.log2(strides[0])))
        if 2 ** ups != strides[0]:
            raise ZooError(f"head 'unet' needs pyramid strides that are powers of two, got {strides}")
        final = []
        for _ in range(ups):  # the shallowest level (stride 2 or 4 for most backbones) up to the input
            final.append(_up(cin, max(16, cin // 2)))
            cin = max(16, cin // 2)
        self.final = nn.Sequential(*final)
        self.classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(cin, classes, 1))

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        feats = [pyramid[i] for i in self.keep]
        x = feats[-1]
        for block, skip in zip(self.blocks, reversed(feats[:-1])):
            x = block(x, skip)
        return self.classifier(self.final(x))


def unet_head(backbone, info: dict[str, Any], channels: int = 64, dropout: float = 0.1) -> nn.Module:
    if channels < 16:
        raise ZooError(f"head 'unet' option channels must be >= 16, got {channels}")
    if not 0 <= dropout < 1:
        raise ZooError(f"head option dropout must be in [0, 1), got {dropout}")
    return UNetHead(backbone.feature_info, len(info["classes"]), channels, dropout)


class LRASPP(nn.Module):
    """torchvision's LRASPPHead on two pyramid levels, upsampled to the input's resolution."""

    def __init__(self, levels, low: int, classes: int, channels: int):
        super().__init__()
        self.low, self.high, self.low_stride = low, len(levels) - 1, levels[low].stride
        self.head = LRASPPHead(levels[low].channels, levels[-1].channels, classes, channels)

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        low = pyramid[self.low]
        logits = self.head({"low": low, "high": pyramid[self.high]})
        size = (low.shape[-2] * self.low_stride, low.shape[-1] * self.low_stride)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def lraspp_head(backbone, info: dict[str, Any], channels: int = 128, low_stride: int = 8) -> nn.Module:
    """low_stride: the finest stride the detail branch may take (8, as in the paper)."""
    if channels < 1 or low_stride < 1:
        raise ZooError(f"head 'lraspp' options channels and low_stride must be >= 1, got {channels}, {low_stride}")
    levels = backbone.feature_info
    low = max((i for i, lv in enumerate(levels) if lv.stride <= low_stride), default=0)
    return LRASPP(levels, low, len(info["classes"]), channels)
