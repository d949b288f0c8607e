"""A backbone plus a head, and how to rebuild one from a run's config.json alone."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .components import Backbone, DataConfig


class ZooModel(nn.Module):
    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.wants_map = getattr(head, "wants", "pooled") == "map"

    def forward(self, x: torch.Tensor) -> Any:
        features = self.backbone.forward_map(x) if self.wants_map else self.backbone(x)
        return self.head(features)

    def set_backbone_trainable(self, trainable: bool) -> None:
        for p in self.backbone.parameters():
            p.requires_grad_(trainable)

    @property
    def backbone_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())

    def train(self, mode: bool = True) -> "ZooModel":
        super().train(mode)
        if mode and self.backbone_frozen:
            # A frozen backbone is a fixed feature extractor: BatchNorm keeps its pretrained statistics.
            self.backbone.eval()
        return self


def model_config(cfg: dict[str, Any], task: str, backbone: Backbone, info: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to rebuild the network without the training arguments."""
    return {
        "task": task,
        "backbone": cfg["backbone"],
        "backbone_options": cfg["backbone_options"],
        "image_size": cfg["image_size"],
        "head": cfg["head"],
        "head_options": cfg["head_options"],
        "info": info,
        "data_config": backbone.data_config.to_dict(),
        "pretrained_source": backbone.pretrained_source,
    }


def build_model(zoo, mc: dict[str, Any]) -> ZooModel:
    """An untrained network shaped as `mc` describes (weights are loaded by the caller)."""
    backbone = zoo.backbones.create(mc["backbone"], pretrained=False, image_size=mc.get("image_size"),
                                    **mc.get("backbone_options", {}))
    backbone.data_config = DataConfig.from_dict(mc["data_config"])
    head = zoo.heads.create(mc["head"], backbone, mc["info"], **mc.get("head_options", {}))
    return ZooModel(backbone, head)
