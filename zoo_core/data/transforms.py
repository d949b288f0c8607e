"""From a raw sample to what the model eats, and back to the original image's pixels.

A sample is a dict: "image" (PIL image or tv_tensors.Image), "target" (anything; geometric targets as
torchvision tv_tensors, e.g. BoundingBoxes, KeyPoints, Mask, so that every v2 transform moves them with
the image), optionally "id". `Preprocess` fits an image to the model's input ("crop", "pad" or
"stretch"), normalises it and records a `Geometry`: the affine map from original pixels to input
pixels, so predictions go back to the original image exactly. Prediction uses the eval transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import default_collate
from torchvision import tv_tensors
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from ..base.errors import ZooError
from .types import Batch, DataConfig

INTERPOLATION = {"nearest": T.InterpolationMode.NEAREST, "bilinear": T.InterpolationMode.BILINEAR,
                 "bicubic": T.InterpolationMode.BICUBIC}
AUGMENTATIONS = ("standard", "light", "none")
FITS = ("crop", "pad", "stretch", "native")


@dataclass(frozen=True)
class Geometry:
    """input_xy = original_xy * scale + offset, for an image of original_size (h, w) fitted to input_size (h, w)."""

    original_size: tuple[int, int]
    input_size: tuple[int, int]
    scale: tuple[float, float]  # (sx, sy)
    offset: tuple[float, float]  # (ox, oy)

    def to_original_points(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) input-pixel coordinates -> original-image pixels."""
        xy = torch.as_tensor(xy, dtype=torch.float32)
        scale, offset = xy.new_tensor(self.scale), xy.new_tensor(self.offset)
        return (xy - offset) / scale

    def to_original_boxes(self, xyxy: torch.Tensor) -> torch.Tensor:
        """(..., 4) input-pixel boxes -> original-image pixels, clipped to the image."""
        xyxy = torch.as_tensor(xyxy, dtype=torch.float32)
        pts = self.to_original_points(xyxy.reshape(*xyxy.shape[:-1], 2, 2)).reshape(xyxy.shape)
        h, w = self.original_size
        return torch.stack([pts[..., 0].clamp(0, w), pts[..., 1].clamp(0, h), pts[..., 2].clamp(0, w),
                            pts[..., 3].clamp(0, h)], dim=-1)

    def to_original_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(..., H_in, W_in) input-space map (labels or scores) -> (..., h, w) original pixels, nearest
        neighbour; pixels the input never saw (cropped away) are 0."""
        mask = torch.as_tensor(mask)
        h, w = self.original_size
        hi, wi = mask.shape[-2:]
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) * self.scale[1] + self.offset[1]
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) * self.scale[0] + self.offset[0]
        yi, xi = ys.floor().long(), xs.floor().long()
        inside = ((yi >= 0) & (yi < hi))[:, None] & ((xi >= 0) & (xi < wi))[None, :]
        out = mask[..., yi.clamp(0, hi - 1)[:, None], xi.clamp(0, wi - 1)[None, :]]
        return out * inside.to(out.dtype) if out.dtype != torch.bool else out & inside

    def to_dict(self) -> dict[str, Any]:
        return {"original_size": list(self.original_size), "input_size": list(self.input_size),
                "scale": list(self.scale), "offset": list(self.offset)}


def image_size_of(image: Any) -> tuple[int, int]:
    """(h, w) of a PIL image or a (..., H, W) tensor."""
    h, w = TF.get_size(image)
    return int(h), int(w)


def to_sample(image: Any, target: Any = None, id: str = "") -> dict[str, Any]:
    """A raw sample with the image as a tv_tensors.Image, so that plain tensors in the target pass
    through v2 transforms untouched (v2 treats a bare tensor as the image only when there is none)."""
    if not isinstance(image, tv_tensors.Image):
        image = TF.to_image(image)
    return {"image": image, "target": target, "id": id}


class Preprocess:
    """Fit an image (and its targets) to the model's input and normalise it, recording the Geometry.

    crop: the shorter side to size/crop_pct, keeping the aspect ratio, then the centre crop (timm's
          ImageNet evaluation; classification).
    pad:  the longer side to size, keeping the aspect ratio, then pad to a square with the mean colour
          (normalised to 0): the whole image is seen, nothing is cut off.
    stretch: resize to the input size exactly; the aspect ratio is not kept, the whole image is seen.
    native: no resizing at all (the input size is only the training crop's): padded right and below by
          repeating the last row and column, to a multiple of the backbone's deepest stride
          (DataConfig.stride), so an image-valued output cropped to Geometry.original_size is the image's
          own pixels, undisturbed near the edge."""

    def __init__(self, dc: DataConfig, fit: str = "crop"):
        if fit not in FITS:
            raise ZooError(f"unknown fit '{fit}': use one of {', '.join(FITS)}")
        self.dc, self.fit = dc, fit
        self.interp = INTERPOLATION.get(dc.interpolation, T.InterpolationMode.BILINEAR)
        self.finish = T.Compose([T.ToDtype(torch.float32, scale=True), T.Normalize(dc.mean, dc.std)])

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample = to_sample(sample["image"], sample.get("target"), sample.get("id", ""))
        h0, w0 = image_size_of(sample["image"])
        _, H, W = self.dc.input_size
        if self.fit == "native":
            m = max(1, self.dc.stride)
            H, W = -(-h0 // m) * m, -(-w0 // m) * m
            if (H, W) != (h0, w0):  # the border repeated: a flat colour would make an edge the model answers to
                sample = T.Pad([0, 0, W - w0, H - h0], padding_mode="edge")(sample)
            h1, w1, ox, oy = h0, w0, 0.0, 0.0
        elif self.fit == "stretch":
            sample = T.Resize((H, W), interpolation=self.interp, antialias=True)(sample)
            ox = oy = 0.0
            h1, w1 = H, W
        elif self.fit == "pad":
            r = min(H / h0, W / w0)
            h1, w1 = max(1, round(h0 * r)), max(1, round(w0 * r))
            sample = T.Resize((h1, w1), interpolation=self.interp, antialias=True)(sample)
            left, top = (W - w1) // 2, (H - h1) // 2
            fill = {tv_tensors.Image: [round(m * 255) for m in self.dc.mean], "others": 0}
            sample = T.Pad([left, top, W - w1 - left, H - h1 - top], fill=fill)(sample)
            ox, oy = float(left), float(top)
        else:
            if H == W:  # the shorter side to size/crop_pct, as torchvision's Resize(int) computes it
                short = int(H / self.dc.crop_pct)
                h1, w1 = (short, int(short * w0 / h0)) if h0 <= w0 else (int(short * h0 / w0), short)
            else:
                h1, w1 = int(H / self.dc.crop_pct), int(W / self.dc.crop_pct)
            sample = T.Resize((h1, w1), interpolation=self.interp, antialias=True)(sample)
            sample = T.CenterCrop((H, W))(sample)
            ox = (W - w1) // 2 if W > w1 else -int(round((w1 - W) / 2.0))
            oy = (H - h1) // 2 if H > h1 else -int(round((h1 - H) / 2.0))
        sample["image"] = self.finish(sample["image"])
        sample["geometry"] = Geometry((h0, w0), (H, W), (w1 / w0, h1 / h0), (float(ox), float(oy)))
        return sample


def input_to_image(image: torch.Tensor, data_config: DataConfig):
    """A model input (C, H, W), normalised as `data_config` says, back to the PIL image it was made from:
    what a task's report draws its validation pictures on."""
    from PIL import Image

    mean = torch.tensor(data_config.mean, dtype=torch.float32).view(-1, 1, 1)[: image.shape[0]]
    std = torch.tensor(data_config.std, dtype=torch.float32).view(-1, 1, 1)[: image.shape[0]]
    arr = ((image.detach().cpu().float() * std + mean) * 255).round().clamp(0, 255).byte()
    return Image.fromarray(arr.permute(1, 2, 0).squeeze(-1).numpy())


class Augment:
    """A train transform: v2 ops on the whole sample (targets move with the image), then Preprocess.
    The geometry of a random crop means nothing for training; it is set to None."""

    def __init__(self, ops: Sequence[Callable], preprocess: Preprocess):
        self.ops = T.Compose(list(ops)) if ops else None
        self.preprocess = preprocess

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample = to_sample(sample["image"], sample.get("target"), sample.get("id", ""))
        if self.ops is not None:
            sample = self.ops(sample)
        sample = self.preprocess(sample)
        sample["geometry"] = None
        return sample


def image_transforms(dc: DataConfig, augment: str = "standard", fit: str = "crop",
                     flip: bool = True) -> tuple[Callable, Callable]:
    """(train, eval) transforms from a backbone's data config, timm's way.

    standard: random resized crop (fit "crop") or a mild random zoom and shift (other fits), horizontal
    flip unless flip=False (a task whose targets have a handedness, e.g. named left/right points, flips
    itself); light: small shifts and rotations, no flip (digits, text); none: the eval transform."""
    if augment not in AUGMENTATIONS:
        raise ZooError(f"unknown augment '{augment}': use one of {', '.join(AUGMENTATIONS)}")
    _, h, w = dc.input_size
    interp = INTERPOLATION.get(dc.interpolation, T.InterpolationMode.BILINEAR)
    # torchvision's affine warps tensors with nearest or bilinear only; bicubic resizing stays bicubic.
    warp = T.InterpolationMode.NEAREST if interp == T.InterpolationMode.NEAREST else T.InterpolationMode.BILINEAR
    eval_tf = Preprocess(dc, fit)
    if augment == "none":
        return eval_tf, eval_tf
    if augment == "light":  # at the input size, so that the shifts are in the model's pixels
        fitted = [T.Resize((h, w), interpolation=interp, antialias=True)] if fit in ("crop", "stretch") else []
        ops = [*fitted, T.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1), interpolation=warp)]
        return Augment(ops, Preprocess(dc, "stretch" if fit == "crop" else fit)), eval_tf
    flips = [T.RandomHorizontalFlip()] if flip else []
    if fit == "crop":
        ops = [T.RandomResizedCrop((h, w), scale=(0.25, 1.0), interpolation=interp, antialias=True), *flips]
        return Augment(ops, Preprocess(dc, "stretch")), eval_tf
    ops = [T.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.8, 1.15), interpolation=warp), *flips]
    return Augment(ops, Preprocess(dc, fit)), eval_tf


def collate_samples(samples: list[dict[str, Any]]) -> Batch:
    """Stack images; collate targets with torch's default where shapes agree, else keep them as a list.
    Images of different sizes (fit "native") are padded right and below to the largest, with 0: the
    normalised mean colour, as the fit pads; each Geometry still maps the image's own pixels."""
    images = [s["image"] for s in samples]
    if len({im.shape for im in images}) > 1:  # (cached features come as placeholders of one shape: never padded)
        H, W = max(im.shape[-2] for im in images), max(im.shape[-1] for im in images)
        images = [torch.nn.functional.pad(im, (0, W - im.shape[-1], 0, H - im.shape[-2])) for im in images]
    inputs = torch.stack(images)
    targets = [s.get("target") for s in samples]
    if all(t is None for t in targets):
        collated = None
    else:
        try:
            collated = default_collate(targets)
        except (RuntimeError, TypeError):
            collated = targets
    return Batch(inputs, collated, [s.get("geometry") for s in samples], [s.get("id", "") for s in samples])


class SampleDataset(torch.utils.data.Dataset):
    """A dataset's raw samples with images loaded (paths lazily, in the model's channel mode) and a
    task's transform applied. With `images` (cache.DecodedImages), each file is decoded once and later
    epochs get the kept uint8 image back, before any random augmentation: the transform runs every time."""

    def __init__(self, raw: torch.utils.data.Dataset, transform: Callable, channels: int, images=None):
        self.raw, self.transform, self.channels, self.images = raw, transform, channels, images

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from .images import open_image

        sample = dict(self.raw[i])
        if "id" not in sample and not hasattr(sample["image"], "size"):
            sample["id"] = str(sample["image"])
        if self.images is not None and isinstance(sample["image"], (str, Path)):
            sample["image"] = self.images.load(sample["image"], exact=has_geometry(sample.get("target")))
        else:
            sample["image"] = open_image(sample["image"], self.channels)
        return self.transform(sample)


def has_geometry(target: Any) -> bool:
    """Whether a target moves with the image (boxes, points, masks): then the eval transform must run
    to place it, even when the features come from the cache."""
    from torchvision import tv_tensors

    if isinstance(target, tv_tensors.TVTensor):
        return True
    if isinstance(target, dict):
        return any(has_geometry(v) for v in target.values())
    if isinstance(target, (list, tuple)):
        return any(has_geometry(v) for v in target)
    return False
