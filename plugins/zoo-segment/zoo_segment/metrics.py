"""mIoU, per-class IoU and pixel accuracy over an epoch (torchmetrics, ignore index honoured), and a
picture of validation images with their true and predicted masks.

Validation is scored at each image's own resolution, the field's convention (the input-space logits of
the image's region in the letterbox resized bilinearly to the original size, as `zoo predict` makes its
masks, against the original mask); `miou_input` is the same at the model's input size, labelled. A
training batch (augmented: no original) is scored at the input size.

The outputs a step hands the metrics are {"logits": (B, K, H, W), "inputs": ...} (see SegmentTask.step):
the first images of the epoch are kept, small, so that report() draws exactly what the model saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
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


def to_original_labels(scores: torch.Tensor, g) -> torch.Tensor:
    """(K, H, W) input-space logits -> (h, w) class indices in the original image's pixels. The letterboxed
    image's region is resized bilinearly to the original size, as the image itself was resized (pixel
    centres aligned, smooth boundaries); the argmax comes after. Other fits: Geometry's nearest mapping."""
    if g is None:
        return scores.argmax(0)
    h, w = g.original_size
    (sx, sy), (ox, oy) = g.scale, g.offset
    x0, y0, x1, y1 = round(ox), round(oy), round(ox + w * sx), round(oy + h * sy)
    H, W = scores.shape[-2:]
    if 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H:
        region = scores[None, :, y0:y1, x0:x1]
        return F.interpolate(region, size=(h, w), mode="bilinear", align_corners=False)[0].argmax(0)
    return g.to_original_mask(scores.argmax(0))


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
        self.iou_input = MulticlassJaccardIndex(k, average=None, ignore_index=self.ignore_index)
        self.to_pil = to_pil
        self.reset()

    def reset(self) -> None:
        self.iou.reset()
        self.accuracy.reset()
        self.iou_input.reset()
        self.at_original = False  # scored at each image's own resolution (validation), else at the input size
        self.seen = torch.zeros(len(self.classes), dtype=torch.long)  # pixels per class, true or predicted
        self.seen_input = torch.zeros(len(self.classes), dtype=torch.long)
        self.kept: list[tuple[Any, np.ndarray, np.ndarray]] = []

    def update(self, outputs: Any, targets: Any) -> None:
        logits, inputs = split_outputs(outputs)
        original = targets if isinstance(targets, dict) else None
        targets = (original["mask"] if original is not None else targets).cpu()
        pred = match_size(logits.float().cpu(), targets).argmax(1)
        if original is None:
            self._score(self.iou, self.accuracy, self.seen, pred, targets)
        else:  # each image at its own resolution, and the input-size score beside it
            self.at_original = True
            self._score(self.iou_input, None, self.seen_input, pred, targets)
            scores = logits.float().cpu()
            for i, (true, g) in enumerate(zip(original["original"], original["geometry"])):
                s = scores[i]
                if tuple(s.shape[-2:]) != tuple(g.input_size):
                    s = F.interpolate(s[None], size=tuple(g.input_size), mode="bilinear", align_corners=False)[0]
                self._score(self.iou, self.accuracy, self.seen, to_original_labels(s, g)[None], true.cpu()[None])
        for i in range(min(KEEP - len(self.kept), len(pred))):
            image = inputs[i].cpu().clone() if isinstance(inputs, torch.Tensor) and inputs.dim() == 4 else None
            self.kept.append((image, pred[i].numpy().astype(np.uint8), targets[i].numpy().astype(np.uint8)))

    def _score(self, iou, accuracy, seen: torch.Tensor, pred: torch.Tensor, true: torch.Tensor) -> None:
        iou.update(pred, true)
        if accuracy is not None:
            accuracy.update(pred, true)
        valid = true != self.ignore_index
        k = len(self.classes)
        seen += torch.bincount(true[valid], minlength=k)[:k] + torch.bincount(pred[valid], minlength=k)[:k]

    def per_class(self) -> dict[str, float | None]:
        if not self.seen.any():
            return {c: None for c in self.classes}
        ious = self.iou.compute()
        return {c: (round(float(v), 6) if self.seen[i] > 0 else None) for i, (c, v) in enumerate(zip(self.classes, ious))}

    def compute(self) -> dict[str, float]:
        scores = [v for v in self.per_class().values() if v is not None]
        out = {"miou": float(np.mean(scores)) if scores else 0.0,
               "pixel_accuracy": float(self.accuracy.compute()) if self.seen.any() else 0.0}
        if self.at_original and self.seen_input.any():
            ious = self.iou_input.compute()
            present = [float(v) for i, v in enumerate(ious) if self.seen_input[i] > 0]
            out["miou_input"] = float(np.mean(present)) if present else 0.0
        return out

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
