"""l1-giou: the L1 distance of the corners plus the generalised IoU loss, logged as two parts.

L1 alone treats a 5% error on a small box like one on a large box; GIoU scores overlap as the
metric does, and (unlike plain 1 - IoU) still has a gradient when the boxes do not overlap."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.ops import generalized_box_iou_loss
from zoo_core import ZooError

from .boxes import ordered


class L1GIoU(nn.Module):
    def __init__(self, weight: float = 1.0, l1_weight: float = 5.0):
        super().__init__()
        self.weight, self.l1_weight = weight, l1_weight

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs, targets = ordered(outputs.float()), ordered(targets.float())
        return {"l1": self.l1_weight * nn.functional.l1_loss(outputs, targets),
                "giou": self.weight * generalized_box_iou_loss(outputs, targets, reduction="mean")}


def l1_giou_loss(info: dict[str, Any], weight: float = 1.0, l1_weight: float = 5.0) -> nn.Module:
    if weight < 0 or l1_weight < 0 or weight + l1_weight == 0:
        raise ZooError(f"loss options weight and l1_weight must be >= 0 and not both 0, got {weight}, {l1_weight}")
    return L1GIoU(float(weight), float(l1_weight))
