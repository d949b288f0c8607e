"""The keypoints task: K landmarks per image, learned as (x, y) in 0..1 of the model's input."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
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
    input_to_image,
)

from . import DEFAULT_BACKBONES
from .augment import augment_ops
from .draw import draw_landmarks
from .metrics import KeypointMetrics, split_outputs, to_pixels
from .points import FIT, KEYPOINTS


@dataclass
class PointsPrediction(Prediction):
    """One image's landmarks in its own pixels, and relative to its width and height. `inside` says
    which predicted points fall inside the image (a model always predicts every point)."""

    points: list[list[float]] = field(default_factory=list)  # (K, 2) x, y in original pixels
    names: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)  # (w, h) of the original image
    skeleton: list[list[int]] = field(default_factory=list)

    @property
    def points_normalized(self) -> list[list[float]]:
        w, h = self.image_size
        return [[x / max(w, 1), y / max(h, 1)] for x, y in self.points]

    @property
    def inside(self) -> list[bool]:
        w, h = self.image_size
        return [0 <= x <= w and 0 <= y <= h for x, y in self.points]

    def to_json(self) -> dict[str, Any]:
        return {"keypoints": {n: [round(x, 2), round(y, 2)] for n, (x, y) in zip(self.names, self.points)},
                "keypoints_normalized": {n: [round(x, 5), round(y, 5)] for n, (x, y) in
                                         zip(self.names, self.points_normalized)}}

    def caption(self) -> str:
        shown = "  ".join(f"{n} ({x:.0f}, {y:.0f})" for n, (x, y) in list(zip(self.names, self.points))[:4])
        more = f"  ... ({len(self.points)} points)" if len(self.points) > 4 else ""
        return shown + more

    def draw(self, image):
        """The points on the original image at its own resolution, joined by the data's skeleton."""
        return draw_landmarks(image, self.points, skeleton=self.skeleton)


def point_targets(samples: list[dict[str, Any]]) -> torch.Tensor | None:
    """Each sample's KeyPoints (input pixels, after the transform) as one (B, K, 3) tensor: x and y
    divided by the input's width and height, and visibility: labelled, and still inside the input
    after augmentation (a point rotated or cropped out of view has no position to learn)."""
    if any(s.get("target") is None for s in samples):
        return None
    rows = []
    for s in samples:
        t = s["target"]
        h, w = getattr(t["points"], "canvas_size", None) or tuple(s["image"].shape[-2:])
        xy = torch.as_tensor(t["points"], dtype=torch.float32).reshape(-1, 2)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        visible = t["visible"].bool() & inside
        norm = (xy / torch.tensor([w, h], dtype=torch.float32)).clamp(0, 1) * visible[:, None]
        rows.append(torch.cat([norm, visible[:, None].float()], dim=1))
    return torch.stack(rows)


class KeypointsTask(Task):
    name = "keypoints"
    description = "landmarks: K (x, y) points per image (default: drawn faces with 11 exact landmarks)"
    output = KEYPOINTS
    # On the user's own photos: a pretrained ResNet-18 with the heatmap head, head first, then unfrozen.
    # The embedded drawn-faces dataset carries its own recipe: see register_datasets.
    defaults = {"dataset": "drawn-faces", "backbone": DEFAULT_BACKBONES, "head": "heatmap", "loss": "keypoint-l1",
                "mode": "staged", "freeze_epochs": 3, "epochs": 30, "batch_size": 32, "lr": 1e-3,
                "augment": "standard", "image_size": 192}
    primary_metric = "val_nme"
    primary_mode = "min"
    # Letterbox: the whole image is seen (points near the edge survive, as a crop would lose them) and its
    # aspect ratio is kept (a face is not squashed differently on wide and tall images).
    fit = FIT
    pipeline_tag = "keypoint-detection"


    def outputs_info(self, info: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        return {**info, "num_outputs": 2 * len(info["keypoints"])}

    def transforms(self, data_config: DataConfig, augment: str):
        """standard: crop, rotation, zoom, shift and a flip that swaps left and right points (see
        augment.py); light: a smaller rotation, zoom and shift; none: the eval transform. The points move
        with the image as tv_tensors.KeyPoints; point_targets() masks those that left it.

        Built here rather than with image_transforms(): its flip would not swap left and right, and
        torchvision's affine refuses the bicubic interpolation most timm models ask for."""
        eval_tf = Preprocess(data_config, self.fit)
        if augment not in ("standard", "light", "none"):
            raise ZooError(f"unknown augment '{augment}': use one of standard, light, none")
        if augment == "none":
            return eval_tf, eval_tf
        return Augment(augment_ops(augment), Preprocess(data_config, self.fit)), eval_tf

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        batch = collate_samples([{**s, "target": None} for s in samples])
        batch.targets = point_targets(samples)
        return batch

    def step(self, model: nn.Module, batch: Batch, loss_fn: Any, optimizer: str = "main") -> StepOutput:
        points = model(batch.inputs)
        out = StepOutput.from_loss(loss_fn(points, batch.targets))
        # the inputs and geometry: for the report's pictures and for errors in original pixels
        out.outputs = {"points": points, "inputs": batch.inputs, "geometry": batch.geometry}
        return out

    def metrics(self, info: dict[str, Any], data_config: DataConfig | None = None) -> KeypointMetrics:
        dc = data_config  # the input size, and undoing the normalisation to draw the inputs
        size = tuple(dc.input_size[1:]) if dc is not None else (1, 1)
        return KeypointMetrics(info, size, functools.partial(input_to_image, data_config=dc) if dc is not None else None)

    def predict(self, outputs: Any, geometry, info: dict[str, Any], **options: Any) -> list[PointsPrediction]:
        points, _, _ = split_outputs(outputs)
        points = points.float().cpu().clamp(0, 1)
        names, skeleton = list(info["keypoints"]), list(info.get("skeleton") or [])
        out = []
        for xy, g in zip(points, geometry):
            if g is None:  # no geometry: the model input is all there is
                out.append(PointsPrediction(xy.tolist(), names, (1, 1), skeleton))
                continue
            h, w = g.original_size
            out.append(PointsPrediction(to_pixels(xy, g, g.input_size).tolist(), names, (w, h), skeleton))
        return out

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        """The model as trained: output "points", (B, K, 2) = (x, y) in 0..1 of the model's (letterboxed)
        input, in the order of the metadata's info.keypoints; multiply by the input width and height and
        undo the letterbox (scale and padding from the metadata's preprocessing) for original pixels."""
        return model, ["points"]
