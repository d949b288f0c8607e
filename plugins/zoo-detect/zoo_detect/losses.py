"""Detection losses on the dense output (boxes.py): which location answers for which object, then
torchvision's focal loss (classes), generalised IoU loss (boxes) and a BCE (centerness/confidence).

fcos: FCOS's assignment, as torchvision's FCOS model computes it: a location is positive for an object
when it lies inside the box and within 1.5 strides of its centre ("centre sampling"), and the object's
size (its largest distance from the location to a side) suits the location's level (4 to 8 strides, the
shallowest level taking everything smaller and the deepest everything larger); a location claimed by
two objects takes the smaller. Sums are divided by the number of positives, as in FCOS.

grid: the textbook grid detector's: the cell holding an object's centre answers for it; L1 on the box
(normalised by the input size) plus GIoU, BCE on the class and on the confidence of every cell."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss
from zoo_core import ZooError


def fcos_assign(points: torch.Tensor, strides: torch.Tensor, boxes: torch.Tensor, radius: float = 1.5) -> torch.Tensor:
    """(N,) index of the object each location answers for, -1 for background."""
    n = points.shape[0]
    if boxes.numel() == 0:
        return torch.full((n,), -1, dtype=torch.long, device=points.device)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    near_centre = (points[:, None, :] - centres[None]).abs().max(dim=2).values < radius * strides[:, None]
    x, y = points[:, 0:1], points[:, 1:2]
    dist = torch.stack([x - boxes[None, :, 0], y - boxes[None, :, 1], boxes[None, :, 2] - x, boxes[None, :, 3] - y], dim=2)
    inside = dist.min(dim=2).values > 0
    lower, upper = strides * 4, strides * 8
    lower = torch.where(strides == strides.min(), torch.zeros_like(lower), lower)
    upper = torch.where(strides == strides.max(), torch.full_like(upper, float("inf")), upper)
    reach = dist.max(dim=2).values
    match = near_centre & inside & (reach > lower[:, None]) & (reach < upper[:, None])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    score = match.float() * (1e8 - areas[None])  # the smallest matching object wins
    best, idx = score.max(dim=1)
    idx[best < 1e-5] = -1
    return idx


def grid_assign(points: torch.Tensor, strides: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(N,) index of the object whose centre lies in each location's cell, -1 for none (the larger of two)."""
    n = points.shape[0]
    idx = torch.full((n,), -1, dtype=torch.long, device=points.device)
    if boxes.numel() == 0:
        return idx
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = ((points[:, None, :] - centres[None]).abs() <= strides[:, None, None] / 2).all(dim=2)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    score = inside.float() * (1 + areas[None])
    best, j = score.max(dim=1)
    idx[best > 0] = j[best > 0]
    return idx


def _targets(outputs, targets, assign):
    """Per location of the batch: the matched object's box (B, N, 4) and label (B, N), -1 for background."""
    points, strides = outputs["points"], outputs["strides"]
    matched_boxes, matched_labels = [], []
    for t in targets:
        boxes, labels = t["boxes"].float(), t["labels"].long()
        idx = assign(points, strides, boxes)
        if len(boxes):
            safe = idx.clamp(min=0)
            matched_boxes.append(boxes[safe])
            matched_labels.append(torch.where(idx >= 0, labels[safe], idx))
        else:
            matched_boxes.append(points.new_zeros(len(points), 4))
            matched_labels.append(idx)
    return torch.stack(matched_boxes), torch.stack(matched_labels)


def centerness_target(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    x, y = points[:, 0], points[:, 1]
    l, t, r, b = x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y
    lr, tb = torch.stack([l, r], 1).clamp(min=1e-6), torch.stack([t, b], 1).clamp(min=1e-6)
    return torch.sqrt((lr.min(1).values / lr.max(1).values) * (tb.min(1).values / tb.max(1).values))


class FCOSLoss:
    def __init__(self, box_weight: float, radius: float, alpha: float, gamma: float):
        self.box_weight, self.radius, self.alpha, self.gamma = box_weight, radius, alpha, gamma

    def __call__(self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        logits, boxes, ctr = outputs["logits"].float(), outputs["boxes"].float(), outputs["centerness"].float()
        gt_boxes, gt_labels = _targets(outputs, targets, lambda p, s, b: fcos_assign(p, s, b, self.radius))
        fg = gt_labels >= 0
        num_fg = max(1.0, float(fg.sum()))
        cls_target = torch.zeros_like(logits)
        cls_target[fg, gt_labels[fg]] = 1.0
        loss_cls = sigmoid_focal_loss(logits, cls_target, alpha=self.alpha, gamma=self.gamma, reduction="sum") / num_fg
        if fg.any():
            loss_box = generalized_box_iou_loss(boxes[fg], gt_boxes[fg], reduction="sum") / num_fg
            points = outputs["points"][None].expand(fg.shape[0], -1, -1)[fg]
            loss_ctr = F.binary_cross_entropy_with_logits(ctr[fg], centerness_target(points, gt_boxes[fg]), reduction="sum") / num_fg
        else:  # a batch of background images: keep the graph, with nothing to pull towards
            loss_box = loss_ctr = boxes.sum() * 0.0
        return {"cls": loss_cls, "box": self.box_weight * loss_box, "centerness": loss_ctr}


def fcos_loss(info: dict[str, Any], box_weight: float = 1.0, radius: float = 1.5, alpha: float = 0.25,
              gamma: float = 2.0) -> FCOSLoss:
    if box_weight < 0 or radius <= 0 or not 0 <= alpha <= 1 or gamma < 0:
        raise ZooError("loss 'fcos' options: need box_weight >= 0, radius > 0, 0 <= alpha <= 1, gamma >= 0; "
                       f"got {box_weight}, {radius}, {alpha}, {gamma}")
    return FCOSLoss(box_weight, radius, alpha, gamma)


class GridLoss:
    def __init__(self, l1_weight: float):
        self.l1_weight = l1_weight

    def __call__(self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        logits, boxes, conf = outputs["logits"].float(), outputs["boxes"].float(), outputs["centerness"].float()
        gt_boxes, gt_labels = _targets(outputs, targets, grid_assign)
        fg = gt_labels >= 0
        num_fg = max(1.0, float(fg.sum()))
        loss_conf = F.binary_cross_entropy_with_logits(conf, fg.float(), reduction="sum") / num_fg
        if fg.any():
            cls_target = F.one_hot(gt_labels[fg], logits.shape[-1]).float()
            loss_cls = F.binary_cross_entropy_with_logits(logits[fg], cls_target, reduction="sum") / num_fg
            scale = outputs["strides"].max() * 3  # about the input size
            loss_l1 = F.l1_loss(boxes[fg] / scale, gt_boxes[fg] / scale, reduction="sum") / num_fg
            loss_giou = generalized_box_iou_loss(boxes[fg], gt_boxes[fg], reduction="sum") / num_fg
        else:
            loss_cls = loss_l1 = loss_giou = logits.sum() * 0.0
        return {"cls": loss_cls, "confidence": loss_conf, "l1": self.l1_weight * loss_l1, "giou": loss_giou}


def grid_loss(info: dict[str, Any], l1_weight: float = 5.0) -> GridLoss:
    if l1_weight < 0:
        raise ZooError(f"loss 'grid' option l1_weight must be >= 0, got {l1_weight}")
    return GridLoss(l1_weight)
