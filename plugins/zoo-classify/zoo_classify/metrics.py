from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from zoo_core import Metrics, plot_confusion_matrix, write_json


def probabilities(outputs: torch.Tensor) -> torch.Tensor:
    """Class probabilities from logits: softmax, or for one BCE logit [1 - sigmoid, sigmoid]."""
    if outputs.shape[1] == 1:
        p = torch.sigmoid(outputs[:, 0])
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(outputs, dim=1)


class ClassificationMetrics(Metrics):
    """Accuracy, macro F1 and a confusion matrix, accumulated batch by batch."""

    def __init__(self, classes: list[str]):
        self.classes = list(classes)
        self.reset()

    def reset(self) -> None:
        n = len(self.classes)
        self.confusion = torch.zeros(n, n, dtype=torch.long)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        n = len(self.classes)
        pred = probabilities(outputs).argmax(dim=1).cpu()
        true = targets.long().cpu()
        self.confusion += torch.bincount(true * n + pred, minlength=n * n).reshape(n, n)

    def per_class(self) -> list[dict[str, Any]]:
        cm = self.confusion.double()
        tp = cm.diag()
        precision = tp / cm.sum(0).clamp(min=1)
        recall = tp / cm.sum(1).clamp(min=1)
        f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
        support = cm.sum(1)
        return [{"class": c, "precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                 "support": int(s)} for c, p, r, f, s in zip(self.classes, precision, recall, f1, support)]

    def compute(self) -> dict[str, float]:
        total = int(self.confusion.sum())
        rows = [r for r in self.per_class() if r["support"] > 0]
        return {"accuracy": float(self.confusion.diag().sum()) / max(1, total),
                "macro_f1": sum(r["f1"] for r in rows) / max(1, len(rows))}

    def details(self) -> dict[str, Any]:
        return {"per_class": self.per_class(), "confusion_matrix": self.confusion.tolist(), "classes": self.classes}

    def report(self, run_dir, prefix: str = "") -> list[str]:
        run_dir = Path(run_dir)
        png = plot_confusion_matrix(self.confusion.tolist(), self.classes, run_dir / f"{prefix}confusion_matrix.png")
        table = write_json(run_dir / f"{prefix}classification_report.json", {**self.compute(), **self.details()})
        return [str(png), str(table)]

    def table(self) -> str:
        """Per-class precision/recall/F1 as aligned text."""
        width = max(8, *(len(c) for c in self.classes))
        lines = [f"{'class':<{width}}  precision  recall     f1  support"]
        for r in self.per_class():
            lines.append(f"{r['class']:<{width}}  {r['precision']:9.3f}  {r['recall']:6.3f}  {r['f1']:5.3f}  {r['support']:7d}")
        return "\n".join(lines)
