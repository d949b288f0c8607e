"""Box heads: features -> four numbers -> sigmoid -> an ordered box (x0, y0, x1, y1) in 0..1 of the
model's input. The last layer's bias starts at the dataset's mean box, so an untrained head already
predicts the baseline and training starts from there rather than from a box in the middle."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from zoo_core import ZooError

from .boxes import ordered


class SigmoidBox(nn.Module):
    """Four logits -> a box in 0..1 with x0 <= x1 and y0 <= y1 (what every box head ends with)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ordered(torch.sigmoid(x))


def _box_layer(width: int, info: dict[str, Any]) -> nn.Linear:
    layer = nn.Linear(width, 4)
    mean = info.get("mean_box") or [0.25, 0.25, 0.75, 0.75]
    with torch.no_grad():
        layer.weight.mul_(0.1)  # small, so the first predictions stay near the mean box
        layer.bias.copy_(torch.tensor([math.log(p / (1 - p)) for p in (min(max(v, 0.02), 0.98) for v in mean)]))
    return layer


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ZooError(f"head option dropout must be in [0, 1), got {dropout}")


def linear_box_head(backbone, info: dict[str, Any], dropout: float = 0.0) -> nn.Module:
    """Pooled features -> Linear(4) -> sigmoid (the textbook's regression head)."""
    _check_dropout(dropout)
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*layers, _box_layer(backbone.num_features, info), SigmoidBox())


def mlp_box_head(backbone, info: dict[str, Any], hidden: int = 256, dropout: float = 0.1) -> nn.Module:
    """Pooled features -> Linear(hidden) -> ReLU -> Dropout -> Linear(4) -> sigmoid."""
    _check_dropout(dropout)
    if hidden < 1:
        raise ZooError(f"head option hidden must be >= 1, got {hidden}")
    return nn.Sequential(nn.Linear(backbone.num_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                         _box_layer(hidden, info), SigmoidBox())


class GridBoxHead(nn.Module):
    """The deepest feature map, reduced to `channels` by a 1x1 conv and pooled to a grid x grid map,
    flattened (so where things are survives, unlike a global average pool), then an MLP to the box."""

    def __init__(self, in_channels: int, info: dict[str, Any], channels: int = 32, grid: int = 4, hidden: int = 256,
                 dropout: float = 0.1):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(),
                                    nn.AdaptiveAvgPool2d(grid), nn.Flatten())
        self.mlp = nn.Sequential(nn.Linear(channels * grid * grid, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 _box_layer(hidden, info), SigmoidBox())

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        return self.mlp(self.reduce(pyramid[-1]))


def grid_box_head(backbone, info: dict[str, Any], channels: int = 32, grid: int = 4, hidden: int = 256,
                  dropout: float = 0.1) -> nn.Module:
    _check_dropout(dropout)
    if min(channels, grid, hidden) < 1:
        raise ZooError(f"head options channels, grid and hidden must be >= 1, got {channels}, {grid}, {hidden}")
    return GridBoxHead(backbone.feature_info[-1].channels, info, channels, grid, hidden, dropout)
