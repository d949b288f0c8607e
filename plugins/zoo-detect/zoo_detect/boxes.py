"""The dense output every detection head produces, and how it becomes detections.

Output kind "detection/dense": a head returns, for a batch, one row per location of its feature maps:

    {"logits": (B, N, C) class logits, "boxes": (B, N, 4) decoded XYXY boxes in model-input pixels,
     "centerness": (B, N) logits of how central the location is in its box (a quality score),
     "points": (N, 2) the locations' (x, y) in input pixels, "strides": (N,) their feature map's stride}

so a loss can assign ground truth to locations and the metrics, predictions and export decode it the
same way, whatever the head's inside (FCOS towers on an FPN, a 3x3 grid)."""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms

from . import DENSE  # noqa: F401  (declared with the registration, which imports no torch)
FIT = "pad"  # letterbox: the whole image is seen, so no object is cut off (see DetectTask.fit)
# The decoding's defaults, one source for zoo predict, zoo eval, detect-results and the ONNX post-processing
# (README "Boxes"): per-class NMS at IoU 0.6 (FCOS's and torchvision's detectors' value); COCO evaluation
# keeps every detection scoring above 0.05, at most 100 per image; zoo predict shows those above 0.3.
NMS_IOU = 0.6
EVAL_SCORE = 0.05
SHOW_SCORE = 0.3
MAX_DETECTIONS = 100
PRE_NMS = 1000  # the best (location, class) pairs NMS sees


def location_scores(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, N, C) scores in 0..1: sqrt(class probability x centerness), as FCOS ranks its detections
    (the centerness pushes down boxes predicted from a location near an object's edge)."""
    return torch.sqrt(torch.sigmoid(outputs["logits"].float()) * torch.sigmoid(outputs["centerness"].float())[..., None])


def image_regions(geometry) -> torch.Tensor | None:
    """(B, 4) XYXY of each image inside its letterboxed input (input pixels), from the batch's Geometry
    list; None when any is unknown (a training batch: augmentation moved the image)."""
    if not geometry or any(g is None for g in geometry):
        return None
    return torch.tensor([[g.offset[0], g.offset[1], g.offset[0] + g.original_size[1] * g.scale[0],
                          g.offset[1] + g.original_size[0] * g.scale[1]] for g in geometry], dtype=torch.float32)


def clip(boxes: torch.Tensor, region) -> torch.Tensor:
    """(K, 4) XYXY boxes clipped to region (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (float(v) for v in region)
    return torch.stack([boxes[:, 0].clamp(x0, x1), boxes[:, 1].clamp(y0, y1), boxes[:, 2].clamp(x0, x1),
                        boxes[:, 3].clamp(y0, y1)], dim=1)


def detections(outputs: dict[str, torch.Tensor], score_threshold: float = EVAL_SCORE, iou_threshold: float = NMS_IOU,
               max_detections: int = MAX_DETECTIONS, pre_nms: int = PRE_NMS, input_size: tuple[int, int] | None = None,
               regions: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
    """Per image {"boxes": (K, 4) input pixels, "scores": (K,), "labels": (K,)}: every (location, class)
    scoring above the threshold, the best `pre_nms` of them, their boxes clipped to the image (`regions`:
    each image's place inside the letterbox; else the whole (h, w) `input_size` when given), per-class NMS
    (torchvision's batched_nms), the best `max_detections` kept. The one decoding of zoo predict, zoo eval,
    detect-results and the ONNX post-processing."""
    scores = location_scores(outputs)
    boxes_all = outputs["boxes"].float()
    B, N, C = scores.shape
    out = []
    for b in range(B):
        flat = scores[b].reshape(-1)
        keep = torch.nonzero(flat > score_threshold).squeeze(1)
        if keep.numel() > pre_nms:
            keep = keep[flat[keep].topk(pre_nms).indices]
        s = flat[keep]
        loc, labels = keep // C, keep % C
        boxes = boxes_all[b, loc]
        if regions is not None:
            boxes = clip(boxes, regions[b])
        elif input_size is not None:
            boxes = clip(boxes, (0, 0, input_size[1], input_size[0]))
        kept = batched_nms(boxes, s, labels, iou_threshold)[:max_detections]
        out.append({"boxes": boxes[kept], "scores": s[kept], "labels": labels[kept]})
    return out


def postprocess(boxes, scores, preprocessing: dict, image_size: tuple[int, int], score_threshold: float = SHOW_SCORE,
                iou_threshold: float = NMS_IOU, max_detections: int = MAX_DETECTIONS) -> list[dict]:
    """The exported model's outputs for one image -> detections in its original pixels, exactly as
    `zoo predict` makes them: the post-processing step the ONNX file leaves out (README).

    boxes (N, 4) and scores (N, C) are one image's rows of the ONNX outputs; `preprocessing` is the file's
    zoo.preprocessing metadata (input_size, fit "pad"); image_size is the original (w, h)."""
    boxes, scores = torch.as_tensor(boxes, dtype=torch.float32), torch.as_tensor(scores, dtype=torch.float32)
    _, H, W = preprocessing["input_size"]
    w, h = image_size
    # 1. where the image lies in the letterbox: scaled by r = min(H/h, W/w), rounded, centred, padded
    r = min(H / h, W / w)
    w1, h1 = max(1, round(w * r)), max(1, round(h * r))
    left, top = (W - w1) // 2, (H - h1) // 2
    # 2. every (location, class) above the threshold, the best 1000, boxes clipped to the image, per-class
    #    NMS, the best max_detections
    flat = scores.reshape(-1)
    keep = torch.nonzero(flat > score_threshold).squeeze(1)
    if keep.numel() > PRE_NMS:
        keep = keep[flat[keep].topk(PRE_NMS).indices]
    loc, labels, s = keep // scores.shape[1], keep % scores.shape[1], flat[keep]
    clipped = clip(boxes[loc], (left, top, left + w1, top + h1))
    chosen = batched_nms(clipped, s, labels, iou_threshold)[:max_detections]
    # 3. undo the letterbox: back to the original pixels
    out = []
    for i in chosen.tolist():
        x0, y0, x1, y1 = clipped[i].tolist()
        box = [min(max((x0 - left) * w / w1, 0.0), w), min(max((y0 - top) * h / h1, 0.0), h),
               min(max((x1 - left) * w / w1, 0.0), w), min(max((y1 - top) * h / h1, 0.0), h)]
        out.append({"class_index": int(labels[i]), "score": float(s[i]), "box": box})
    return out
