"""The types that flow between plugins and the trainer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import nn


@dataclass
class DataConfig:
    """How a backbone wants its input: taken from the backbone's pretrained config (timm's data config),
    so transforms follow the model rather than constants."""

    input_size: tuple[int, int, int] = (3, 224, 224)  # C, H, W
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    crop_pct: float = 0.875

    @property
    def channels(self) -> int:
        return self.input_size[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataConfig":
        return cls(
            input_size=tuple(int(v) for v in d["input_size"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            interpolation=str(d.get("interpolation", "bilinear")),
            crop_pct=float(d.get("crop_pct", 0.875)),
        )


@dataclass
class DataSplits:
    """What a dataset factory returns."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    info: dict[str, Any]  # JSON-able facts heads, losses and metrics need (e.g. {"classes": [...]})
    collate: Callable | None = None  # for targets torch's default collate cannot stack (boxes, sequences)
    in_memory: bool = False  # small in-memory data loads fastest without worker processes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of unreadable files
    description: str = ""


class Backbone(nn.Module):
    """A feature extractor. forward(x) gives pooled features (B, num_features);
    forward_map(x) gives the last spatial feature map (B, C, H, W) for dense heads."""

    num_features: int
    data_config: DataConfig
    pretrained_source: str = "none"  # what the weights came from, for the run's config and `zoo list`

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} has no spatial feature map")

    def set_pretrained_classifier(self, classifier: nn.Module, labels: list[str],
                                  label_ids: list[str] | None = None) -> None:
        """Keep the classifier the weights were trained with (e.g. ImageNet's 1000 classes), mapping
        forward()'s features to logits, for `zoo predict BACKBONE`. It is kept outside the module tree
        on purpose: transfer models never train, save or count it."""
        if len(labels) != getattr(classifier, "out_features", len(labels)):
            raise ValueError(f"{len(labels)} labels for a classifier with {classifier.out_features} outputs")
        self.__dict__["_pretrained_classifier"] = (classifier.eval(), list(labels), list(label_ids or []))

    def pretrained_classifier(self) -> tuple[nn.Module, list[str], list[str]] | None:
        """(classifier, class names, class ids such as WordNet synsets), or None when the backbone has none."""
        return self.__dict__.get("_pretrained_classifier")


class Metrics(ABC):
    """Accumulates outputs and targets over an epoch. compute() gives scalar metrics (JSON-able)."""

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def update(self, outputs: Any, targets: Any) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, float]: ...

    def report(self, run_dir, prefix: str = "") -> list[str]:
        """Write plots or tables for the last compute() into run_dir; return the files written."""
        return []


class Task(ABC):
    """A task's default recipe and its task-specific logic. Subclass it in a plugin."""

    name: str = ""
    description: str = ""
    # Hyper-parameters and component names `zoo train <task>` uses when the user gives none.
    defaults: dict[str, Any] = {}
    # Datasets to try, in order, for a user's --data path (each dataset's `matches` decides).
    formats: list[str] = []
    # The metric that decides the best checkpoint and early stopping.
    primary_metric: str = "val_loss"
    primary_mode: str = "min"

    def outputs_info(self, info: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        """Add what heads need (e.g. num_outputs) to the dataset's info, given the run config."""
        return info

    @abstractmethod
    def metrics(self, info: dict[str, Any]) -> Metrics: ...

    @abstractmethod
    def predict(self, outputs: Any, info: dict[str, Any], top_k: int = 5) -> list[dict[str, Any]]:
        """Turn a batch of raw model outputs into one JSON-able prediction per image."""

    def format_prediction(self, prediction: dict[str, Any]) -> str:
        return str(prediction)
