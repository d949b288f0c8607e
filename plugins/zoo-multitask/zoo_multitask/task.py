"""The multitask task: several heads on one backbone and one shared trunk, trained on the weighted sum
of their losses; every head predicted in the units of its column."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2 as T
from zoo_core import Augment, DataConfig, Prediction, Preprocess, Task, ZooError, draw_caption

from . import DEFAULT_BACKBONES
from .heads import OUTPUT, Deployed, to_original
from .metrics import MultiTaskMetrics

DRAW_SIZE = 192  # images are enlarged to at least this many pixels before the captions are drawn


@dataclass
class MultiTaskPrediction(Prediction):
    """One image's heads: {"shape": {"label": "circle", "probability": 0.98}, "size": {"value": 23.4, "unit": "px"}}."""

    heads: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.heads)

    def _parts(self) -> list[str]:
        parts = []
        for name, h in self.heads.items():
            if "value" in h:
                parts.append(f"{name} {h['value']:.4g}{' ' + h['unit'] if h.get('unit') else ''}")
            else:
                parts.append(f"{name} {h['label']} {h['probability']:.2f}")
        return parts

    def caption(self) -> str:
        return "  ".join(self._parts())

    def draw(self, image):
        """The image with one caption line per head; a small image is enlarged first (whole pixels, so
        nothing is smoothed away) so that the captions fit under it."""
        k = -(-DRAW_SIZE // max(image.size))
        if k > 1:
            image = image.resize((image.width * k, image.height * k), Image.NEAREST)
        return draw_caption(image, "\n".join(self._parts()))


def read_head(spec: dict[str, Any], value: torch.Tensor) -> dict[str, Any]:
    """One head's output for one image, in original units (value: what to_original gives)."""
    if spec["type"] == "regression":
        return {"value": round(float(value), 4), **({"unit": spec["unit"]} if spec.get("unit") else {})}
    if spec["type"] == "binary":
        p = float(value)
        positive = p >= 0.5
        return {"label": spec["classes"][1 if positive else 0], "probability": round(p if positive else 1 - p, 5)}
    k = int(value.argmax())
    return {"label": spec["classes"][k], "probability": round(float(value[k]), 5)}


class MultiTaskTask(Task):
    name = "multitask"
    description = "several heads at once (binary, multi-class, regression) on one backbone and a shared trunk"
    output = OUTPUT
    # On the user's own images (a CSV): a pretrained ResNet-18, head first, then unfrozen. The embedded
    # shapes carry their own recipe: see register_datasets.
    defaults = {"dataset": "shapes", "backbone": DEFAULT_BACKBONES, "head": "multitask-mlp", "loss": "multitask",
                "mode": "staged", "freeze_epochs": 2, "epochs": 15, "batch_size": 32, "lr": 1e-3, "augment": "standard"}
    # The sum of the heads' weighted losses picks the best epoch: no single head's metric speaks for all.
    primary_metric = "val_loss"
    primary_mode = "min"
    # Letterbox: a size or a position may be a target, so nothing is cropped off or squashed.
    fit = "pad"

    def transforms(self, data_config: DataConfig, augment: str):
        """standard: a horizontal flip and mild brightness and contrast changes; light: the latter only;
        none: the eval transform. No zoom, crop or shift: a target may be a size or a position (the
        embedded shapes' size is one), and those would change it without changing the label."""
        eval_tf = Preprocess(data_config, self.fit)
        jitter = T.ColorJitter(brightness=0.2, contrast=0.2)
        if augment == "standard":
            ops = [T.RandomHorizontalFlip(), jitter]
        elif augment == "light":
            ops = [jitter]
        elif augment == "none":
            return eval_tf, eval_tf
        else:
            raise ZooError(f"unknown augment '{augment}': use one of standard, light, none")
        return Augment(ops, Preprocess(data_config, self.fit)), eval_tf

    def metrics(self, info: dict[str, Any]) -> MultiTaskMetrics:
        return MultiTaskMetrics(info)

    def predict(self, outputs: dict[str, torch.Tensor], geometry, info: dict[str, Any], **options: Any) -> list[MultiTaskPrediction]:
        targets = info["targets"]
        values = {s["name"]: to_original(s, outputs[s["name"]].float().cpu()) for s in targets}
        n = len(next(iter(values.values())))
        return [MultiTaskPrediction({s["name"]: read_head(s, values[s["name"]][i]) for s in targets}) for i in range(n)]

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        """One output per head, named after it, in original units: binary heads the positive class's
        probability (B,), multiclass heads the class probabilities (B, classes), regression heads the
        value (B,) in the column's units. Class names and units are in the metadata's info."""
        return Deployed(model, info["targets"]), [s["name"] for s in info["targets"]]
