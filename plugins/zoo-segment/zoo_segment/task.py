"""The segment task: a class for every pixel, learned as (B, K, H, W) logits at the model's input size."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2 as T
from zoo_core import (
    Augment,
    Batch,
    DataConfig,
    Prediction,
    Preprocess,
    Setting,
    StepOutput,
    Task,
    ZooError,
    atomic_write,
    collate_samples,
    draw_caption,
    draw_mask,
    input_to_image,
)

from . import DEFAULT_BACKBONES
from .masks import FIT, IGNORE, MASK, class_colors, targets
from .metrics import SegmentationMetrics, split_outputs, to_original_labels


_MASK_NAMES: dict[str, dict[str, str]] = {}  # per --masks folder, the mask files this process wrote: name -> image


@dataclass
class MaskPrediction(Prediction):
    """One image's mask at the original image's resolution, and each class's share of its pixels.

    to_json() stays small (the areas, and the mask file's path when one is written): the mask itself is a
    palette PNG of class indices, written by `zoo predict --masks DIR` as DIR/<image name>.png (<image name>-2.png
    for a second image of the same name)."""

    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))  # (h, w) class indices
    classes: list[str] = field(default_factory=list)
    colors: list[list[int]] = field(default_factory=list)
    masks_dir: str | None = None
    _written: Path | None = field(default=None, repr=False)

    @property
    def areas(self) -> dict[str, float]:
        """Share of the image's pixels per class present, largest first."""
        counts = np.bincount(self.mask.ravel(), minlength=len(self.classes))
        total = max(1, self.mask.size)
        return {self.classes[i]: round(float(counts[i]) / total, 5) for i in np.argsort(-counts) if counts[i] > 0}

    def save_mask(self, path: str | Path) -> Path:
        """The mask as a palette PNG: pixel values are class indices, shown in the classes' colours."""
        from PIL import Image

        img = Image.fromarray(self.mask.astype(np.uint8), mode="P")
        palette = [v for c in (self.colors or class_colors(len(self.classes))) for v in c[:3]]
        img.putpalette(palette + [0] * (768 - len(palette)))
        return atomic_write(Path(path), lambda p: img.save(p, format="PNG"))

    def mask_file(self) -> Path | None:
        """Written once, on first use, when --masks DIR was given (the source is known only by then)."""
        if self.masks_dir is None or self._written is not None:
            return self._written
        folder = Path(self.masks_dir)
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(self.source).stem if self.source and not self.source.startswith("<") else f"image-{id(self):x}"
        # two images of one name (a/i.png, b/i.png): the second one's mask is i-2.png, not i.png again;
        # the same image predicted again overwrites its own
        taken = _MASK_NAMES.setdefault(str(folder.resolve()), {})
        name, n = stem, 1
        while taken.get(name, self.source) != self.source:
            n += 1
            name = f"{stem}-{n}"
        taken[name] = self.source
        self._written = self.save_mask(folder / f"{name}.png")
        return self._written

    def to_json(self) -> dict[str, Any]:
        h, w = self.mask.shape
        out: dict[str, Any] = {"size": [w, h], "areas": self.areas}
        if self.mask_file() is not None:
            out["mask"] = str(self._written)
        return out

    def caption(self) -> str:
        text = "  ".join(f"{c} {a:.1%}" for c, a in self.areas.items())
        return text + (f"  -> {self._written}" if self.mask_file() is not None else "")

    def draw(self, image):
        drawn = draw_mask(image, self.mask, colors=self.colors or None)
        return draw_caption(drawn, "  ".join(f"{c} {a:.0%}" for c, a in self.areas.items() if c != self.classes[0]) or
                            self.classes[0])


def mask_targets(samples: list[dict[str, Any]]) -> torch.Tensor | dict[str, Any] | None:
    """Each sample's stored Mask (input pixels, after the transform) as (B, H, W) class indices; for the
    validation split, {"mask": those, "original": each image's own (h, w) class indices, "geometry":
    [Geometry]} so that the metrics score at each image's resolution."""
    if any(s.get("target") is None for s in samples):
        return None
    masks = [s["target"]["mask"] if isinstance(s["target"], dict) else s["target"] for s in samples]
    stacked = torch.stack([targets(m).reshape(m.shape[-2:]) for m in masks])
    if all(isinstance(s["target"], dict) and s.get("geometry") is not None for s in samples):
        return {"mask": stacked, "original": [targets(s["target"]["original"]) for s in samples],
                "geometry": [s["geometry"] for s in samples]}
    return stacked


class ToInputSize(nn.Module):
    """What export writes: the model, its logits resized to the input's height and width."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


class SegmentTask(Task):
    name = "segment"
    description = "semantic segmentation: a class for every pixel (default: generated scenes of real photo crops)"
    output = MASK
    # On the user's own images: a pretrained ResNet-18 (the source's encoder) under a U-Net decoder, the
    # decoder first, then everything. The embedded scenes carry their own recipe: see register_datasets.
    defaults = {"dataset": "scene-masks", "backbone": DEFAULT_BACKBONES, "head": "unet", "loss": "ce-dice", "mode": "staged",
                "freeze_epochs": 2, "epochs": 20, "batch_size": 16, "lr": 1e-3, "augment": "standard"}
    primary_metric = "val_miou"
    primary_mode = "max"
    # Letterbox: the whole image, aspect ratio kept; the padding is ignored by loss and metrics (masks.py).
    fit = FIT
    pipeline_tag = "image-segmentation"
    predict_options = (Setting("masks", str, None, "Write each predicted mask as a palette PNG of class indices "
                               "into this folder (named after the image).", nullable=True, path=True),)


    def transforms(self, data_config: DataConfig, augment: str):
        """standard: a random zoom (0.75-1.25) and shift (10%) and a horizontal flip; light: a smaller zoom
        and shift; none: the eval transform. The mask moves with the image (nearest neighbour); pixels a
        zoom-out or the letterbox adds are ignored. Bilinear for the image: torchvision's affine refuses
        bicubic, the interpolation of most timm models."""
        eval_tf = Preprocess(data_config, self.fit)
        bilinear = T.InterpolationMode.BILINEAR
        if augment == "standard":
            ops = [T.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.75, 1.25), interpolation=bilinear),
                   T.RandomHorizontalFlip()]
        elif augment == "light":
            ops = [T.RandomAffine(degrees=0, translate=(0.05, 0.05), scale=(0.9, 1.1), interpolation=bilinear)]
        elif augment == "none":
            return eval_tf, eval_tf
        else:
            raise ZooError(f"unknown augment '{augment}': use one of standard, light, none")
        return Augment(ops, Preprocess(data_config, self.fit)), eval_tf

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        batch = collate_samples([{**s, "target": None} for s in samples])
        batch.targets = mask_targets(samples)
        return batch

    def step(self, model: nn.Module, batch: Batch, loss_fn: Any, optimizer: str = "main") -> StepOutput:
        logits = model(batch.inputs)
        masks = batch.targets["mask"] if isinstance(batch.targets, dict) else batch.targets  # the loss sees masks
        out = StepOutput.from_loss(loss_fn(logits, masks))
        out.outputs = {"logits": logits, "inputs": batch.inputs}  # the inputs: for the report's pictures
        return out

    def metrics(self, info: dict[str, Any], data_config: DataConfig | None = None) -> SegmentationMetrics:
        # data_config undoes the normalisation when the metrics draw the inputs
        return SegmentationMetrics(info, functools.partial(input_to_image, data_config=data_config)
                                   if data_config is not None else None)

    def predict(self, outputs: Any, geometry, info: dict[str, Any], masks: str | None = None,
                **options: Any) -> list[MaskPrediction]:
        logits, _ = split_outputs(outputs)
        classes, colors = list(info["classes"]), [list(c) for c in info.get("colors") or class_colors(len(info["classes"]))]
        out = []
        for scores, g in zip(logits.float().cpu(), geometry):
            if g is not None and tuple(scores.shape[-2:]) != tuple(g.input_size):
                scores = F.interpolate(scores[None], size=tuple(g.input_size), mode="bilinear", align_corners=False)[0]
            out.append(MaskPrediction(to_original_labels(scores, g).numpy().astype(np.uint8), classes, colors, masks))
        return out

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        """The output "logits" is (B, K, H, W) at the model's (letterboxed) input size; its argmax over K
        is the mask (class indices as in the metadata's info.classes). Undo the letterbox (scale and
        padding from the metadata's preprocessing) for the original image's pixels. Logits rather than the
        argmax, so the export's parity check compares numbers, not ties broken differently."""
        return ToInputSize(model), ["logits"]


__all__ = ["MaskPrediction", "SegmentTask", "IGNORE"]
