from __future__ import annotations

from typing import Any

import torch
from zoo_core import Task

from .metrics import ClassificationMetrics, probabilities


class ClassifyTask(Task):
    name = "classify"
    description = "binary and multi-class image classification (default: real handwritten digits)"
    # On the user's own photos: the textbook recipe, a pretrained ResNet-18 trained head-first, then unfrozen.
    # The embedded digits dataset carries its own recipe (a small CNN from scratch): see register_datasets.
    defaults = {"dataset": "digits", "backbone": "resnet18", "head": "linear", "loss": "cross-entropy",
                "mode": "staged", "freeze_epochs": 2, "epochs": 10, "batch_size": 32, "lr": 1e-3,
                "augment": "standard"}
    formats = ["image-folder", "image-csv"]
    primary_metric = "val_accuracy"
    primary_mode = "max"

    def outputs_info(self, info: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        return {**info, "num_outputs": 1 if config["loss"] == "bce" else len(info["classes"])}

    def metrics(self, info: dict[str, Any]) -> ClassificationMetrics:
        return ClassificationMetrics(info["classes"])

    def predict(self, outputs: torch.Tensor, info: dict[str, Any], top_k: int = 5) -> list[dict[str, Any]]:
        probs = probabilities(outputs.float())
        k = min(top_k, probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        classes = info["classes"]
        return [{"label": classes[int(idx[0])], "probability": round(float(val[0]), 6),
                 "top": [{"label": classes[int(i)], "probability": round(float(v), 6)} for v, i in zip(val, idx)]}
                for val, idx in zip(values, indices)]

    def format_prediction(self, prediction: dict[str, Any]) -> str:
        return "  ".join(f"{t['label']} {t['probability']:.3f}" for t in prediction["top"])
