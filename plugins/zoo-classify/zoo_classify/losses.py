from __future__ import annotations

from typing import Any

import torch
from torch import nn
from zoo_core import ZooError


def cross_entropy_loss(info: dict[str, Any], label_smoothing: float = 0.0) -> nn.Module:
    if not 0.0 <= label_smoothing < 1.0:
        raise ZooError(f"loss option label_smoothing must be in [0, 1), got {label_smoothing}")
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


class BinaryCrossEntropy(nn.Module):
    """BCE on a single logit per image: the textbook loss for two classes (sigmoid output)."""

    def __init__(self):
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.bce(outputs[:, 0], targets.float())


def bce_loss(info: dict[str, Any]) -> nn.Module:
    if info.get("multi_label"):
        from .multilabel import MultiLabelBCE

        return MultiLabelBCE()
    if len(info["classes"]) != 2:
        raise ZooError(f"loss 'bce' is for two classes and this data has {len(info['classes'])}; use --loss cross-entropy")
    return BinaryCrossEntropy()
