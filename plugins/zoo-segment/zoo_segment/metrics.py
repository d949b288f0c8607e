"""mIoU, per-class IoU and pixel accuracy over an epoch (torchmetrics, ignore index honoured), and a
picture of validation images with their true and predicted masks.

The outputs a step hands the metrics are {"logits": (B, K, H, W), "inputs": ...} (see SegmentTask.step):
the first images of the epoch are kept, small, so that report() draws exactly what the model saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from zoo_core import Metrics, draw_mask, image_grid, write_json

from .losses import match_size
from .masks import IGNORE

KEEP = 12  # validation images kept for the report's picture
DRAW_SIZE = 224


def split_outputs(outputs: Any) -> tuple[torch.Tensor, Any]:
    """(logits, inputs or None) from a step's outputs, or from bare logits."""
    if isinstance(outputs, dict):
        return outputs["logits"], outputs.get("inputs")
    return outputs, None


class SegmentationMetrics(Metrics):
    def __init__(self, info: dict[str, Any], to_pil: Callable[[torch.Tensor], Any] | None = None):
        self.classes = list(info["classes"])
        self.colors = [tuple(c) for c in info.get("colors") or []] or None
        self.ignore_index = int(info.get("ignore_index", IGNORE))
        k = len(self.classes)
        # average=None: one IoU per class; mIoU is their mean over the classes that occur (in the targets
        # or the predictions): a class absent from a small validation split says nothing either way.
        self.iou = MulticlassJaccardIndex(k, average=None, ignore_index=self.ignore_index)
        self.accuracy = MulticlassAccuracy(k, average="micro", ignore_index=self.ignore_index)
        self.to_pil = to_pil
        self.reset()

    def reset(self) -> None:
        self.iou.reset()
        self.accuracy.reset()
        self.seen = torch.zeros(len(self.classes), dtype=torch.long)  # pixels per class, true or predicted
        self.kept: list[tuple[Any, np.ndarray, np.ndarray]] = []

    def update(self, outputs: Any, targets: torch.Tensor) -> None:
        logits, inputs = split_outputs(outputs)
        targets = targets.cpu()
        pred = match_size(logits.float().cpu(), targets).argmax(1)
        self.iou.update(pred, targets)
        self.accuracy.update(pred, targets)
        valid = targets != self.ignore_index
        k = len(self.classes)
        self.seen += torch.bincount(targets[valid], minlength=k)[:k] + torch.bincount(pred[valid], minlength=k)[:k]
        for i in range(min(KEEP - len(self.kept), len(pred))):
            image = inputs[i].cpu().clone() if isinstance(inputs, torch.Tensor) and inputs.dim() == 4 else None
            self.kept.append((image, pred[i].numpy().astype(np.uint8), targets[i].numpy().astype(np.uint8)))

    def per_class(self) -> dict[str, float | None]:
        if not self.seen.any():
            return {c: None for c in self.classes}
        ious = self.iou.compute()
        return {c: (round(float(v), 6) if self.seen[i] > 0 else None) for i, (c, v) in enumerate(zip(self.classes, ious))}

    def compute(self) -> dict[str, float]:
        scores = [v for v in self.per_class().values() if v is not None]
        return {"miou": float(np.mean(scores)) if scores else 0.0,
                "pixel_accuracy": float(self.accuracy.compute()) if self.seen.any() else 0.0}

    def details(self) -> dict[str, Any]:
        return {"iou_per_class": self.per_class()}

    def table(self) -> str:
        rows = self.per_class()
        width = max(8, *(len(c) for c in rows))
        lines = [f"{'class':<{width}}  {'IoU':>6}"]
        lines += [f"{c:<{width}}  {'-' if v is None else f'{v:.4f}':>6}" for c, v in rows.items()]
        return "\n".join(lines)

    def report(self, run_dir, prefix: str = "") -> list[str]:
        from PIL import Image

        run_dir = Path(run_dir)
        written = [str(write_json(run_dir / f"{prefix}segmentation_report.json", {**self.compute(), **self.details()}))]
        if self.kept:
            pictures, titles = [], []
            for image, pred, true in self.kept:
                base = self._picture(image, true.shape)
                # Ignored pixels (the letterbox padding, unlabelled borders) are drawn as background in both:
                # what the model says there is never trained nor scored.
                ignored = true == self.ignore_index
                pair = [draw_mask(base, np.where(ignored, 0, true), colors=self.colors),
                        draw_mask(base, np.where(ignored, 0, pred), colors=self.colors)]
                sheet = _side_by_side(pair)
                k = max(1, -(-DRAW_SIZE // max(base.size)))  # small inputs enlarged, pixels kept sharp
                sheet = sheet.resize((sheet.width * k, sheet.height * k), Image.NEAREST) if k > 1 else sheet
                pictures.append(sheet)
                valid = true != self.ignore_index
                titles.append(f"true | predicted, {float((pred[valid] == true[valid]).mean()) if valid.any() else 0:.1%} px")
            written.append(str(image_grid(pictures, run_dir / f"{prefix}val_masks.png", columns=3, cell=480, titles=titles)))
        return written

    def _picture(self, image: torch.Tensor | None, shape: tuple[int, int]):
        """The model's input as a PIL image (undoing the normalisation); grey when the inputs were cached
        features, so the masks are still shown."""
        from PIL import Image

        if image is None or image.dim() != 3 or image.shape[0] not in (1, 3):
            pil = Image.new("RGB", (shape[1], shape[0]), (128, 128, 128))
        elif self.to_pil is not None:
            pil = self.to_pil(image).convert("RGB")
        else:
            lo, hi = float(image.min()), float(image.max())
            arr = ((image - lo) / max(hi - lo, 1e-6) * 255).round().clamp(0, 255).byte()
            pil = Image.fromarray(arr.permute(1, 2, 0).squeeze(-1).numpy()).convert("RGB")
        return pil


def _side_by_side(images):
    from PIL import Image

    w, h = sum(i.width for i in images) + 4 * (len(images) - 1), max(i.height for i in images)
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    x = 0
    for im in images:
        sheet.paste(im, (x, 0))
        x += im.width + 4
    return sheet
