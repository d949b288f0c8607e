"""COCO mAP through torchmetrics' MeanAveragePrecision (faster-coco-eval backend): mAP@0.5:0.95, mAP@0.5,
mAP@0.75 and mAR@100 overall, mAP and mAP@0.5 per class, a precision-recall plot per class at IoU 0.5
and the first validation images with predicted (solid, with scores) and true (dashed) boxes.

Detections for the metric are decoded as zoo predict and detect-results decode them for COCO's tools
(boxes.detections): every score above 0.05, boxes clipped to the image inside the letterbox, per-class
NMS at IoU 0.6, the best 100 per image; then predictions and truth are scored in each image's original
pixels (COCO's small/medium/large areas are those of the original image), so `zoo eval` reports what
pycocotools reports on detect-results' file. A training batch (augmented: no geometry) is scored in input
pixels, a trend only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from zoo_core import Metrics, draw_boxes, image_grid, write_json

from .boxes import EVAL_SCORE, MAX_DETECTIONS, NMS_IOU, detections

EVAL_DECODE = dict(score_threshold=EVAL_SCORE, iou_threshold=NMS_IOU, max_detections=MAX_DETECTIONS)
KEEP = 12  # validation images kept for the report's picture
TRAIN_SAMPLE = 64  # training images per epoch whose mAP is measured: a trend to compare with validation, cheaply
DRAW_SIZE = 320
DRAW_SCORE = 0.3  # detections drawn in the report


def new_map():
    from torchmetrics.detection import MeanAveragePrecision

    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, extended_summary=True,
                                backend="faster_coco_eval")


class DetectionMetrics(Metrics):
    def __init__(self, info: dict[str, Any], to_pil: Callable[[torch.Tensor], Any] | None = None,
                 input_size: tuple[int, int] = (DRAW_SIZE, DRAW_SIZE)):
        self.classes = list(info.get("classes", []))
        self.to_pil = to_pil
        self.input_size = input_size  # (h, w): the canvas when the inputs were cached features, not images
        self.reset()

    def reset(self) -> None:
        self.map = new_map()
        self.result: dict[str, Any] | None = None
        self.images = 0
        self.kept: list[tuple[Any, dict, dict]] = []  # (input image or None, detections, truth)

    def update(self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> None:
        if outputs.get("training") and self.images >= TRAIN_SAMPLE:
            return  # decoding and matching every training batch would cost as much as the step itself
        inputs = outputs.get("inputs")
        size = tuple(inputs.shape[-2:]) if isinstance(inputs, torch.Tensor) and inputs.dim() == 4 else None
        geometry = [t.get("geometry") for t in targets]
        regions = None
        if all(g is not None for g in geometry):  # the eval transform: each image's place in the letterbox
            g = torch.stack([g.float().cpu() for g in geometry])  # (B, 6): sx, sy, ox, oy, h, w
            regions = torch.stack([g[:, 2], g[:, 3], g[:, 2] + g[:, 5] * g[:, 0], g[:, 3] + g[:, 4] * g[:, 1]], dim=1)
        dets = [{k: v.cpu() for k, v in d.items()}
                for d in detections(outputs, input_size=size, regions=regions, **EVAL_DECODE)]
        truth = [{"boxes": t["boxes"].float().cpu().reshape(-1, 4), "labels": t["labels"].long().cpu()} for t in targets]
        if regions is None:
            self.map.update(dets, truth)
        else:  # scored in original pixels: (input - offset) / scale, for predictions and truth alike
            def original(boxes, k):
                return (boxes - g[k, [2, 3, 2, 3]]) / g[k, [0, 1, 0, 1]]

            self.map.update([{**d, "boxes": original(d["boxes"], k)} for k, d in enumerate(dets)],
                            [{**t, "boxes": original(t["boxes"], k)} for k, t in enumerate(truth)])
        self.images += len(truth)
        for i in range(min(KEEP - len(self.kept), len(truth))):
            image = inputs[i].cpu() if size is not None and inputs.shape[1] in (1, 3) else None
            self.kept.append((image, dets[i], truth[i]))

    def _result(self) -> dict[str, Any]:
        if self.result is None:
            self.result = self.map.compute() if self.images else {}
        return self.result

    def compute(self) -> dict[str, float]:
        r = self._result()
        if not r:
            return {"map": 0.0, "map_50": 0.0, "map_75": 0.0, "mar_100": 0.0}
        # COCO reports -1 where nothing can be measured (no objects at all): 0 for ranking runs
        return {k: max(0.0, float(r[k])) for k in ("map", "map_50", "map_75", "mar_100")}

    def per_class(self) -> list[dict[str, Any]]:
        """One row per class: AP@0.5:0.95, AP@0.5 (from COCO's precision table), recall@100, objects."""
        r = self._result()
        if not r:
            return []
        present = [int(c) for c in torch.atleast_1d(r["classes"]).tolist()]
        precision = r["precision"]  # (IoU thresholds, recall points, classes, areas, max detections)
        ap = torch.atleast_1d(r["map_per_class"]).tolist()
        ar = torch.atleast_1d(r["mar_100_per_class"]).tolist()
        counts = torch.zeros(len(self.classes), dtype=torch.long)
        for t in self.map.groundtruth_labels:
            counts += torch.bincount(t.long(), minlength=len(self.classes))[: len(self.classes)]
        rows = []
        for k, c in enumerate(present):
            if not 0 <= c < len(self.classes):
                continue
            p50 = precision[0, :, k, 0, -1]
            p50 = p50[p50 > -1]
            rows.append({"class": self.classes[c], "ap": round(max(0.0, float(ap[k])), 4),
                         "ap_50": round(float(p50.mean()), 4) if len(p50) else 0.0,
                         "ar_100": round(max(0.0, float(ar[k])), 4), "objects": int(counts[c])})
        return rows

    def details(self) -> dict[str, Any]:
        return {"images": self.images, "per_class": self.per_class()}

    def table(self) -> str:
        rows = self.per_class()
        if not rows:
            return ""
        width = max(8, *(len(r["class"]) for r in rows))
        lines = [f"{'class':<{width}}  {'AP':>6}  {'AP@0.5':>6}  {'AR@100':>6}  {'objects':>7}"]
        lines += [f"{r['class']:<{width}}  {r['ap']:6.3f}  {r['ap_50']:6.3f}  {r['ar_100']:6.3f}  {r['objects']:7d}" for r in rows]
        return "\n".join(lines)

    def report(self, run_dir, prefix: str = "") -> list[str]:
        run_dir = Path(run_dir)
        written = [str(write_json(run_dir / f"{prefix}detection_report.json", {**self.compute(), **self.details()}))]
        if self._result():
            written.append(str(self._plot_pr(run_dir / f"{prefix}pr_curve.png")))
        if self.kept:
            written.append(str(self._draw(run_dir / f"{prefix}val_detections.png")))
        return written

    def _plot_pr(self, path: Path) -> Path:
        """Precision against recall at IoU 0.5, per class (COCO's interpolated 101-point curves)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from zoo_core import atomic_write, color

        r = self._result()
        recall = torch.linspace(0, 1, r["precision"].shape[1])
        fig, ax = plt.subplots(figsize=(5.2, 4.2))
        for k, row in zip(range(len(self.per_class())), self.per_class()):
            c = self.classes.index(row["class"])
            p = r["precision"][0, :, k, 0, -1].clamp(min=0)
            ax.plot(recall, p, color=[v / 255 for v in color(c)], lw=2, label=f"{row['class']} (AP@0.5 {row['ap_50']:.3f})")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        m = self.compute()
        ax.set_title(f"IoU 0.5: mAP@0.5 {m['map_50']:.3f}, mAP@0.5:0.95 {m['map']:.3f}", fontsize=10)
        ax.legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
        plt.close(fig)
        return path

    def _draw(self, path: Path) -> Path:
        pictures, titles = [], []
        for image, det, truth in self.kept:
            pil = self._picture(image)
            k = pil.width / (image.shape[-1] if image is not None else self.input_size[1])
            drawn = draw_boxes(pil, (truth["boxes"] * k).tolist(), colors=truth["labels"].tolist(), dashed=True)
            shown = det["scores"] >= DRAW_SCORE
            drawn = draw_boxes(drawn, (det["boxes"][shown] * k).tolist(),
                               labels=[f"{self.classes[int(c)]} {float(s):.2f}" for c, s in zip(det["labels"][shown], det["scores"][shown])],
                               colors=det["labels"][shown].tolist())
            pictures.append(drawn)
            titles.append(f"{int(shown.sum())} found, {len(truth['boxes'])} true")
        return image_grid(pictures, path, columns=4, cell=260, titles=titles)

    def _picture(self, image: torch.Tensor | None):
        """The model's input as a PIL image, enlarged for drawing; a grey square for cached features."""
        from PIL import Image

        if image is None or self.to_pil is None:
            h, w = self.input_size if image is None else image.shape[-2:]
            pil = Image.new("RGB", (int(w), int(h)), (128, 128, 128))
        else:
            pil = self.to_pil(image)
        k = max(1, -(-DRAW_SIZE // max(pil.size)))
        return pil.convert("RGB").resize((pil.width * k, pil.height * k), Image.BILINEAR) if k > 1 else pil.convert("RGB")
