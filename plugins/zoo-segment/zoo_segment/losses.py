"""Per-pixel losses: weighted cross-entropy, Dice, and both (logged as two parts). Pixels at the ignore
index count in none of them.

Class weights ("weights" option): "balanced" weighs each class by 1/sqrt(its share of the training
pixels), normalised to a mean of 1 — background is most of every image, and unweighted cross-entropy
learns to call everything background first; the square root keeps rare classes from dominating.
Dice scores overlap per class as IoU does, so it pulls straight at the metric."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from zoo_core import ZooError

from .masks import IGNORE

WEIGHTS = ("balanced", "none")


def match_size(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Logits at the targets' resolution (a head's output differs when the input size is not a multiple
    of the backbone's stride)."""
    if logits.shape[-2:] != targets.shape[-2:]:
        logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
    return logits


def class_weights(info: dict[str, Any], mode: str) -> torch.Tensor | None:
    if mode not in WEIGHTS:
        raise ZooError(f"loss option weights must be one of {', '.join(WEIGHTS)}, got '{mode}'")
    shares = info.get("class_pixels")
    if mode == "none" or not shares:
        return None
    w = 1.0 / torch.tensor(shares, dtype=torch.float32).clamp(min=1e-4).sqrt()
    return w / w.mean()


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice, averaged over the classes present in the batch's targets or predictions."""
    k = logits.shape[1]
    valid = (targets != ignore_index).unsqueeze(1)
    probs = logits.float().softmax(1) * valid
    onehot = F.one_hot(targets.masked_fill(~valid.squeeze(1), 0), k).permute(0, 3, 1, 2).float() * valid
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    dice = (2 * inter + eps) / (total + eps)
    present = onehot.sum((0, 2, 3)) > 0
    return 1 - (dice[present].mean() if present.any() else dice.mean())


class SegmentationLoss(nn.Module):
    def __init__(self, ce: float, dice: float, weight: torch.Tensor | None, ignore_index: int):
        super().__init__()
        self.ce, self.dice, self.ignore_index = ce, dice, ignore_index
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        logits = match_size(logits, targets).float()
        parts = {}
        if self.ce:
            parts["ce"] = self.ce * F.cross_entropy(logits, targets, weight=self.weight, ignore_index=self.ignore_index)
        if self.dice:
            parts["dice"] = self.dice * dice_loss(logits, targets, self.ignore_index)
        return parts if len(parts) > 1 else next(iter(parts.values()))


def _ignore(info: dict[str, Any]) -> int:
    return int(info.get("ignore_index", IGNORE))


def ce_loss(info: dict[str, Any], weights: str = "balanced") -> nn.Module:
    return SegmentationLoss(1.0, 0.0, class_weights(info, weights), _ignore(info))


def dice(info: dict[str, Any]) -> nn.Module:
    return SegmentationLoss(0.0, 1.0, None, _ignore(info))


def ce_dice_loss(info: dict[str, Any], weights: str = "balanced", dice_weight: float = 1.0) -> nn.Module:
    if dice_weight < 0:
        raise ZooError(f"loss option dice_weight must be >= 0, got {dice_weight}")
    return SegmentationLoss(1.0, float(dice_weight), class_weights(info, weights), _ignore(info))
