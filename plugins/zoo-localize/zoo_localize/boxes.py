"""Box arithmetic shared by heads, losses, metrics and datasets. Boxes are (x0, y0, x1, y1)."""

from __future__ import annotations

import torch

from . import BOX  # noqa: F401  (the output kind, declared with the registration, which imports no torch)
FIT = "pad"  # how images are fitted to the model's input (letterbox): see LocalizeTask.fit


def ordered(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) boxes with x0 <= x1 and y0 <= y1 (min/max keep gradients flowing to both corners)."""
    a, b = boxes[..., 0::2], boxes[..., 1::2]  # (x0, x1), (y0, y1)
    x0, x1 = torch.minimum(a[..., 0], a[..., 1]), torch.maximum(a[..., 0], a[..., 1])
    y0, y1 = torch.minimum(b[..., 0], b[..., 1]), torch.maximum(b[..., 0], b[..., 1])
    return torch.stack([x0, y0, x1, y1], dim=-1)


def paired_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """IoU of a[i] with b[i] for (N, 4) boxes (not the N x N matrix torchvision's box_iou gives)."""
    a, b = ordered(a.float()), ordered(b.float())
    w = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    h = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = w * h
    area = lambda t: (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=eps)


def mean_input_box(boxes: list[list[float]], sizes: list[tuple[int, int]], data_config) -> list[float]:
    """The mean of `boxes` (original pixels, images of `sizes` (h, w)) as the model sees them after the
    evaluation fit, normalised to its input: the box a model that learned nothing but the average
    would predict for every image (the baseline of the metrics). Each size's geometry is taken from
    zoo's own Preprocess, so it is the letterbox the model sees."""
    from zoo_core import Preprocess

    if not boxes:
        return [0.25, 0.25, 0.75, 0.75]
    fit = Preprocess(data_config, FIT)
    c, H, W = data_config.input_size
    geometries = {}
    total = torch.zeros(4, dtype=torch.float64)
    for box, (h, w) in zip(boxes, sizes):
        if (h, w) not in geometries:
            geometries[(h, w)] = fit({"image": torch.zeros(c, h, w, dtype=torch.uint8)})["geometry"]
        g = geometries[(h, w)]
        sx, sy = g.scale
        ox, oy = g.offset
        x0, y0, x1, y1 = box
        total += torch.tensor([(x0 * sx + ox) / W, (y0 * sy + oy) / H, (x1 * sx + ox) / W, (y1 * sy + oy) / H],
                              dtype=torch.float64)
    return [round(float(v), 6) for v in (total / len(boxes)).clamp(0, 1)]
