"""The data types every layer above shares: how a backbone wants its input (DataConfig), what a dataset
returns (DataSplits) and what a step receives (Batch). They live below the contract so that the
transforms, the loaders and the caches can build them without importing the task contract."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch


@dataclass
class DataConfig:
    """How a backbone wants its input: taken from the backbone's pretrained config (timm's data config),
    so transforms follow the model rather than constants."""

    input_size: tuple[int, int, int] = (3, 224, 224)  # C, H, W
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    # The backbone's deepest feature stride: fit "native" pads an image to a multiple of it (set by the core
    # from the backbone's feature_info when the model is built).
    stride: int = 32

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
            stride=int(d.get("stride", 32)),
        )


@dataclass
class DataSplits:
    """What a dataset factory returns. `train` and `val` hold raw samples: dicts with
    "image" (a PIL image, or a path loaded lazily), "target" (anything the task understands; geometric
    targets as torchvision tv_tensors so transforms move them with the image) and optionally "id".
    The task's transforms turn them into tensors; the dataset never resizes or normalises."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    info: dict[str, Any]  # JSON-able facts heads, losses and metrics need (e.g. {"classes": [...]})
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of unreadable files
    description: str = ""
    in_memory: bool = False  # small in-memory data loads fastest without worker processes
    # (dataset, batch_size, generator) -> a sampler of index lists, for PK sampling or aspect-ratio
    # batches; it must draw its randomness from `generator` so that runs resume exactly.
    batch_sampler: Callable[[Any, int, torch.Generator], Any] | None = None


@dataclass
class Batch:
    """What a step receives: inputs (B, C, H, W), targets as the task collated them, and per image the
    geometry that maps model-input pixels back to the original image (None where unknown) and its id."""

    inputs: Any
    targets: Any = None
    geometry: list[Any] = field(default_factory=list)  # a transforms.Geometry (or None) per image
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs) if not isinstance(self.inputs, (list, tuple)) else len(self.inputs[0])

    def pin_memory(self) -> "Batch":  # called by DataLoader(pin_memory=True)
        return Batch(_apply(self.inputs, lambda t: t.pin_memory()), _apply(self.targets, lambda t: t.pin_memory()),
                     self.geometry, self.ids)

    def to(self, device: torch.device, channels_last: bool = False) -> "Batch":
        def move(t: torch.Tensor) -> torch.Tensor:
            if channels_last and t.dim() == 4 and t.is_floating_point():
                return t.to(device, non_blocking=True, memory_format=torch.channels_last)
            return t.to(device, non_blocking=True)

        return Batch(_apply(self.inputs, move), _apply(self.targets, lambda t: t.to(device, non_blocking=True)),
                     self.geometry, self.ids)


def _apply(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """fn on every tensor nested in lists, tuples and dicts (tv_tensors keep their type)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _apply(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_apply(v, fn) for v in obj)
    return obj


def detach(obj: Any) -> Any:
    """Outputs for metrics: detached, and float32 again if computed under autocast."""
    return _apply(obj, lambda t: t.detach().float() if t.is_floating_point() else t.detach())
