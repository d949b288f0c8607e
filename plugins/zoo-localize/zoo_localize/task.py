"""The localize task: one box per image, learned as four numbers in 0..1 of the model's input."""

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
    StepOutput,
    Task,
    ZooError,
    collate_samples,
    draw_boxes,
    input_to_image,
)

from . import DEFAULT_BACKBONES
from .boxes import BOX, FIT, ordered
from .metrics import BoxMetrics, split_outputs


@dataclass
class BoxPrediction(Prediction):
    """One image's box, in the original image's pixels, and relative to its width and height."""

    box: list[float] = field(default_factory=list)  # x0, y0, x1, y1 in original pixels
    box_normalized: list[float] = field(default_factory=list)  # the same divided by (w, h, w, h)
    image_size: tuple[int, int] = (0, 0)  # (w, h) of the original image

    def to_json(self) -> dict[str, Any]:
        return {"box": [round(v, 2) for v in self.box], "box_normalized": [round(v, 5) for v in self.box_normalized]}

    def caption(self) -> str:
        x0, y0, x1, y1 = self.box
        return f"box ({x0:.0f}, {y0:.0f}) - ({x1:.0f}, {y1:.0f}), {x1 - x0:.0f}x{y1 - y0:.0f} px"

    def draw(self, image):
        return draw_boxes(image, [self.box], labels=[f"{self.box[2] - self.box[0]:.0f}x{self.box[3] - self.box[1]:.0f}"])


def box_targets(samples: list[dict[str, Any]]) -> torch.Tensor | None:
    """Each sample's BoundingBoxes (input pixels, after the transform) as one (B, 4) tensor normalised
    by the input's width and height, ordered and clipped to 0..1 (an augmented box stays valid)."""
    if any(s.get("target") is None for s in samples):
        return None
    rows = []
    for s in samples:
        t = s["target"]
        h, w = getattr(t, "canvas_size", None) or tuple(s["image"].shape[-2:])
        rows.append(torch.as_tensor(t, dtype=torch.float32).reshape(-1, 4)[0] / torch.tensor([w, h, w, h], dtype=torch.float32))
    return ordered(torch.stack(rows)).clamp(0, 1)


class LocalizeTask(Task):
    name = "localize"
    description = "single-object localisation: one box per image (default: real photos pasted on canvases)"
    output = BOX
    # On the user's own photos: a pretrained ResNet-18, head first, then unfrozen (as classify does).
    # The embedded pasted-objects dataset carries its own recipe: see register_datasets.
    defaults = {"dataset": "pasted-objects", "backbone": DEFAULT_BACKBONES, "head": "box-grid", "loss": "l1-giou",
                "mode": "staged", "freeze_epochs": 2, "epochs": 15, "batch_size": 32, "lr": 1e-3,
                "augment": "standard"}
    primary_metric = "val_mean_iou"
    primary_mode = "max"
    # Letterbox: the whole image is seen (a box near the edge is never cut off, as a crop would) and its
    # aspect ratio is kept (objects are not squashed differently on wide and tall images, as "stretch" does).
    fit = FIT
    pipeline_tag = "object-detection"


    def transforms(self, data_config: DataConfig, augment: str):
        """standard: a random zoom (0.8-1.15) and shift (10%) and a horizontal flip; light: a smaller zoom
        and shift, no flip; none: the eval transform. No rotation: a rotated box's enclosing box is
        looser than the object, so the target would lie. The box moves with the image and is clipped to
        it by torchvision (box_targets clips it to 0..1 again).

        Built here rather than with image_transforms(), whose light augmentation rotates. Bilinear warps:
        torchvision's affine refuses bicubic (efficientnet_lite0, most timm models)."""
        eval_tf = Preprocess(data_config, self.fit)
        bilinear = T.InterpolationMode.BILINEAR
        if augment == "standard":
            ops = [T.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.8, 1.15), interpolation=bilinear),
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
        batch.targets = box_targets(samples)
        return batch

    def step(self, model: nn.Module, batch: Batch, loss_fn: Any, optimizer: str = "main") -> StepOutput:
        boxes = model(batch.inputs)
        out = StepOutput.from_loss(loss_fn(boxes, batch.targets))
        out.outputs = {"box": boxes, "inputs": batch.inputs}  # the inputs: for the report's pictures
        return out

    def metrics(self, info: dict[str, Any], data_config: DataConfig | None = None) -> BoxMetrics:
        # data_config undoes the normalisation when the metrics draw the inputs
        return BoxMetrics(info, functools.partial(input_to_image, data_config=data_config) if data_config is not None else None)

    def predict(self, outputs: Any, geometry, info: dict[str, Any], **options: Any) -> list[BoxPrediction]:
        boxes, _ = split_outputs(outputs)
        boxes = ordered(boxes.float().cpu()).clamp(0, 1)
        out = []
        for box, g in zip(boxes, geometry):
            if g is None:  # no geometry: the model input is all there is
                out.append(BoxPrediction(box.tolist(), box.tolist(), (1, 1)))
                continue
            H, W = g.input_size
            original = g.to_original_boxes(box * torch.tensor([W, H, W, H], dtype=torch.float32))
            h, w = g.original_size
            out.append(BoxPrediction(original.tolist(), (original / torch.tensor([w, h, w, h], dtype=torch.float32)).tolist(),
                                     (w, h)))
        return out

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        """The model as trained: its head ends in a sigmoid, so the output "box" is (B, 4) = (x0, y0, x1, y1)
        in 0..1 of the model's (letterboxed) input; multiply by the input width and height and undo the
        letterbox (scale and padding from the metadata's preprocessing) for original pixels."""
        return model, ["box"]
