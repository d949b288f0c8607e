"""The multi-task head and loss: one shared trunk on the backbone's features, one small output layer
per target, and the weighted sum of each target's own loss.

    features -> [Linear -> ReLU -> Dropout] x len(hidden)  (the shared trunk: 512, 128, 64 by default)
             -> per head: Linear(1) for binary (a logit) and regression (the scaled value),
                          Linear(classes) for multiclass (logits)

The outputs are a dict {head: tensor} in the order of info["targets"]."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from zoo_core import ZooError

from . import OUTPUT  # noqa: F401  (the output kind, declared with the registration, which imports no torch)


def width(spec: dict[str, Any]) -> int:
    return len(spec["classes"]) if spec["type"] == "multiclass" else 1


class MultiHead(nn.Module):
    def __init__(self, in_features: int, targets: list[dict[str, Any]], hidden: Sequence[int], dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(in_features, h), nn.ReLU(), nn.Dropout(dropout)]
            in_features = h
        self.trunk = nn.Sequential(nn.Flatten(), *layers)
        self.names = [t["name"] for t in targets]
        self.heads = nn.ModuleDict({t["name"]: nn.Linear(in_features, width(t)) for t in targets})
        for t in targets:
            layer = self.heads[t["name"]]
            if t["type"] == "regression":  # start at the training mean, the baseline, whatever the scaling
                nn.init.constant_(layer.bias, (t["baseline"] - t["shift"]) / t["scale"])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.trunk(x)
        outputs = {}
        for name in self.names:
            out = self.heads[name](shared)
            outputs[name] = out if out.shape[1] > 1 else out[:, 0]  # binary and regression: one number each
        return outputs


def multitask_head(backbone, info: dict[str, Any], hidden: Sequence[int] = (512, 128, 64), dropout: float = 0.2) -> MultiHead:
    if isinstance(hidden, int):
        hidden = [hidden]
    if not isinstance(hidden, (list, tuple)) or not all(isinstance(h, int) and h >= 1 for h in hidden):
        raise ZooError(f"head option hidden must be a list of layer widths >= 1 (e.g. [512, 128, 64], or [] for none), "
                       f"got {hidden!r}")
    if not 0.0 <= dropout < 1.0:
        raise ZooError(f"head option dropout must be in [0, 1), got {dropout}")
    targets = info.get("targets")
    if not targets:
        raise ZooError("head 'multitask-mlp' needs targets from a multi-task dataset (zoo list shows them)")
    return MultiHead(backbone.num_features, targets, list(hidden), float(dropout))


# ----------------------------------------------------------------------------------------------- loss

def _regression(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    fn = {"l1": F.l1_loss, "mse": F.mse_loss, "smooth-l1": F.smooth_l1_loss}[kind]
    return fn(output, target)


class MultiTaskLoss(nn.Module):
    """Each head's own loss on the images labelled for it (an empty cell is missing, not a class), times
    its weight; returned as named terms, so each head's loss is logged and plotted and their sum trained."""

    def __init__(self, targets: list[dict[str, Any]], label_smoothing: float = 0.0):
        super().__init__()
        self.targets = targets
        self.label_smoothing = label_smoothing

    def forward(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = {}
        for spec in self.targets:
            name = spec["name"]
            out, y = outputs[name].float(), targets[name]
            known = ~torch.isnan(y) if spec["type"] == "regression" else y >= 0
            if not bool(known.any()):  # no label for this head in the batch: contributes nothing
                terms[name] = out.sum() * 0.0
                continue
            out, y = out[known], y[known]
            if spec["type"] == "binary":
                loss = F.binary_cross_entropy_with_logits(out, y.float())
            elif spec["type"] == "multiclass":
                loss = F.cross_entropy(out, y.long(), label_smoothing=self.label_smoothing)
            else:
                loss = _regression(spec["loss"], out, y.float())
            terms[name] = spec["weight"] * loss
        return terms


def multitask_loss(info: dict[str, Any], label_smoothing: float = 0.0) -> MultiTaskLoss:
    if not 0.0 <= label_smoothing < 1.0:
        raise ZooError(f"loss option label_smoothing must be in [0, 1), got {label_smoothing}")
    return MultiTaskLoss(info["targets"], float(label_smoothing))


# ------------------------------------------------------------------------------------ original units

def to_original(spec: dict[str, Any], output: torch.Tensor) -> torch.Tensor:
    """A head's raw output as a user reads it: the positive class's probability, the class
    probabilities, or the value in the column's own units."""
    if spec["type"] == "binary":
        return torch.sigmoid(output)
    if spec["type"] == "multiclass":
        return torch.softmax(output, dim=-1)
    return output * spec["scale"] + spec["shift"]


class Deployed(nn.Module):
    """The model as exported: one named output per head, in original units (see to_original)."""

    def __init__(self, model: nn.Module, targets: list[dict[str, Any]]):
        super().__init__()
        self.model, self.targets = model, targets

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(x)
        return tuple(to_original(spec, outputs[spec["name"]]) for spec in self.targets)
