"""The residual U-Net head: the backbone's feature pyramid and the input image in, the restored image out.

From the deepest pyramid level kept up to the shallowest, a transposed convolution doubles the resolution,
the encoder's skip of that resolution is concatenated and two 3x3 convolutions mix them (the source's
ResNet-18 U-Net); then up to the input's resolution, where a small full-resolution branch of the image
itself is the last skip (fine detail no stride-2 feature keeps). For super-resolution (info["scale"] 2 or
4), sub-pixel convolutions (PixelShuffle) go up again. The head predicts the residual over the input
(bicubic-upscaled for super-resolution): output = base + residual, in [0, 1] pixel values.

y_channel: the residual is a single channel added to R, G and B alike, which is exactly a change of the
luminance Y with the chroma kept (YCbCr is a linear map of RGB): the source's "restore the Y channel only".
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from zoo_core import ZooError


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))


class Up(nn.Module):
    """x2 by a transposed convolution, the skip concatenated, two 3x3 convolutions."""

    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.mix = nn.Sequential(_conv(cout + skip, cout), _conv(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:  # a side that is not a multiple of the level's stride
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.mix(torch.cat([x, skip], dim=1))


class ResidualUNet(nn.Module):
    def __init__(self, levels, mean, std, scale: int, channels: int, depth: int, y_channel: bool):
        super().__init__()
        keep, strides = [], []  # one level per stride (the deepest map of it), the `depth` shallowest strides
        for i, lv in enumerate(levels):
            if not strides or lv.stride > strides[-1]:
                keep.append(i)
                strides.append(lv.stride)
            elif lv.stride == strides[-1]:
                keep[-1] = i
        keep, strides = keep[:depth], strides[:depth]
        if any(2 ** round(math.log2(s)) != s for s in strides):
            raise ZooError(f"head 'unet-residual' needs pyramid strides that are powers of two, got {strides}")
        self.keep, self.scale = keep, scale
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        chans = [levels[i].channels for i in keep]
        width = lambda s: min(4 * channels, channels * max(1, s // 4))  # noqa: E731  narrower near the input
        self.blocks = nn.ModuleList()
        cin = chans[-1]
        for k in range(len(keep) - 1, 0, -1):  # deepest -> shallowest kept level
            cout = width(strides[k - 1])
            self.blocks.append(Up(cin, chans[k - 1], cout))
            cin = cout
        self.to_full = nn.ModuleList()
        s = strides[0]
        while s > 1:  # the shallowest level up to the input's resolution
            self.to_full.append(nn.Sequential(nn.ConvTranspose2d(cin, channels, 2, stride=2), nn.LeakyReLU(0.1, inplace=True)))
            cin, s = channels, s // 2
        self.image = nn.Sequential(_conv(3, channels // 2), _conv(channels // 2, channels // 2))
        self.fuse = nn.Sequential(_conv(cin + channels // 2, channels), _conv(channels, channels))
        ups = []
        for _ in range(int(round(math.log2(scale)))):
            ups += [nn.Conv2d(channels, channels * 4, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.1, inplace=True)]
        self.upscale = nn.Sequential(*ups)
        self.out = nn.Conv2d(channels, 1 if y_channel else 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # training starts from the identity (or bicubic) answer
        nn.init.zeros_(self.out.bias)

    def forward(self, pyramid: list[torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        feats = [pyramid[i] for i in self.keep]
        x = feats[-1]
        for block, skip in zip(self.blocks, reversed(feats[:-1])):
            x = block(x, skip)
        for up in self.to_full:
            x = up(x)
        if x.shape[-2:] != image.shape[-2:]:
            x = F.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)
        x = self.fuse(torch.cat([x, self.image(image)], dim=1))
        residual = self.out(self.upscale(x))
        base = image * self.std + self.mean  # the input's own pixels in [0, 1]
        if self.scale > 1:
            base = F.interpolate(base, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + residual  # (a 1-channel residual broadcasts over R, G, B: the Y channel)


def unet_residual(backbone, info: dict[str, Any], channels: int = 32, levels: int = 3,
                  y_channel: bool = False) -> nn.Module:
    """channels: the decoder's width at the input's resolution; levels: how many of the backbone's
    shallowest pyramid strides the decoder uses (restoration is about detail: deep levels add little)."""
    if channels < 8 or channels % 2:
        raise ZooError(f"head 'unet-residual' option channels must be an even number >= 8, got {channels}")
    if levels < 1:
        raise ZooError(f"head 'unet-residual' option levels must be >= 1, got {levels}")
    scale = int(info.get("scale", 1))
    if scale not in (1, 2, 4):
        raise ZooError(f"head 'unet-residual': the data's scale must be 1, 2 or 4, got {scale}")
    dc = backbone.data_config
    if dc.channels != 3:
        raise ZooError(f"head 'unet-residual' restores RGB images: the backbone takes {dc.channels} channel(s); "
                       "give it three (e.g. --set backbone.in_chans=3 for the small nets)")
    return ResidualUNet(backbone.feature_info, dc.mean, dc.std, scale, channels, levels, y_channel)
