"""The detect task: any number of boxes per image, each with a class and a score."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch
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
    collate_samples,
    draw_boxes,
    input_to_image,
)

from . import DEFAULT_BACKBONES
from .boxes import DENSE, FIT, MAX_DETECTIONS, NMS_IOU, SHOW_SCORE, detections, image_regions, location_scores
from .metrics import DetectionMetrics

MIN_SIDE = 1.0  # input pixels: a box augmentation squeezed thinner than this is dropped with its label


@dataclass
class Detection:
    box: list[float]  # x0, y0, x1, y1 in the original image's pixels
    label: str
    class_index: int
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "class_index": self.class_index, "score": round(self.score, 4),
                "box": [round(v, 2) for v in self.box]}


@dataclass
class DetectionPrediction(Prediction):
    """One image's detections, best first, in the original image's pixels."""

    detections: list[Detection] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)  # (w, h) of the original image

    def to_json(self) -> dict[str, Any]:
        return {"detections": [d.to_json() for d in self.detections], "image_size": list(self.image_size)}

    def caption(self) -> str:
        if not self.detections:
            return "no objects"
        return f"{len(self.detections)} object(s): " + "  ".join(
            f"{d.label} {d.score:.2f} [{', '.join(f'{v:.0f}' for v in d.box)}]" for d in self.detections)

    def draw(self, image):
        return draw_boxes(image, [d.box for d in self.detections], labels=[f"{d.label} {d.score:.2f}" for d in self.detections],
                          colors=[d.class_index for d in self.detections])

    def to_coco(self, image_id: Any, category_ids: list[int] | None = None) -> list[dict[str, Any]]:
        """The COCO results format: one {"image_id", "category_id", "bbox": [x, y, w, h], "score"} per detection."""
        ids = category_ids or list(range(1, 10**6))
        return [{"image_id": image_id, "category_id": int(ids[d.class_index]),
                 "bbox": [round(d.box[0], 2), round(d.box[1], 2), round(d.box[2] - d.box[0], 2), round(d.box[3] - d.box[1], 2)],
                 "score": round(d.score, 4)} for d in self.detections]


def box_targets(samples: list[dict[str, Any]]) -> list[dict[str, torch.Tensor]] | None:
    """Each sample's boxes (input pixels, after the transform) clipped to the input, and labels; boxes an
    augmentation squeezed to nothing are dropped with their labels. With the eval transform's geometry
    (no augmentation) every box is kept, however small, as COCO's evaluation counts it, and "geometry"
    holds (sx, sy, ox, oy, h, w): the metrics score in the original image's pixels with it."""
    if any(s.get("target") is None for s in samples):
        return None
    out = []
    for s in samples:
        boxes, labels = s["target"]["boxes"], s["target"]["labels"]
        h, w = boxes.canvas_size
        b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4).clone()
        b[:, 0::2] = b[:, 0::2].clamp(0, w)
        b[:, 1::2] = b[:, 1::2].clamp(0, h)
        g = s.get("geometry")
        keep = ((b[:, 2] - b[:, 0]) >= MIN_SIDE) & ((b[:, 3] - b[:, 1]) >= MIN_SIDE) if g is None else \
            (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        t = {"boxes": b[keep], "labels": torch.as_tensor(labels, dtype=torch.long).reshape(-1)[keep]}
        if g is not None:
            t["geometry"] = torch.tensor([*g.scale, *g.offset, *g.original_size], dtype=torch.float32)
        out.append(t)
    return out


class DeployedDetector(nn.Module):
    """The exported graph: the network plus the decoding, so the file's outputs are boxes and scores.

    boxes (B, N, 4): XYXY in the model's letterboxed input pixels, one per location; scores (B, N, C):
    sqrt(class probability x centerness) per class. What is left to do outside (the README's
    post-processing step, as zoo predict does it): keep scores above a threshold, per-class NMS, undo the
    letterbox. NMS stays outside because its output has a data-dependent size."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(x)
        return out["boxes"], location_scores(out)


class DetectTask(Task):
    name = "detect"
    description = "object detection: boxes with classes and scores (default: generated scenes of real photo crops)"
    output = DENSE
    # On the user's own data: a pretrained ResNet-18 under the FCOS head, head first, then unfrozen.
    # The embedded scenes carry their own recipe (see register_datasets).
    defaults = {"dataset": "detect-scenes", "backbone": DEFAULT_BACKBONES, "head": "fcos", "loss": "fcos", "mode": "staged",
                "freeze_epochs": 3, "epochs": 24, "batch_size": 16, "lr": 1e-3, "weight_decay": 1e-4,
                "augment": "standard", "image_size": 320, "clip_grad": 10.0}
    primary_metric = "val_map"
    primary_mode = "max"
    # Letterbox: the whole image is seen (a crop would cut objects near the edge off) and objects keep
    # their shape on wide and tall images.
    fit = FIT
    pipeline_tag = "object-detection"
    predict_options = (
        Setting("score_threshold", float, SHOW_SCORE, "Keep detections scoring at least this (0..1).", min=0.0, max=1.0,
                short="t", request=True),
        Setting("iou_threshold", float, NMS_IOU, "NMS: drop a box overlapping a better one of its class by more than "
                "this IoU.", min=0.0, max=1.0, request=True),
        Setting("max_detections", int, MAX_DETECTIONS, "At most this many detections per image.", min=1, max=10000,
                request=True),
    )


    def outputs_info(self, info: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        if not info.get("classes"):
            raise ZooError("the detection data names no classes")
        return {**info, "num_outputs": len(info["classes"])}

    def transforms(self, data_config: DataConfig, augment: str):
        """standard: random zoom (0.75-1.25) and shift (10%), horizontal flip, mild colour jitter; light: a
        smaller zoom and shift; none: the eval transform. Boxes move with the image; boxes pushed out of it
        are clipped, and dropped with their labels when nothing is left (SanitizeBoundingBoxes).
        Bilinear warps: torchvision's affine refuses bicubic, the interpolation of most timm models."""
        eval_tf = Preprocess(data_config, self.fit)
        bilinear = T.InterpolationMode.BILINEAR
        sanitize = T.SanitizeBoundingBoxes(min_size=MIN_SIDE, labels_getter=lambda s: s["target"]["labels"])
        if augment == "standard":
            ops = [T.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.75, 1.25), interpolation=bilinear),
                   T.RandomHorizontalFlip(), T.ColorJitter(0.2, 0.2, 0.2, 0.02), T.ClampBoundingBoxes(), sanitize]
        elif augment == "light":
            ops = [T.RandomAffine(degrees=0, translate=(0.05, 0.05), scale=(0.9, 1.1), interpolation=bilinear),
                   T.ClampBoundingBoxes(), sanitize]
        elif augment == "none":
            return eval_tf, eval_tf
        else:
            raise ZooError(f"unknown augment '{augment}': use one of standard, light, none")
        return Augment(ops, Preprocess(data_config, self.fit)), eval_tf

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        batch = collate_samples([{**s, "target": None} for s in samples])
        batch.targets = box_targets(samples)
        return batch

    def step(self, model: nn.Module, batch: Batch, loss_fn: Any, optimizer: str = "main") -> StepOutput:
        outputs = model(batch.inputs)
        # An exported file's outputs (Task.undeploy) are decoded boxes without the locations the loss
        # assigns objects to: its metrics are measured, its loss is not.
        loss = loss_fn(outputs, batch.targets) if "points" in outputs else torch.tensor(float("nan"))
        out = StepOutput.from_loss(loss)
        # the inputs: for the report's pictures; training: the metrics measure only a sample of training batches
        out.outputs = {**outputs, "inputs": batch.inputs, "training": model.training}
        return out

    def metrics(self, info: dict[str, Any], data_config: DataConfig | None = None) -> DetectionMetrics:
        dc = data_config  # the input size, and undoing the normalisation to draw the inputs
        return DetectionMetrics(info, functools.partial(input_to_image, data_config=dc) if dc is not None else None,
                                tuple(dc.input_size[1:]) if dc is not None else (320, 320))


    def predict(self, outputs: Any, geometry, info: dict[str, Any], score_threshold: float = SHOW_SCORE,
                iou_threshold: float = NMS_IOU, max_detections: int = MAX_DETECTIONS, **options: Any
                ) -> list[DetectionPrediction]:
        classes = info["classes"]
        # boxes clipped to the image inside the letterbox before NMS, as zoo eval scores them
        decoded = detections(outputs, score_threshold, iou_threshold, max_detections, regions=image_regions(geometry))
        out = []
        for det, g in zip(decoded, geometry):
            boxes = det["boxes"].cpu()
            if g is not None:
                boxes = g.to_original_boxes(boxes)
                h, w = g.original_size
            else:
                w = h = 0
            out.append(DetectionPrediction([Detection(b.tolist(), classes[int(c)], int(c), float(s))
                                            for b, c, s in zip(boxes, det["labels"], det["scores"])], (w, h)))
        return out

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        return DeployedDetector(model), ["boxes", "scores"]

    def undeploy(self, outputs: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Outputs that decode (boxes.detections) to the exported file's boxes and scores: the score as
        the class probability, with a centerness whose sigmoid is 1 (location_scores gives the score back)."""
        p = outputs["scores"].float().square().clamp(1e-12, 1 - 1e-7)
        return {"boxes": outputs["boxes"].float(), "logits": p.log() - (1 - p).log(),
                "centerness": torch.full(p.shape[:2], 40.0)}
