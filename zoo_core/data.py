"""Images in, tensors out: robust image loading, transforms derived from the backbone, splits.

Shared by every image plugin so that bad files are handled the same way everywhere.
"""

from __future__ import annotations

import os
import random
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import v2 as T

from .components import DataConfig
from .errors import ZooError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}

# A 100-megapixel image is a decompression bomb for PIL's default limit; photos for training are smaller,
# but panoramas exist: warn instead of failing, and still refuse the absurd.
Image.MAX_IMAGE_PIXELS = 300_000_000


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit grayscale to 0-255 (PIL's own convert would clip, not scale).

    I;16 is 16-bit: scaled by 65535 -> 255. Mode I and F say nothing about their range, so it is read
    from the values: I holding 0-65535 is 16-bit data (PIL opens 16-bit PGM/PPM so) and is scaled the
    same way, I holding 0-255 is 8-bit data and kept, F holding 0-1 is scaled by 255, F holding 0-255
    is kept; anything else (negative, larger) is stretched from its own minimum to its maximum."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        arr = arr.astype(np.float32) / 257.0
    else:  # "I" or "F"
        arr = arr.astype(np.float64)
        finite = np.isfinite(arr)
        arr = np.where(finite, arr, 0.0)
        lo, hi = (float(arr[finite].min()), float(arr[finite].max())) if finite.any() else (0.0, 0.0)
        if lo >= 0 and img.mode == "F" and hi <= 1.0:
            arr = arr * 255.0
        elif lo >= 0 and hi <= 255:
            pass
        elif lo >= 0 and img.mode != "F" and hi <= 65535:
            arr = arr / 257.0
        else:
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L")


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL image to 'L' (1 channel) or 'RGB' (3 channels).

    EXIF orientation is applied; transparency is composited on white (what a viewer shows);
    16-bit is scaled, CMYK and palette images converted."""
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_8bit(img)
    if img.mode == "P":
        transparent = getattr(img, "has_transparency_data", "transparency" in img.info)
        img = img.convert("RGBA" if transparent else "RGB")
    if img.mode == "La":  # premultiplied: PIL converts it to LA only
        img = img.convert("LA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    target = "L" if channels == 1 else "RGB"
    if img.mode == target:
        return img
    try:
        return img.convert(target)
    except ValueError:  # modes PIL converts to RGB only (LAB, ...)
        return img.convert("RGB").convert(target)


def load_image(path: str | Path, channels: int = 3) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EXIF and palette warnings are noise here; failures still raise
        with Image.open(path) as img:
            img.load()
            return to_mode(img, channels)


def open_image(image: str | Path | Image.Image, channels: int = 3) -> Image.Image:
    """A path or PIL image in the mode the model wants; a file that cannot be read is a one-line ZooError."""
    if isinstance(image, Image.Image):
        return to_mode(image, channels)
    try:
        return load_image(image, channels)
    except FileNotFoundError:
        raise ZooError(f"{image}: no such file") from None
    except Exception as e:  # whatever PIL raises for it, the file is the problem
        raise ZooError(f"{image}: cannot read image ({type(e).__name__})") from None


def check_image(path: Path) -> str | None:
    """None when `path` decodes completely, else why it does not (zero bytes, truncated, not an image)."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.load()  # decodes everything: catches truncated files that verify() lets through
                if img.width < 1 or img.height < 1:
                    return "image has no pixels"
        return None
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}"


def scan_images(paths: Sequence[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Split `paths` into readable images and (path, reason) pairs for the ones to skip.

    Every file is decoded once, in threads (PIL releases the GIL while decoding), with a progress bar:
    a broken file found now is a line in the log, found mid-epoch it would be a crash."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        reasons = list(tqdm(pool.map(check_image, paths), total=len(paths), desc="checking images", unit="img",
                            disable=None if len(paths) > 500 else True, leave=False))
    good = [p for p, r in zip(paths, reasons) if r is None]
    bad = [(str(p), r) for p, r in zip(paths, reasons) if r is not None]
    return good, bad


_INTERPOLATION = {
    "nearest": T.InterpolationMode.NEAREST,
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
}

AUGMENTATIONS = ("standard", "light", "none")


def build_transforms(dc: DataConfig, augment: str = "standard") -> tuple[Callable, Callable]:
    """(train, eval) transforms from a backbone's data config, timm's way.

    eval: shorter side to size/crop_pct, center crop; train: 'standard' = random resized crop + horizontal flip
    (photos), 'light' = small shifts/rotations and no flip (digits, text: flipping changes the label),
    'none' = the eval transform."""
    if augment not in AUGMENTATIONS:
        raise ZooError(f"unknown augment '{augment}': use one of {', '.join(AUGMENTATIONS)}")
    _, h, w = dc.input_size
    interp = _INTERPOLATION.get(dc.interpolation, T.InterpolationMode.BILINEAR)
    finish = [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(dc.mean, dc.std)]
    # As timm evaluates ImageNet models: the shorter side to size/crop_pct, keeping the aspect ratio
    # (squashing a 3:2 photo to a square distorts what the pretrained filters see), then the centre crop.
    scale_size = int(h / dc.crop_pct) if h == w else (int(h / dc.crop_pct), int(w / dc.crop_pct))
    eval_tf = T.Compose([T.Resize(scale_size, interpolation=interp, antialias=True), T.CenterCrop((h, w)), *finish])
    if augment == "standard":
        train_tf = T.Compose([T.RandomResizedCrop((h, w), scale=(0.25, 1.0), interpolation=interp, antialias=True),
                              T.RandomHorizontalFlip(), *finish])
    elif augment == "light":
        train_tf = T.Compose([T.Resize((h, w), interpolation=interp, antialias=True),
                              T.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1), interpolation=interp),
                              *finish])
    else:
        train_tf = eval_tf
    return train_tf, eval_tf


class ImageDataset(torch.utils.data.Dataset):
    """(image, target) pairs; an image is a path (loaded lazily) or a PIL image already in memory."""

    def __init__(self, items: Sequence[tuple[Any, Any]], transform: Callable, channels: int):
        self.items = list(items)
        self.transform = transform
        self.channels = channels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        image, target = self.items[i]
        if isinstance(image, Image.Image):
            image = to_mode(image, self.channels)
        else:
            image = load_image(image, self.channels)
        return self.transform(image), target


def stratified_split(labels: Sequence[Any], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices for train and val, keeping each label's share; seeded, so the same every run.

    Every label with two or more examples gets at least one in each split."""
    if val_fraction >= 1.0:  # evaluation: everything is validation
        return [], list(range(len(labels)))
    by_label: dict[Any, list[int]] = defaultdict(list)
    for i, y in enumerate(labels):
        by_label[y].append(i)
    rng = random.Random(seed)
    train, val = [], []
    for y in sorted(by_label, key=str):
        idx = by_label[y]
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val += idx[:n_val]
        train += idx[n_val:]
    return sorted(train), sorted(val)


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories (recursively) into a sorted list of image files."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f))
        elif p.exists():
            out.append(p)
        else:
            raise ZooError(f"{p}: no such file or directory")
    return out
