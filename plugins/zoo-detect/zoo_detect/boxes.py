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


def location_scores(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, N, C) scores in 0..1: sqrt(class probability x centerness), as FCOS ranks its detections
    (the centerness pushes down boxes predicted from a location near an object's edge)."""
    return torch.sqrt(torch.sigmoid(outputs["logits"].float()) * torch.sigmoid(outputs["centerness"].float())[..., None])


def detections(outputs: dict[str, torch.Tensor], score_threshold: float = 0.05, iou_threshold: float = 0.5,
               max_detections: int = 100, pre_nms: int = 1000, input_size: tuple[int, int] | None = None
               ) -> list[dict[str, torch.Tensor]]:
    """Per image {"boxes": (K, 4) input pixels, "scores": (K,), "labels": (K,)}: every (location, class)
    scoring above the threshold, the best `pre_nms` of them, per-class NMS (torchvision's batched_nms),
    the best `max_detections` kept. Boxes are clipped to the input when its (h, w) is given."""
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
        if input_size is not None:
            h, w = input_size
            boxes = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w),
                                 boxes[:, 3].clamp(0, h)], dim=1)
        kept = batched_nms(boxes, s, labels, iou_threshold)[:max_detections]
        out.append({"boxes": boxes[kept], "scores": s[kept], "labels": labels[kept]})
    return out


def postprocess(boxes, scores, preprocessing: dict, image_size: tuple[int, int], score_threshold: float = 0.3,
                iou_threshold: float = 0.5, max_detections: int = 100) -> list[dict]:
    """The exported model's outputs for one image -> detections in its original pixels, exactly as
    `zoo predict` makes them: the post-processing step the ONNX file leaves out (README).

    boxes (N, 4) and scores (N, C) are one image's rows of the ONNX outputs; `preprocessing` is the file's
    zoo.preprocessing metadata (input_size, fit "pad"); image_size is the original (w, h)."""
    boxes, scores = torch.as_tensor(boxes, dtype=torch.float32), torch.as_tensor(scores, dtype=torch.float32)
    _, H, W = preprocessing["input_size"]
    w, h = image_size
    # 1. every (location, class) above the threshold, the best 1000, per-class NMS, the best max_detections
    flat = scores.reshape(-1)
    keep = torch.nonzero(flat > score_threshold).squeeze(1)
    if keep.numel() > 1000:
        keep = keep[flat[keep].topk(1000).indices]
    loc, labels, s = keep // scores.shape[1], keep % scores.shape[1], flat[keep]
    chosen = batched_nms(boxes[loc], s, labels, iou_threshold)[:max_detections]
    # 2. undo the letterbox: the image was scaled by r = min(H/h, W/w), rounded, and centred with padding
    r = min(H / h, W / w)
    w1, h1 = max(1, round(w * r)), max(1, round(h * r))
    left, top = (W - w1) // 2, (H - h1) // 2
    out = []
    for i in chosen.tolist():
        x0, y0, x1, y1 = boxes[loc[i]].tolist()
        box = [min(max((x0 - left) * w / w1, 0.0), w), min(max((y0 - top) * h / h1, 0.0), h),
               min(max((x1 - left) * w / w1, 0.0), w), min(max((y1 - top) * h / h1, 0.0), h)]
        out.append({"class_index": int(labels[i]), "score": float(s[i]), "box": box})
    return out
