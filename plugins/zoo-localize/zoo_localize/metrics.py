"""Mean IoU, accuracy at IoU >= 0.5, and the same for the mean-box baseline, over an epoch.

The outputs a step hands the metrics are {"box": (B, 4), "inputs": (B, C, H, W)} (see
LocalizeTask.step): the first images of the epoch are kept, small, so that report() can draw the
predicted (solid) and true (dashed) boxes on exactly what the model saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from zoo_core import Metrics, draw_boxes, image_grid, write_json

from .boxes import paired_iou

BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0001)
KEEP = 16  # images kept for the report
DRAW_SIZE = 224  # images are enlarged to at least this many pixels before boxes are drawn


def split_outputs(outputs: Any) -> tuple[torch.Tensor, Any]:
    """(boxes, inputs or None) from a step's outputs, or from a bare (B, 4) tensor."""
    if isinstance(outputs, dict):
        return outputs["box"], outputs.get("inputs")
    return outputs, None


class BoxMetrics(Metrics):
    def __init__(self, info: dict[str, Any], to_pil: Callable[[torch.Tensor], Any] | None = None):
        mean = info.get("mean_box")
        self.mean_box = torch.tensor(mean, dtype=torch.float32) if mean else None
        self.to_pil = to_pil
        self.reset()

    def reset(self) -> None:
        self.ious: list[torch.Tensor] = []
        self.baseline: list[torch.Tensor] = []
        self.kept: list[tuple[Any, list[float], list[float]]] = []  # (input image tensor, predicted, true)

    def update(self, outputs: Any, targets: torch.Tensor) -> None:
        boxes, inputs = split_outputs(outputs)
        boxes, targets = boxes.float().cpu(), targets.float().cpu()
        self.ious.append(paired_iou(boxes, targets))
        if self.mean_box is not None:
            self.baseline.append(paired_iou(self.mean_box.expand_as(targets), targets))
        if len(self.kept) < KEEP:
            for i in range(min(KEEP - len(self.kept), len(boxes))):
                image = inputs[i].cpu().clone() if isinstance(inputs, torch.Tensor) and inputs.dim() == 4 else None
                self.kept.append((image, boxes[i].tolist(), targets[i].tolist()))

    def _all(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        iou = torch.cat(self.ious) if self.ious else torch.zeros(0)
        base = torch.cat(self.baseline) if self.baseline else None
        return iou, base

    def compute(self) -> dict[str, float]:
        iou, base = self._all()
        n = max(1, len(iou))
        out = {"mean_iou": float(iou.sum()) / n, "acc_iou50": float((iou >= 0.5).sum()) / n}
        if base is not None:
            out.update(baseline_mean_iou=float(base.sum()) / n, baseline_acc_iou50=float((base >= 0.5).sum()) / n)
        return out

    def details(self) -> dict[str, Any]:
        iou, base = self._all()
        hist = lambda t: torch.histogram(t.clamp(0, 1), torch.tensor(BINS)).hist.long().tolist()  # noqa: E731
        out: dict[str, Any] = {"images": len(iou), "iou_bins": [f"{a:.1f}-{min(b, 1.0):.1f}" for a, b in zip(BINS, BINS[1:])],
                               "iou_histogram": hist(iou) if len(iou) else [0] * (len(BINS) - 1)}
        if len(iou):
            q = torch.quantile(iou, torch.tensor([0.1, 0.5, 0.9]))
            out.update(iou_p10=round(float(q[0]), 4), iou_median=round(float(q[1]), 4), iou_p90=round(float(q[2]), 4),
                       acc_iou75=round(float((iou >= 0.75).float().mean()), 4))
        if base is not None:
            out.update(mean_box=[round(float(v), 4) for v in self.mean_box],
                       baseline_histogram=hist(base) if len(base) else [0] * (len(BINS) - 1))
        return out

    def table(self) -> str:
        d = self.details()
        if not d["images"]:
            return ""
        has_base = "baseline_histogram" in d
        lines = [f"{'IoU':<9}  {'model':>6}" + (f"  {'mean box':>8}" if has_base else "")]
        for i, label in enumerate(d["iou_bins"]):
            lines.append(f"{label:<9}  {d['iou_histogram'][i]:6d}" + (f"  {d['baseline_histogram'][i]:8d}" if has_base else ""))
        return "\n".join(lines)

    def report(self, run_dir, prefix: str = "") -> list[str]:
        run_dir = Path(run_dir)
        written = [str(write_json(run_dir / f"{prefix}localization_report.json", {**self.compute(), **self.details()}))]
        if self.kept:
            pictures, titles = [], []
            for image, pred, true in self.kept:
                pil = self._picture(image)
                w, h = pil.size
                scale = [w, h, w, h]
                drawn = draw_boxes(pil, [[v * s for v, s in zip(true, scale)]], colors=[1], dashed=True)
                drawn = draw_boxes(drawn, [[v * s for v, s in zip(pred, scale)]], colors=[0])
                pictures.append(drawn)
                titles.append(f"IoU {float(paired_iou(torch.tensor([pred]), torch.tensor([true]))[0]):.2f}")
            written.append(str(image_grid(pictures, run_dir / f"{prefix}val_boxes.png", columns=4, cell=240,
                                          titles=titles)))
        return written

    def _picture(self, image: torch.Tensor | None):
        """The model's input as a PIL image (undoing the normalisation), enlarged for drawing; a grey
        square when the inputs were not images (cached features)."""
        from PIL import Image

        if image is None or image.shape[0] not in (1, 3):
            return Image.new("RGB", (DRAW_SIZE, DRAW_SIZE), (128, 128, 128))
        if self.to_pil is not None:
            pil = self.to_pil(image)
        else:
            lo, hi = float(image.min()), float(image.max())
            arr = ((image - lo) / max(hi - lo, 1e-6) * 255).round().clamp(0, 255).byte()
            pil = Image.fromarray(arr.permute(1, 2, 0).squeeze(-1).numpy())
        k = max(1, -(-DRAW_SIZE // max(pil.size)))
        return pil.convert("RGB").resize((pil.width * k, pil.height * k), Image.NEAREST) if k > 1 else pil.convert("RGB")
