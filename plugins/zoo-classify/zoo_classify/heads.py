from __future__ import annotations

from typing import Any

from torch import nn


def linear_head(backbone, info: dict[str, Any], dropout: float = 0.0) -> nn.Module:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*layers, nn.Linear(backbone.num_features, info["num_outputs"]))


def mlp_head(backbone, info: dict[str, Any], hidden: int = 128, dropout: float = 0.2) -> nn.Module:
    """The source material's head: Linear(features, 128) -> ReLU -> Dropout(0.2) -> Linear(128, outputs)."""
    if hidden < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"hidden must be >= 1 and dropout in [0, 1), got hidden={hidden}, dropout={dropout}")
    return nn.Sequential(nn.Linear(backbone.num_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, info["num_outputs"]))
