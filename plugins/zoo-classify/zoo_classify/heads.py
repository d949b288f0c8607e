from __future__ import annotations

from typing import Any

from torch import nn


def linear_head(backbone, info: dict[str, Any], dropout: float = 0.0) -> nn.Module:
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*layers, nn.Linear(backbone.num_features, info["num_outputs"]))


def mlp_head(backbone, info: dict[str, Any], hidden: int = 128, dropout: float = 0.2) -> nn.Module:
    """The source material's head: Linear(features, 128) -> ReLU -> Dropout(0.2) -> Linear(128, outputs)."""
    return nn.Sequential(nn.Linear(backbone.num_features, int(hidden)), nn.ReLU(), nn.Dropout(float(dropout)),
                         nn.Linear(int(hidden), info["num_outputs"]))
