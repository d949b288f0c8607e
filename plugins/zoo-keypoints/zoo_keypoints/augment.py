"""Augmentations that move the points with the image: torchvision's v2 ops on tv_tensors.KeyPoints
(rotation, scale, shift, crop), plus the one thing they cannot know: under a horizontal flip a left
eye becomes a right eye, so flipped points swap places by the dataset's declared pairs."""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2 as T


class FlipWithSwap:
    """A horizontal flip with probability p, then points (and their visibility) reordered so that each
    name stays on its side: points[left_eye] is again the left eye of the flipped face. The order comes
    with each sample (target["flip"], from the dataset's declared pairs); a sample without one, whose
    data declares no left/right pairs, is never flipped: that would teach the model that a left eye is
    on the right."""

    def __init__(self, p: float = 0.5):
        self.flip = T.RandomHorizontalFlip(p=1.0)
        self.p = p

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        target = sample.get("target")
        if target is None or target.get("flip") is None or float(torch.rand(())) >= self.p:
            return sample
        sample = self.flip(sample)
        perm = target["flip"]
        points = sample["target"]["points"]
        swapped = tv_tensors.wrap(points.as_subclass(torch.Tensor)[perm], like=points)
        sample["target"] = {**sample["target"], "points": swapped, "visible": sample["target"]["visible"][perm]}
        return sample


class RandomCropKeep(T.Transform):
    """Cut a random window covering `keep` (min, max) of each side: a crop that may cut points off
    (they become invisible, masked), never the whole object."""

    def __init__(self, keep: tuple[float, float] = (0.8, 1.0)):
        super().__init__()
        self.keep = keep

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        from torchvision.transforms.v2._utils import query_size

        h, w = query_size(flat_inputs)
        lo, hi = self.keep
        ch = max(1, int(h * float(torch.empty(()).uniform_(lo, hi))))
        cw = max(1, int(w * float(torch.empty(()).uniform_(lo, hi))))
        top = int(torch.randint(0, h - ch + 1, ()))
        left = int(torch.randint(0, w - cw + 1, ()))
        return {"top": top, "left": left, "height": ch, "width": cw}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        from torchvision.transforms.v2 import functional as F

        return self._call_kernel(F.crop, inpt, **params)


def augment_ops(augment: str, rotation: float = 15.0) -> list:
    """standard: a crop keeping 80-100% of each side, rotation (+-`rotation` degrees), zoom 0.85-1.15, a
    small shift, and a flip with left/right swapped (for data that declares its pairs); light: half of
    that, no crop, no flip; none: nothing."""
    bilinear = T.InterpolationMode.BILINEAR
    if augment == "standard":
        return [RandomCropKeep((0.8, 1.0)),
                T.RandomAffine(degrees=rotation, translate=(0.05, 0.05), scale=(0.85, 1.15), interpolation=bilinear),
                FlipWithSwap()]
    if augment == "light":
        return [T.RandomAffine(degrees=rotation / 2, translate=(0.03, 0.03), scale=(0.92, 1.08), interpolation=bilinear)]
    return []
