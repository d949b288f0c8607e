from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class BNNeck(nn.Module):
    """Pooled features -> Linear -> BatchNorm1d -> L2-normalised embedding. The BatchNorm (the "BN-neck" of
    re-identification, Luo et al. 2019) centres and scales each dimension before the margin losses, which
    compare directions: without it a few large feature dimensions dominate the cosine."""

    def __init__(self, in_features: int, dim: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(in_features, dim, bias=False)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.bn(self.fc(self.dropout(x))), dim=1)


DEFAULT_DIM = 128


def bn_neck(backbone, info: dict[str, Any], dim: int = DEFAULT_DIM, dropout: float = 0.0) -> nn.Module:
    if dim < 2 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dim must be >= 2 and dropout in [0, 1), got dim={dim}, dropout={dropout}")
    return BNNeck(backbone.num_features, dim, dropout)
