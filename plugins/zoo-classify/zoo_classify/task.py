from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from zoo_core import Prediction, Setting, Task, draw_caption

from . import DEFAULT_BACKBONES, LOGITS  # declared with the registration, which imports no torch
from .metrics import ClassificationMetrics, probabilities


@dataclass
class ClassPrediction(Prediction):
    """The top classes of one image, most probable first."""

    top: list[dict[str, Any]] = field(default_factory=list)  # {"label", "probability"[, "id"]}

    def to_json(self) -> dict[str, Any]:
        return {"label": self.top[0]["label"], "probability": self.top[0]["probability"], "top": self.top}

    def caption(self) -> str:
        return "  ".join(f"{t['label']} {t['probability']:.3f}" for t in self.top)

    def draw(self, image):
        return draw_caption(image, "  ".join(f"{t['label']} {t['probability']:.2f}" for t in self.top[:3]))


class Probabilities(nn.Module):
    """What an exported classifier outputs: class probabilities, softmax (or sigmoid for one logit)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return probabilities(self.model(x))


class ClassifyTask(Task):
    name = "classify"
    description = "binary and multi-class image classification (default: real handwritten digits)"
    output = LOGITS
    # On the user's own photos: the textbook recipe, a pretrained backbone (the first of DEFAULT_BACKBONES whose
    # weights can be had) trained head-first, then unfrozen.
    # The embedded digits dataset carries its own recipe (a small CNN from scratch): see register_datasets.
    defaults = {"dataset": "digits", "backbone": DEFAULT_BACKBONES, "head": "linear", "loss": "cross-entropy",
                "mode": "staged", "freeze_epochs": 2, "epochs": 10, "batch_size": 32, "lr": 1e-3,
                "augment": "standard"}
    primary_metric = "val_accuracy"
    primary_mode = "max"
    fit = "crop"
    pipeline_tag = "image-classification"
    predict_options = (Setting("top_k", int, 3, "How many classes to show per image.", min=1, max=10_000, short="k", request=True),)

    def outputs_info(self, info: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        return {**info, "num_outputs": 1 if config["loss"] == "bce" else len(info["classes"])}

    def metrics(self, info: dict[str, Any]) -> ClassificationMetrics:
        return ClassificationMetrics(info["classes"])

    def predict(self, outputs: torch.Tensor, geometry, info: dict[str, Any], top_k: int = 3) -> list[ClassPrediction]:
        probs = probabilities(outputs.float())
        values, indices = probs.topk(min(top_k, probs.shape[1]), dim=1)
        classes, ids = info["classes"], info.get("class_ids")
        return [ClassPrediction([{"label": classes[int(i)], "probability": round(float(v), 6),
                                  **({"id": ids[int(i)]} if ids else {})} for v, i in zip(val, idx)])
                for val, idx in zip(values, indices)]

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        return Probabilities(model), ["probabilities"]

    def undeploy(self, outputs: dict[str, torch.Tensor], info: dict[str, Any]) -> torch.Tensor:
        """Logits again from an exported file's probabilities: log p (softmax(log p) = p, and cross-entropy
        on it equals cross-entropy on the logits), or for one BCE logit log(p1 / p0)."""
        p = outputs["probabilities"].float().clamp_min(1e-38)  # float32's smallest normal: log stays finite
        if info.get("num_outputs") == 1:
            return (p[:, 1].log() - p[:, 0].log()).unsqueeze(1)
        return p.log()
