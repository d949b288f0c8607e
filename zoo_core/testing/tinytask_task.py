"""The `tiny` test task's Task class, metrics and prediction (imported when the task is used: torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoo_core import Metrics, Prediction, Task


class Accuracy(Metrics):
    def reset(self) -> None:
        self.right = self.total = 0

    def update(self, outputs, targets) -> None:
        self.right += int((outputs.argmax(dim=1).cpu() == targets.cpu()).sum())
        self.total += len(targets)

    def compute(self) -> dict[str, float]:
        return {"accuracy": self.right / max(1, self.total)}


@dataclass
class TinyPrediction(Prediction):
    label: str
    probability: float

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "probability": self.probability}

    def caption(self) -> str:
        return f"{self.label} {self.probability:.3f}"


class TinyTask(Task):
    # classify's recipe (a frozen backbone first, then fine-tuned), so that a test of the trainer reads the same
    # on either; only the backbone is a small from-scratch one, as the swatches need no more
    defaults = {"dataset": "tiny-swatches", "backbone": "cnn2", "head": "tiny-linear", "loss": "tiny-cross-entropy",
                "mode": "staged", "freeze_epochs": 2, "epochs": 10, "batch_size": 32, "lr": 1e-3, "augment": "standard"}
    primary_metric = "val_accuracy"
    primary_mode = "max"

    def metrics(self, info: dict[str, Any]) -> Accuracy:
        metrics = Accuracy()
        metrics.reset()
        return metrics

    def predict(self, outputs, geometry, info: dict[str, Any], **options: Any) -> list[TinyPrediction]:
        best = outputs.float().softmax(dim=1).max(dim=1)
        return [TinyPrediction(info["classes"][int(i)], round(float(p), 6)) for p, i in zip(best.values, best.indices)]
