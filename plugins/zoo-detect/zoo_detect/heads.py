"""Detection heads on a backbone's feature pyramid, built from torchvision's detection parts.

fcos: torchvision's FeaturePyramidNetwork over the backbone's levels (stride 8 and deeper by default),
optionally P6/P7 (LastLevelP6P7), and torchvision's FCOSHead (class, box-regression and centerness towers
shared by all levels). Anchor-free: one prediction per feature-map location, so there are no anchor sizes
to tune for new data. Narrow (64 channels, 2 convs) by default, to train in minutes on a CPU; the
original FCOS is 256 channels and 4 convs (`--set head.channels=256 --set head.num_convs=4 --set head.p6p7=true`).

grid: the textbook's grid detector, kept as an extra: the deepest feature map pooled to an S x S grid
(3 x 3 by default), each cell predicting a class, a box and a confidence."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from zoo_core import ZooError


def pick_levels(feature_info, levels: int, min_stride: int) -> list[int]:
    """Indices of the pyramid levels to use: the `levels` shallowest with stride >= min_stride (the
    high-resolution early maps cost much and see little); a shallow backbone with none that coarse
    gives its deepest `levels`."""
    strides = [f.stride for f in feature_info]
    coarse = [i for i, s in enumerate(strides) if s >= min_stride]
    chosen = coarse[:levels] if coarse else list(range(len(strides)))[-levels:]
    return chosen


def level_points(maps: list[torch.Tensor], strides: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 2) centres of every cell of every map in input pixels, and (N,) their strides, in the order
    the heads flatten them (level by level, row by row)."""
    points, point_strides = [], []
    for fmap, s in zip(maps, strides):
        h, w = fmap.shape[-2:]
        ys = (torch.arange(h, device=fmap.device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, device=fmap.device, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1))
        point_strides.append(torch.full((h * w,), float(s), device=fmap.device))
    return torch.cat(points), torch.cat(point_strides)


class FCOSDetector(nn.Module):
    def __init__(self, feature_info, num_classes: int, channels: int, num_convs: int, levels: int, min_stride: int,
                 p6p7: bool):
        super().__init__()
        self.taps = pick_levels(feature_info, levels, min_stride)
        in_channels = [feature_info[i].channels for i in self.taps]
        self.strides = [feature_info[i].stride for i in self.taps]
        extra = LastLevelP6P7(channels, channels) if p6p7 else None
        if p6p7:
            self.strides += [self.strides[-1] * 2, self.strides[-1] * 4]
        self.fpn = FeaturePyramidNetwork(in_channels, channels, extra_blocks=extra)
        self.head = FCOSHead(channels, num_anchors=1, num_classes=num_classes, num_convs=num_convs)

    def forward(self, pyramid: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        maps = list(self.fpn(OrderedDict((str(k), pyramid[i]) for k, i in enumerate(self.taps))).values())
        out = self.head(maps)
        points, strides = level_points(maps, self.strides)
        # FCOSHead's regression is (left, top, right, bottom) distances in units of the stride (after ReLU).
        ltrb = out["bbox_regression"] * strides[None, :, None]
        boxes = torch.cat([points[None] - ltrb[..., :2], points[None] + ltrb[..., 2:]], dim=-1)
        return {"logits": out["cls_logits"], "boxes": boxes, "centerness": out["bbox_ctrness"].squeeze(-1),
                "points": points, "strides": strides}


def fcos_head(backbone, info: dict[str, Any], channels: int = 64, num_convs: int = 2, levels: int = 3,
              min_stride: int = 8, p6p7: bool = False) -> nn.Module:
    if channels < 32 or channels % 32:
        raise ZooError(f"head 'fcos' option channels must be a multiple of 32 (GroupNorm of 32 groups), got {channels}")
    if num_convs < 0 or levels < 1 or min_stride < 1:
        raise ZooError(f"head 'fcos' options: need num_convs >= 0, levels >= 1, min_stride >= 1; got {num_convs}, {levels}, {min_stride}")
    return FCOSDetector(backbone.feature_info, info["num_outputs"], channels, num_convs, levels, min_stride, p6p7)


class GridDetector(nn.Module):
    """The deepest map -> adaptive average pool to S x S -> per cell: class logits, a box as the offset of
    its centre within the cell and its size relative to the input (sigmoids), and a confidence."""

    def __init__(self, in_channels: int, stride: int, num_classes: int, grid: int, hidden: int):
        super().__init__()
        self.grid, self.stride, self.num_classes = grid, stride, num_classes
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.body = nn.Sequential(nn.Conv2d(in_channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, num_classes + 5, 1))
        with torch.no_grad():
            self.body[-1].bias[num_classes + 4] = -2.0  # confidence starts low: most cells are empty

    def forward(self, pyramid: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        x = pyramid[-1]
        size_h, size_w = x.shape[-2] * self.stride, x.shape[-1] * self.stride  # the input size
        y = self.body(self.pool(x)).flatten(2).transpose(1, 2)  # (B, S*S, C+5)
        S = self.grid
        cell_w, cell_h = size_w / S, size_h / S
        rows = torch.arange(S, device=x.device, dtype=torch.float32)
        yy, xx = torch.meshgrid(rows, rows, indexing="ij")
        corner = torch.stack([xx.reshape(-1) * cell_w, yy.reshape(-1) * cell_h], dim=1)  # (S*S, 2)
        cell = torch.tensor([cell_w, cell_h], device=x.device)
        centre = corner[None] + torch.sigmoid(y[..., self.num_classes:self.num_classes + 2]) * cell
        wh = torch.sigmoid(y[..., self.num_classes + 2:self.num_classes + 4]) * torch.tensor([size_w, size_h], device=x.device)
        boxes = torch.cat([centre - wh / 2, centre + wh / 2], dim=-1)
        points = corner + cell / 2
        strides = torch.full((S * S,), float(max(cell_w, cell_h)), device=x.device)
        return {"logits": y[..., :self.num_classes], "boxes": boxes, "centerness": y[..., self.num_classes + 4],
                "points": points, "strides": strides}


def grid_head(backbone, info: dict[str, Any], grid: int = 3, hidden: int = 256) -> nn.Module:
    if grid < 1 or hidden < 1:
        raise ZooError(f"head 'grid' options grid and hidden must be >= 1, got {grid}, {hidden}")
    last = backbone.feature_info[-1]
    return GridDetector(last.channels, last.stride, info["num_outputs"], grid, hidden)
