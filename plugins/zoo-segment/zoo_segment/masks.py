"""What a mask is, everywhere in the plugin.

A dataset's mask is an (H, W) map of class indices: 0 .. K-1 (0 is "background" in the embedded data and
most datasets), and IGNORE (255) for pixels no one labelled (object borders in VOC). Raw samples carry it
*shifted by one* (`stored = label + 1`, IGNORE stored as 0) in a `tv_tensors.Mask`: every transform that
adds pixels — the letterbox padding of the eval fit, the border of a random zoom out — fills masks with 0,
so new pixels become "ignore" on their own, and neither the loss nor the metrics count padding as
background. `targets()` undoes the shift when a batch is made."""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors

from . import MASK  # noqa: F401  (the output kind, declared with the registration, which imports no torch)
IGNORE = 255  # the default ignore index: pixels that neither train nor count in the metrics
FIT = "pad"  # letterbox: the whole image, aspect ratio kept (padding is ignored, see above)


def stored_mask(labels: np.ndarray, ignore_index: int = IGNORE) -> tv_tensors.Mask:
    """(H, W) class indices (ignore_index for unlabelled pixels) -> the shifted (1, H, W) uint8 Mask."""
    labels = np.asarray(labels)
    stored = (labels.astype(np.int64) + 1).astype(np.uint8)
    stored[labels == ignore_index] = 0
    return tv_tensors.Mask(torch.from_numpy(stored)[None])


def targets(mask: torch.Tensor) -> torch.Tensor:
    """A stored (..., H, W) mask -> class indices as int64, IGNORE where nothing is labelled."""
    t = torch.as_tensor(mask).long() - 1
    return t.masked_fill_(t < 0, IGNORE)


def class_colors(n: int) -> list[list[int]]:
    """Distinct colours for n classes when the data gives none: black background, then zoo's palette."""
    from zoo_core import color

    return [[0, 0, 0]] + [list(color(i)) for i in range(n - 1)]
