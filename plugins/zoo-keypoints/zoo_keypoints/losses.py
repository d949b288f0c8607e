"""keypoint-l1: the source's L1 loss on coordinates in 0..1, over the visible points only.

A point that is not labelled, or that augmentation moved out of the image, has no position to learn:
counting it as (0, 0) would pull every prediction towards the corner. Targets are (B, K, 3): x, y and
visibility; the mean runs over visible coordinates."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from zoo_core import ZooError


class MaskedL1(nn.Module):
    def __init__(self, beta: float = 0.0):
        super().__init__()
        self.beta = beta

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        visible = targets[..., 2:3].float()
        if self.beta > 0:
            err = nn.functional.smooth_l1_loss(outputs.float(), targets[..., :2].float(), beta=self.beta, reduction="none")
        else:
            err = (outputs.float() - targets[..., :2].float()).abs()
        # max(1, ...): a batch with no visible point gives a zero loss, not a NaN
        return (err * visible).sum() / (2 * visible.sum()).clamp(min=1)


def keypoint_l1_loss(info: dict[str, Any], beta: float = 0.0) -> nn.Module:
    if beta < 0:
        raise ZooError(f"loss option beta must be >= 0 (0: plain L1, > 0: smooth L1 below beta), got {beta}")
    return MaskedL1(float(beta))
