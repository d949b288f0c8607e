"""Keypoint heads: features -> (B, K, 2), x and y in 0..1 of the model's input.

Direct regression (the source's recipe: 2K numbers through a sigmoid) from pooled features or from the
deepest feature map kept as a grid; or heatmaps: one map per point on a fine feature map, turned into
coordinates by a soft-argmax (the expected position under the map's softmax), differentiable and
exportable. Regression heads start at the dataset's mean shape, so an untrained head predicts the
baseline; the heatmap head starts flat (the centre) and learns where to look."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from zoo_core import ZooError


def _k(info: dict[str, Any]) -> int:
    return len(info["keypoints"])


def _check(dropout: float, **positive: int) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ZooError(f"head option dropout must be in [0, 1), got {dropout}")
    for name, value in positive.items():
        if value < 1:
            raise ZooError(f"head option {name} must be >= 1, got {value}")


class SigmoidPoints(nn.Module):
    """2K logits -> (B, K, 2) in 0..1, starting at the mean shape (the last layer's bias)."""

    def __init__(self, width: int, info: dict[str, Any]):
        super().__init__()
        k = _k(info)
        self.layer = nn.Linear(width, 2 * k)
        mean = info.get("mean_shape") or [[0.5, 0.5]] * k
        with torch.no_grad():
            self.layer.weight.mul_(0.1)  # small, so the first predictions stay near the mean shape
            self.layer.bias.copy_(torch.tensor([math.log(p / (1 - p)) for xy in mean for p in
                                                (min(max(v, 0.02), 0.98) for v in xy)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.layer(x)).view(x.shape[0], -1, 2)


def linear_points_head(backbone, info: dict[str, Any], dropout: float = 0.0) -> nn.Module:
    """Pooled features -> Linear(2K) -> sigmoid (the source's minimal head)."""
    _check(dropout)
    return nn.Sequential(*([nn.Dropout(dropout)] if dropout else []), SigmoidPoints(backbone.num_features, info))


def mlp_points_head(backbone, info: dict[str, Any], hidden: int = 512, dropout: float = 0.1) -> nn.Module:
    """Pooled features -> Linear(hidden) -> ReLU -> Dropout -> Linear(2K) -> sigmoid."""
    _check(dropout, hidden=hidden)
    return nn.Sequential(nn.Linear(backbone.num_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                         SigmoidPoints(hidden, info))


class GridPointsHead(nn.Module):
    """The deepest feature map -> 1x1 conv -> grid x grid pool -> flatten -> MLP -> 2K -> sigmoid: the
    source's conv + MLP head on VGG16's last map. Pooling to a grid, not to one vector, keeps where."""

    def __init__(self, in_channels: int, info: dict[str, Any], channels: int, grid: int, hidden: int, dropout: float):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(),
                                    nn.AdaptiveAvgPool2d(grid), nn.Flatten())
        self.mlp = nn.Sequential(nn.Linear(channels * grid * grid, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 SigmoidPoints(hidden, info))

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        return self.mlp(self.reduce(pyramid[-1]))


def grid_points_head(backbone, info: dict[str, Any], channels: int = 64, grid: int = 4, hidden: int = 512,
                     dropout: float = 0.1) -> nn.Module:
    _check(dropout, channels=channels, grid=grid, hidden=hidden)
    return GridPointsHead(backbone.feature_info[-1].channels, info, channels, grid, hidden, dropout)


def soft_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) scores -> (B, K, 2): the expected (x, y) of each map's softmax, in 0..1 of the
    input (cell centres at (j + 0.5) / W). Differentiable, unlike argmax, and sub-cell precise."""
    b, k, h, w = heatmaps.shape
    prob = heatmaps.float().flatten(2).softmax(-1).view(b, k, h, w)
    xs = (torch.arange(w, device=heatmaps.device, dtype=torch.float32) + 0.5) / w
    ys = (torch.arange(h, device=heatmaps.device, dtype=torch.float32) + 0.5) / h
    return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], dim=-1)


class HeatmapHead(nn.Module):
    """The pyramid's levels from `stride` down to the deepest, each 1x1-convolved to `channels`,
    upsampled to the finest of them and summed (a small FPN: deep levels know what, fine ones where),
    then `depth` 3x3 conv blocks, then one map per point, then soft-argmax."""

    def __init__(self, levels: list[tuple[int, int]], info: dict[str, Any], channels: int, depth: int):
        super().__init__()
        self.use = [i for i, _ in levels]
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for _, c in levels)
        blocks: list[nn.Module] = []
        for _ in range(depth):
            blocks += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()]
        self.blocks = nn.Sequential(*blocks)
        self.maps = nn.Conv2d(channels, _k(info), 1)

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        finest = pyramid[self.use[0]]
        size = finest.shape[-2:]
        x = self.lateral[0](finest)
        for conv, i in zip(self.lateral[1:], self.use[1:]):
            x = x + F.interpolate(conv(pyramid[i]), size=size, mode="bilinear", align_corners=False)
        return soft_argmax(self.maps(self.blocks(x)))


def heatmap_head(backbone, info: dict[str, Any], stride: int = 8, channels: int = 64, depth: int = 2) -> nn.Module:
    """Options: stride (the finest level used: 4, 8, 16...; finer is more precise and slower; the deepest
    level when the backbone has none that coarse), channels, depth."""
    _check(0.0, stride=stride, channels=channels)
    if depth < 0:
        raise ZooError(f"head option depth must be >= 0, got {depth}")
    if not backbone.feature_info:
        raise ZooError("head 'heatmap' needs a backbone with a feature pyramid")
    # a small backbone whose deepest map is finer than `stride` starts from its deepest map instead
    stride = min(stride, max(f.stride for f in backbone.feature_info))
    levels = [(i, f.channels) for i, f in enumerate(backbone.feature_info) if f.stride >= stride]
    # the finest level and the two next deeper ones: where from the first, what from the others
    return HeatmapHead(levels[:3], info, channels, depth)
