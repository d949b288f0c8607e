"""Landmark metrics over an epoch, each next to the mean-shape baseline (the mean training shape
predicted for every image):

- mean_px_error: the mean distance between predicted and true visible points, in the original image's
  pixels (in the model input's pixels for training batches, whose geometry augmentation changed);
- nme: per image, that mean distance divided by a reference length, averaged over images: the
  inter-ocular distance when the data names its eye points (both visible), else the diagonal of the
  visible points' bounding box; scale-free, so small and large faces count alike;
- pck05: the share of visible points closer than 0.05 x that reference length to the truth.

The step hands over {"points": (B, K, 2), "inputs": (B, C, H, W), "geometry": [...]} (KeypointsTask.step):
the first validation images are kept, small, so that report() draws predicted (dots) and true
(crosses) points on exactly what the model saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from zoo_core import Metrics, image_grid, write_json

from .draw import draw_landmarks

KEEP = 16  # images kept for the report
DRAW_SIZE = 224  # images are enlarged to at least this many pixels before points are drawn
PCK = 0.05


def split_outputs(outputs: Any) -> tuple[torch.Tensor, Any, list]:
    """(points, inputs or None, geometry list) from a step's outputs, or from a bare (B, K, 2) tensor."""
    if isinstance(outputs, dict):
        return outputs["points"], outputs.get("inputs"), outputs.get("geometry") or []
    return outputs, None, []


def to_pixels(xy: torch.Tensor, geometry, input_size: tuple[int, int]) -> torch.Tensor:
    """(K, 2) in 0..1 of the model input -> original-image pixels (input pixels without a geometry)."""
    h, w = geometry.input_size if geometry is not None else input_size
    px = xy.float() * torch.tensor([w, h], dtype=torch.float32)
    return geometry.to_original_points(px) if geometry is not None else px


class KeypointMetrics(Metrics):
    def __init__(self, info: dict[str, Any], input_size: tuple[int, int] = (1, 1),
                 to_pil: Callable[[torch.Tensor], Any] | None = None):
        self.names = list(info["keypoints"])
        self.eyes = info.get("eyes")
        self.skeleton = info.get("skeleton") or []
        mean = info.get("mean_shape")
        self.mean_shape = torch.tensor(mean, dtype=torch.float32) if mean else None
        self.input_size = tuple(input_size)
        self.to_pil = to_pil
        self.reset()

    def reset(self) -> None:
        # per image: errors (K,) in pixels for model and baseline, visibility (K,), reference length
        self.errors: list[torch.Tensor] = []
        self.baseline: list[torch.Tensor] = []
        self.visible: list[torch.Tensor] = []
        self.reference: list[float] = []
        self.by_eyes = 0
        self.kept: list[tuple[Any, torch.Tensor, torch.Tensor]] = []  # (input image, predicted, true (K, 3))

    def _reference(self, true_px: torch.Tensor, visible: torch.Tensor) -> float:
        if self.eyes is not None and bool(visible[self.eyes[0]]) and bool(visible[self.eyes[1]]):
            self.by_eyes += 1
            return float((true_px[self.eyes[0]] - true_px[self.eyes[1]]).norm())
        pts = true_px[visible]
        if len(pts) < 2:
            return float("nan")
        return float((pts.max(0).values - pts.min(0).values).norm())

    def update(self, outputs: Any, targets: torch.Tensor) -> None:
        points, inputs, geometry = split_outputs(outputs)
        points, targets = points.float().cpu(), targets.float().cpu()
        for i in range(len(points)):
            g = geometry[i] if i < len(geometry) else None
            visible = targets[i, :, 2] > 0.5
            true_px = to_pixels(targets[i, :, :2], g, self.input_size)
            self.errors.append((to_pixels(points[i], g, self.input_size) - true_px).norm(dim=-1))
            if self.mean_shape is not None:
                self.baseline.append((to_pixels(self.mean_shape, g, self.input_size) - true_px).norm(dim=-1))
            self.visible.append(visible)
            self.reference.append(self._reference(true_px, visible))
            if len(self.kept) < KEEP:
                image = inputs[i].cpu().clone() if isinstance(inputs, torch.Tensor) and inputs.dim() == 4 else None
                self.kept.append((image, points[i].clone(), targets[i].clone()))

    def _scores(self, errors: list[torch.Tensor]) -> dict[str, float]:
        if not errors:
            return {"mean_px_error": 0.0, "nme": 0.0, "pck05": 0.0}
        err, vis = torch.stack(errors), torch.stack(self.visible)
        ref = torch.tensor(self.reference)
        usable = torch.isfinite(ref) & (ref > 0) & vis.any(1)
        n_points = max(1, int(vis.sum()))
        per_image = (err * vis).sum(1) / vis.sum(1).clamp(min=1)
        nme = (per_image[usable] / ref[usable]).mean() if usable.any() else torch.tensor(0.0)
        within = (err < PCK * ref[:, None]) & vis & usable[:, None]
        return {"mean_px_error": float((err * vis).sum()) / n_points, "nme": float(nme),
                "pck05": float(within.sum()) / max(1, int((vis & usable[:, None]).sum()))}

    def compute(self) -> dict[str, float]:
        out = self._scores(self.errors)
        if self.baseline:
            out.update({f"baseline_{k}": v for k, v in self._scores(self.baseline).items()})
        return out

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"images": len(self.errors), "points": int(torch.stack(self.visible).sum()) if self.visible else 0,
                               "nme_reference": ("inter-ocular distance" if self.eyes is not None else "bounding-box diagonal"),
                               "images_normalised_by_eyes": self.by_eyes}
        if self.errors:
            vis = torch.stack(self.visible).float()
            per_point = lambda errs: ((torch.stack(errs) * vis).sum(0) / vis.sum(0).clamp(min=1)).tolist()  # noqa: E731
            out["per_keypoint_px_error"] = {n: round(v, 3) for n, v in zip(self.names, per_point(self.errors))}
            if self.baseline:
                out["per_keypoint_baseline_px_error"] = {n: round(v, 3) for n, v in zip(self.names, per_point(self.baseline))}
        return out

    def table(self) -> str:
        d = self.details()
        if not d["images"]:
            return ""
        base = d.get("per_keypoint_baseline_px_error")
        width = max(8, *(len(n) for n in self.names))
        lines = [f"{'keypoint':<{width}}  {'model px':>8}" + (f"  {'mean shape px':>13}" if base else "")]
        for n, v in d["per_keypoint_px_error"].items():
            lines.append(f"{n:<{width}}  {v:8.2f}" + (f"  {base[n]:13.2f}" if base else ""))
        lines.append(f"(NME reference: {d['nme_reference']})")
        return "\n".join(lines)

    def report(self, run_dir, prefix: str = "") -> list[str]:
        run_dir = Path(run_dir)
        written = [str(write_json(run_dir / f"{prefix}keypoints_report.json", {**self.compute(), **self.details()}))]
        if self.kept:
            pictures, titles = [], []
            for image, pred, true in self.kept:
                pil = self._picture(image)
                scale = torch.tensor([pil.width, pil.height], dtype=torch.float32)
                visible = (true[:, 2] > 0.5).tolist()
                drawn = draw_landmarks(pil, (true[:, :2] * scale).tolist(), self.skeleton, visible, colour=2, marker="cross")
                drawn = draw_landmarks(drawn, (pred * scale).tolist(), self.skeleton, colour=0)
                pictures.append(drawn)
                err = ((pred - true[:, :2]) * scale).norm(dim=-1)[torch.tensor(visible)]
                titles.append(f"mean error {float(err.mean()) / float(scale.max()) * 100:.1f}% of side" if len(err) else "")
            written.append(str(image_grid(pictures, run_dir / f"{prefix}val_keypoints.png", columns=4, cell=240,
                                          titles=titles)))
        return written

    def _picture(self, image: torch.Tensor | None):
        """The model's input as a PIL image (normalisation undone), enlarged for drawing; a grey square
        when the inputs were not images (cached features)."""
        from PIL import Image

        if image is None or image.shape[0] not in (1, 3):
            return Image.new("RGB", (DRAW_SIZE, DRAW_SIZE), (200, 200, 200))
        if self.to_pil is not None:
            pil = self.to_pil(image)
        else:
            lo, hi = float(image.min()), float(image.max())
            arr = ((image - lo) / max(hi - lo, 1e-6) * 255).round().clamp(0, 255).byte()
            pil = Image.fromarray(arr.permute(1, 2, 0).squeeze(-1).numpy())
        k = max(1, -(-DRAW_SIZE // max(pil.size)))
        return pil.convert("RGB").resize((pil.width * k, pil.height * k), Image.BICUBIC) if k > 1 else pil.convert("RGB")
