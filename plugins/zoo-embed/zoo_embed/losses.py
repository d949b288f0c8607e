"""Metric-learning losses from pytorch-metric-learning, adapted to zoo's loss call: loss(embeddings, labels).

The classification-style losses (ArcFace, CosFace, SubCenter-ArcFace) hold a trainable weight per training
identity: they are nn.Modules, so the trainer optimises those weights with the head, checkpoints them and
resumes them. The pair losses mine their pairs or triplets in each batch, which the PK sampler fills with
several images per identity."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from zoo_core import ZooError


def _dim(info: dict[str, Any]) -> int:
    return int(info["embedding_dim"])


def _classes(info: dict[str, Any], name: str) -> int:
    n = len(info["classes"])
    if n < 2:
        raise ZooError(f"loss '{name}' learns a weight per training identity and the data has {n}; "
                       "give more identities or use --loss multi-similarity")
    return n


class Mined(nn.Module):
    """A pair loss with its miner: the miner picks the informative pairs or triplets of the batch."""

    def __init__(self, loss: nn.Module, miner: nn.Module | None):
        super().__init__()
        self.loss, self.miner = loss, miner

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = embeddings.float()
        tuples = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss(embeddings, labels, tuples)


class Classifying(nn.Module):
    """A loss with a weight per class (pytorch-metric-learning keeps it as `W`)."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings.float(), labels)


def arcface(info: dict[str, Any], margin: float = 28.6, scale: float = 30.0) -> nn.Module:
    from pytorch_metric_learning.losses import ArcFaceLoss

    return Classifying(ArcFaceLoss(_classes(info, "arcface"), _dim(info), margin=margin, scale=scale))


def cosface(info: dict[str, Any], margin: float = 0.4, scale: float = 30.0) -> nn.Module:
    from pytorch_metric_learning.losses import CosFaceLoss

    return Classifying(CosFaceLoss(_classes(info, "cosface"), _dim(info), margin=margin, scale=scale))


def subcenter_arcface(info: dict[str, Any], margin: float = 28.6, scale: float = 30.0, sub_centers: int = 3) -> nn.Module:
    from pytorch_metric_learning.losses import SubCenterArcFaceLoss

    return Classifying(SubCenterArcFaceLoss(_classes(info, "subcenter-arcface"), _dim(info), margin=margin, scale=scale,
                                            sub_centers=sub_centers))


def triplet(info: dict[str, Any], margin: float = 0.1) -> nn.Module:
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import TripletMarginMiner

    return Mined(TripletMarginLoss(margin=margin), TripletMarginMiner(margin=margin, type_of_triplets="semihard"))


def multi_similarity(info: dict[str, Any], alpha: float = 2.0, beta: float = 50.0, base: float = 0.5,
                     epsilon: float = 0.1) -> nn.Module:
    from pytorch_metric_learning.losses import MultiSimilarityLoss
    from pytorch_metric_learning.miners import MultiSimilarityMiner

    return Mined(MultiSimilarityLoss(alpha=alpha, beta=beta, base=base), MultiSimilarityMiner(epsilon=epsilon))
