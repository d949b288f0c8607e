"""The autoencoder's decoder: the backbone's pooled features -> a latent vector (the code) -> transposed
convolutions up to the input's size -> pixels in [0, 1] (a sigmoid). The model returns (reconstruction,
latent), so prediction and export give both."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from zoo_core import ZooError


class Decoder(nn.Module):
    def __init__(self, features: int, latent: int, channels: int, out_channels: int, size: tuple[int, int]):
        super().__init__()
        self.size = size
        ups = max(1, int(math.ceil(math.log2(max(size) / 4))))
        self.start = (channels, 4, 4)
        self.encode = nn.Linear(features, latent)
        self.expand = nn.Sequential(nn.Linear(latent, channels * 16), nn.ReLU(inplace=True))
        layers, c = [], channels
        for _ in range(ups):
            layers += [nn.ConvTranspose2d(c, max(8, c // 2), 4, stride=2, padding=1), nn.BatchNorm2d(max(8, c // 2)),
                       nn.ReLU(inplace=True)]
            c = max(8, c // 2)
        layers += [nn.Conv2d(c, out_channels, 3, padding=1)]
        self.up = nn.Sequential(*layers)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = self.up(self.expand(z).view(-1, *self.start))
        x = nn.functional.interpolate(x, size=self.size, mode="bilinear", align_corners=False) \
            if tuple(x.shape[-2:]) != self.size else x
        return torch.sigmoid(x)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(pooled)
        return self.decode(z), z


def ae_decoder(backbone, info: dict[str, Any], latent: int = 64, channels: int = 128) -> nn.Module:
    if latent < 1 or channels < 8:
        raise ZooError(f"head 'ae-decoder': latent must be >= 1 and channels >= 8 (got {latent}, {channels})")
    c, h, w = backbone.data_config.input_size
    return Decoder(backbone.num_features, latent, channels, c, (h, w))
