"""Several labels per image: `zoo train multilabel`.

One logit per label, each read through its own sigmoid (a photo can be "cat" and "outdoor" at once),
trained with binary cross-entropy. A label is predicted when its probability reaches its threshold;
the thresholds are tuned per label on the validation split at the best epoch (the F1-best of a grid)
and saved in the run's info, so `zoo predict`, `zoo eval`, the exported file and pushed models all
decide the same way.

Groups. Some label sets are "exactly one of these" (a captcha's first character is one of 36
symbols). The dataset says so with info["groups"]: lists of label indices, label names "GROUP:VALUE".
A group is decoded by its most probable label, never by thresholds (which could pick none or two
symbols for one position), and the metrics add the share of groups right (per character) next to the
share of images with every label right (the whole string).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from zoo_core import Metrics, Prediction, Setting, Task, ZooError, draw_caption, write_json

from . import DEFAULT_BACKBONES, MULTILABEL  # declared with the registration, which imports no torch

THRESHOLD_GRID = torch.arange(0.05, 0.951, 0.05)  # candidate thresholds, tuned per label on validation


def group_index(info: dict[str, Any]) -> list[torch.Tensor]:
    return [torch.tensor(g, dtype=torch.long) for g in info.get("groups", [])]


def probabilities(outputs: torch.Tensor, groups: list[torch.Tensor]) -> torch.Tensor:
    """A sigmoid per label, except that a group's labels share a softmax: exactly one of them holds.
    The one reading of the logits for metrics, predict and the exported model."""
    probs = torch.sigmoid(outputs)
    for idx in groups:
        probs = probs.index_copy(1, idx, torch.softmax(outputs.index_select(1, idx), dim=1))
    return probs


def decide(probs: torch.Tensor, thresholds: torch.Tensor, groups: list[torch.Tensor]) -> torch.Tensor:
    """0/1 decisions (float, same shape as probs): each label against its threshold, each group by its
    most probable label. The one rule for predict, eval and the exported model."""
    decisions = (probs >= thresholds).to(probs.dtype)
    for idx in groups:
        sub = probs.index_select(1, idx)
        decisions = decisions.index_copy(1, idx, torch.zeros_like(sub).scatter(1, sub.argmax(dim=1, keepdim=True), 1.0))
    return decisions


def thresholds_of(info: dict[str, Any], override: float | None = None) -> torch.Tensor:
    n = len(info["classes"])
    if override is not None:
        return torch.full((n,), float(override))
    return torch.tensor(info.get("thresholds") or [0.5] * n, dtype=torch.float32)


def label_value(name: str) -> str:
    """The value of a grouped label "GROUP:VALUE" (the character of "2:K")."""
    return name.split(":", 1)[1] if ":" in name else name


# -------------------------------------------------------------------------------------------- metrics

def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """Area under one label's precision-recall curve, as scikit-learn's average_precision_score
    (precision at each positive, ranked by score; ties are ranked by order)."""
    order = scores.argsort(descending=True)
    hits = positives[order].double()
    precision_at = hits.cumsum(0) / torch.arange(1, len(hits) + 1, dtype=torch.float64)
    return float((precision_at * hits).sum() / hits.sum())


def f1_scores(decisions: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-label (tp, fp, fn) counts over the images (dim 0)."""
    tp = (decisions * truth).sum(0)
    return tp, (decisions * (1 - truth)).sum(0), ((1 - decisions) * truth).sum(0)


def tune_thresholds(probs: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per label, the threshold of THRESHOLD_GRID with the best F1 on these images (the one nearest
    0.5 among equals); 0.5 for a label with no positive here."""
    grid = THRESHOLD_GRID.to(probs.dtype)
    f1 = []
    for t in grid:  # one (N, L) pass per candidate keeps memory at the size of the outputs
        tp, fp, fn = f1_scores((probs >= t).to(probs.dtype), truth)
        f1.append(2 * tp / (2 * tp + fp + fn).clamp(min=1) - 1e-6 * abs(float(t) - 0.5))  # ties: nearest 0.5
    best = grid[torch.stack(f1, dim=1).argmax(dim=1)]
    return torch.where(truth.sum(0) > 0, best, torch.full_like(best, 0.5))


class MultiLabelMetrics(Metrics):
    """mAP (threshold-free), micro and macro F1 and exact match at the thresholds, and with groups the
    share of groups right. Thresholds: the run's own (info["thresholds"], evaluation) or, during
    training, tuned on the data seen (learned_info() hands them to the trainer)."""

    def __init__(self, info: dict[str, Any]):
        self.classes = list(info["classes"])
        self.saved = info.get("thresholds")
        self.groups = group_index(info)
        self.reset()

    def reset(self) -> None:
        self.probs: list[torch.Tensor] = []
        self.truth: list[torch.Tensor] = []
        self.thresholds = torch.full((len(self.classes),), 0.5)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.probs.append(probabilities(outputs.float(), self.groups).cpu())
        self.truth.append(targets.float().cpu())

    def _all(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat(self.probs), torch.cat(self.truth)

    def compute(self) -> dict[str, float]:
        if not self.probs:
            return {}
        probs, truth = self._all()
        self.thresholds = (torch.tensor(self.saved, dtype=torch.float32) if self.saved
                           else tune_thresholds(probs, truth))
        decisions = decide(probs, self.thresholds, self.groups)
        tp, fp, fn = f1_scores(decisions, truth)
        present = truth.sum(0) > 0
        f1 = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
        scores = {
            "map": sum(average_precision(probs[:, j], truth[:, j]) for j in range(len(self.classes)) if present[j])
            / max(1, int(present.sum())),
            "micro_f1": float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()).clamp(min=1)),
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
            "exact_match": float((decisions == truth).all(dim=1).double().mean()),
        }
        if self.groups:
            right = [(probs[:, idx].argmax(1) == truth[:, idx].argmax(1)).double() for idx in self.groups]
            scores["group_accuracy"] = float(torch.stack(right).mean())
        return scores

    def learned_info(self) -> dict[str, Any]:
        return {"thresholds": [round(float(t), 4) for t in self.thresholds]}

    def per_label(self) -> list[dict[str, Any]]:
        if not self.probs:
            return []
        probs, truth = self._all()
        tp, fp, fn = f1_scores(decide(probs, self.thresholds, self.groups), truth)
        grouped = {int(i) for idx in self.groups for i in idx}  # decided by argmax: no threshold applies
        rows = []
        for j, name in enumerate(self.classes):
            support = int(truth[:, j].sum())
            precision = float(tp[j] / (tp[j] + fp[j]).clamp(min=1))
            recall = float(tp[j] / max(1, support))
            rows.append({"label": name, "ap": round(average_precision(probs[:, j], truth[:, j]), 4) if support else None,
                         "threshold": None if j in grouped else round(float(self.thresholds[j]), 4), "precision": round(precision, 4),
                         "recall": round(recall, 4), "f1": round(float(2 * tp[j] / (2 * tp[j] + fp[j] + fn[j]).clamp(min=1)), 4),
                         "support": support})
        return rows

    def details(self) -> dict[str, Any]:
        return {"per_label": self.per_label(), "labels": self.classes}

    def table(self) -> str:
        width = max(8, *(len(c) for c in self.classes))
        lines = [f"{'label':<{width}}  threshold     AP  precision  recall     f1  support"]
        for r in self.per_label():
            ap = f"{r['ap']:5.3f}" if r["ap"] is not None else "    -"
            threshold = f"{r['threshold']:9.2f}" if r["threshold"] is not None else "   argmax"
            lines.append(f"{r['label']:<{width}}  {threshold}  {ap}  {r['precision']:9.3f}  {r['recall']:6.3f}"
                         f"  {r['f1']:5.3f}  {r['support']:7d}")
        return "\n".join(lines)

    def report(self, run_dir, prefix: str = "") -> list[str]:
        path = write_json(Path(run_dir) / f"{prefix}multilabel_report.json", {**self.compute(), **self.details()})
        return [str(path)]


# ---------------------------------------------------------------------------------------- predictions

@dataclass
class LabelsPrediction(Prediction):
    """The labels decided for one image (most probable first), and with groups the decoded text."""

    labels: list[dict[str, Any]] = field(default_factory=list)  # {"label", "probability"}
    text: str | None = None  # the groups' values in order ("A7KX" for a captcha), when the labels are grouped

    def to_json(self) -> dict[str, Any]:
        return {"labels": self.labels, **({"text": self.text} if self.text is not None else {})}

    def caption(self) -> str:
        shown = "  ".join(f"{t['label']} {t['probability']:.3f}" for t in self.labels) or "(no label)"
        return f"{self.text}  ({shown})" if self.text is not None else shown

    def draw(self, image):
        if self.text is not None:
            return draw_caption(image, self.text)
        return draw_caption(image, ", ".join(t["label"] for t in self.labels) or "(no label)")


class MultiLabelOutputs(nn.Module):
    """What an exported multi-label model outputs: per-label probabilities (sigmoid) and the 0/1
    decisions at the run's tuned thresholds (groups by their most probable label)."""

    def __init__(self, model: nn.Module, info: dict[str, Any]):
        super().__init__()
        self.model = model
        self.register_buffer("thresholds", thresholds_of(info))
        self.groups = group_index(info)
        for i, idx in enumerate(self.groups):
            self.register_buffer(f"group{i}", idx)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        groups = [getattr(self, f"group{i}") for i in range(len(self.groups))]
        probs = probabilities(self.model(x), groups)
        return probs, decide(probs, self.thresholds, groups)


class MultiLabelTask(Task):
    name = "multilabel"
    description = "several labels per image: a sigmoid per label, thresholds tuned on validation (default: generated captchas)"
    output = MULTILABEL
    # On the user's photos: classify's transfer recipe. The embedded captchas carry their own (register_datasets).
    defaults = {"dataset": "captcha", "backbone": DEFAULT_BACKBONES, "head": "linear", "loss": "bce",
                "mode": "staged", "freeze_epochs": 2, "epochs": 10, "batch_size": 32, "lr": 1e-3,
                "augment": "standard"}
    primary_metric = "val_map"  # threshold-free, so the best epoch does not depend on tuning
    primary_mode = "max"
    # Stretched, not cropped: a centre crop could cut off the one object that carries a label.
    fit = "stretch"
    pipeline_tag = "image-classification"
    predict_options = (Setting("threshold", float, None, "One threshold for every label instead of the tuned ones.",
                               nullable=True, min=0.0, max=1.0, request=True),)

    def outputs_info(self, info: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        return {**info, "num_outputs": len(info["classes"]), "multi_label": True}

    def metrics(self, info: dict[str, Any]) -> MultiLabelMetrics:
        return MultiLabelMetrics(info)

    def predict(self, outputs: torch.Tensor, geometry, info: dict[str, Any],
                threshold: float | None = None) -> list[LabelsPrediction]:
        groups = group_index(info)
        probs = probabilities(outputs.float(), groups)
        decisions = decide(probs, thresholds_of(info, threshold), groups)
        classes = info["classes"]
        out = []
        for p, d in zip(probs, decisions):
            chosen = sorted((j for j in range(len(classes)) if d[j] > 0), key=lambda j: -float(p[j]))
            text = "".join(label_value(classes[int(idx[int(p[idx].argmax())])]) for idx in groups) if groups else None
            out.append(LabelsPrediction([{"label": classes[j], "probability": round(float(p[j]), 6)} for j in chosen], text))
        return out

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        return MultiLabelOutputs(model, info), ["probabilities", "labels"]

    def undeploy(self, outputs: dict[str, torch.Tensor], info: dict[str, Any]) -> torch.Tensor:
        """Logits again from an exported file's probabilities: logit(p) per label (sigmoid inverts it),
        log p within a group (its softmax gives p back); the decisions are recomputed from them."""
        probs = outputs["probabilities"].float()
        p = probs.clamp(1e-7, 1 - 1e-7)
        logits = p.log() - (1 - p).log()
        for idx in group_index(info):  # float32's smallest normal: log stays finite
            logits = logits.index_copy(1, idx, probs.index_select(1, idx).clamp_min(1e-38).log())
        return logits


# ----------------------------------------------------------------------------------------------- loss

class MultiLabelBCE(nn.Module):
    """Binary cross-entropy on every (image, label) pair: torch's MultiLabelSoftMarginLoss, the source's
    captcha loss, is this same mean."""

    def __init__(self):
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if outputs.shape != targets.shape:
            raise ZooError(f"loss 'bce': {outputs.shape[1]} outputs for {targets.shape[1]} labels")
        return self.bce(outputs, targets.float())


class GroupCrossEntropy(nn.Module):
    """Softmax cross-entropy within each group (a captcha position: one of 36 symbols), binary
    cross-entropy for labels in no group. It trains what the groups are decoded by, the most probable
    label, where BCE would push each of the 36 logits on its own."""

    def __init__(self, info: dict[str, Any]):
        super().__init__()
        self.groups = group_index(info)
        grouped = {int(i) for idx in self.groups for i in idx}
        self.register_buffer("free", torch.tensor([j for j in range(len(info["classes"])) if j not in grouped],
                                                  dtype=torch.long))
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.float()
        losses = [nn.functional.cross_entropy(outputs[:, idx.to(outputs.device)], targets[:, idx.to(outputs.device)].argmax(1))
                  for idx in self.groups]
        if len(self.free):
            losses.append(self.bce(outputs[:, self.free], targets[:, self.free]))
        return torch.stack(losses).mean()


def group_cross_entropy_loss(info: dict[str, Any]) -> nn.Module:
    if not info.get("groups"):
        raise ZooError("loss 'group-cross-entropy' needs labels in groups of which exactly one holds (the captcha "
                       "dataset's positions); this data has none: use --loss bce")
    return GroupCrossEntropy(info)
