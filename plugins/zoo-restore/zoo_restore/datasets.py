"""Restoration data: a degraded image and its clean target per sample.

A raw sample is {"image": the degraded PIL image (or its path), "target": the clean image as a (3, H, W)
uint8 tensor, "id"}; the clean image is s times larger for super-resolution (s = 2 or 4). Degradations are
drawn on the fly (degrade.py); validation's are seeded by the example's index, so every epoch and every
run scores the same degraded images.

restore-photos  the embedded default: patches of real photos that ship with scikit-image and scikit-learn;
                chelsea (the cat) and flower are held out for validation, the others train.
clean-folder    any folder of clean images, degraded on the fly.
paired-folders  degraded/ + clean/ with the same file names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from zoo_core import DataConfig, DataSplits, ZooError, find_images, random_split, skimage_image

from .degrade import Degradation

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "china")
VAL_PHOTOS = ("chelsea", "flower")
DEGRADED_DIRS, CLEAN_DIRS = ("degraded", "input", "low"), ("clean", "target", "high")


def _photo(name: str) -> torch.Tensor:
    if name in ("china", "flower"):
        try:
            from sklearn.datasets import load_sample_images
        except ImportError:
            raise ZooError("the embedded restore photos need scikit-learn: pip install scikit-learn") from None
        images = load_sample_images()
        arr = next(im for f, im in zip(images.filenames, images.images) if Path(f).stem == name)
    else:
        arr = skimage_image(name)
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1)


def _to_pil(t: torch.Tensor) -> Image.Image:
    return Image.fromarray(t.permute(1, 2, 0).numpy())


def _crop(t: torch.Tensor, y: int, x: int, h: int, w: int) -> torch.Tensor:
    return t[:, y:y + h, x:x + w]


def _at_least(t: torch.Tensor, side: int) -> torch.Tensor:
    """An image smaller than a training patch, enlarged (bicubic) so a patch fits."""
    h, w = t.shape[-2:]
    if h >= side and w >= side:
        return t
    r = side / min(h, w)
    out = torch.nn.functional.interpolate(t[None].float(), size=(max(side, round(h * r)), max(side, round(w * r))),
                                          mode="bicubic", align_corners=False)
    return out[0].clamp(0, 255).round().to(torch.uint8)


class RandomPatches(torch.utils.data.Dataset):
    """`count` training samples an epoch: a random clean patch of a random image, degraded afresh. The
    randomness comes from torch's global generator (seeded by the trainer, per worker by DataLoader)."""

    def __init__(self, load, n_images: int, count: int, patch: int, degradation: Degradation, ids: list[str]):
        self.load, self.n, self.count, self.patch, self.degradation, self.ids = load, n_images, count, patch, degradation, ids

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, ())))
        k = int(torch.randint(0, self.n, (), generator=g))
        clean = _at_least(self.load(k), self.patch)
        h, w = clean.shape[-2:]
        y = int(torch.randint(0, h - self.patch + 1, (), generator=g))
        x = int(torch.randint(0, w - self.patch + 1, (), generator=g))
        clean = _crop(clean, y, x, self.patch, self.patch)
        return {"image": _to_pil(self.degradation(clean, g)), "target": clean, "id": f"{self.ids[k]}@{y},{x}"}


class FixedDegraded(torch.utils.data.Dataset):
    """Validation: clean images (or crops), each degraded with a generator seeded by its index."""

    def __init__(self, load, items: list[tuple[int, tuple[int, int, int, int] | None, str]], degradation: Degradation,
                 seed: int):
        self.load, self.items, self.degradation, self.seed = load, items, degradation, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        k, box, name = self.items[i]
        clean = self.load(k)
        if box is not None:
            clean = _crop(clean, *box)
        s = self.degradation.scale
        clean = clean[:, : clean.shape[-2] // s * s, : clean.shape[-1] // s * s]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return {"image": _to_pil(self.degradation(clean, g)), "target": clean, "id": name}


def _info(degradation: Degradation) -> dict:
    return {"scale": degradation.scale, "degradation": degradation.to_dict()}


def photos_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None, degrade: str = "blur+noise", blur: str = "0.8-2.0",
                   motion: str = "5-11", noise: str = "5-20", jpeg: str = "20-60", mask: int = 42,
                   patches: int = 480, val_patch: int = 96) -> DataSplits:
    """The embedded default. `patches`: training samples an epoch; `val_patch`: the side of the clean
    validation crops (a grid over the held-out photos)."""
    degradation = Degradation.parse(degrade, blur, motion, noise, jpeg, mask)
    s = degradation.scale
    if patches < 1 or val_patch < 8 * s:
        raise ZooError(f"dataset 'restore-photos': patches must be >= 1 and val_patch >= {8 * s} (got {patches}, {val_patch})")
    train_images = [_photo(n) for n in TRAIN_PHOTOS]
    val_images = [_photo(n) for n in VAL_PHOTOS]
    patch = data_config.input_size[-1] * s  # the model's training input is image_size; its clean target s times that
    vp = val_patch // s * s
    items = []
    for k, (name, im) in enumerate(zip(VAL_PHOTOS, val_images)):
        h, w = im.shape[-2:]
        for y in range(0, h - vp + 1, vp):
            for x in range(0, w - vp + 1, vp):
                items.append((k, (y, x, vp, vp), f"{name}@{y},{x}"))
    train = RandomPatches(train_images.__getitem__, len(train_images), patches, patch, degradation, list(TRAIN_PHOTOS))
    val = FixedDegraded(val_images.__getitem__, items, degradation, seed)
    return DataSplits(train, val, _info(degradation), in_memory=True,
                      description=f"real photos ({', '.join(TRAIN_PHOTOS)}; validation: {', '.join(VAL_PHOTOS)}), "
                                  f"degraded by {'+'.join(degradation.kinds)}")


class _Files:
    """Clean images read from disk, as (3, H, W) uint8 tensors."""

    def __init__(self, files: list[Path]):
        self.files = files

    def __call__(self, k: int) -> torch.Tensor:
        from zoo_core import load_image

        try:
            return torch.from_numpy(np.asarray(load_image(self.files[k], 3)).copy()).permute(2, 0, 1)
        except OSError as e:
            raise ZooError(f"{self.files[k]}: cannot read this image ({e})") from None


def is_clean_folder(source: str) -> bool:
    root = Path(source)
    return root.is_dir() and not is_paired(source) and bool(find_images([root]))


def folder_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None, degrade: str = "blur+noise", blur: str = "0.8-2.0",
                   motion: str = "5-11", noise: str = "5-20", jpeg: str = "20-60", mask: int = 42,
                   patches: int = 0) -> DataSplits:
    """Clean images degraded on the fly: validation images whole (at their own size), training a random
    patch per image per epoch (`patches` samples an epoch; 0: one per training image)."""
    degradation = Degradation.parse(degrade, blur, motion, noise, jpeg, mask)
    files = find_images([source])
    if len(files) < 2:
        raise ZooError(f"--data {source}: need at least 2 clean images (found {len(files)})")
    train_idx, val_idx = random_split(len(files), val_fraction, seed)
    train_files, val_files = _Files([files[i] for i in train_idx]), _Files([files[i] for i in val_idx])
    patch = data_config.input_size[-1] * degradation.scale
    train = RandomPatches(train_files, len(train_idx), patches or len(train_idx), patch, degradation,
                          [str(files[i]) for i in train_idx])
    val = FixedDegraded(val_files, [(k, None, str(files[i])) for k, i in enumerate(val_idx)], degradation, seed)
    return DataSplits(train, val, _info(degradation), description=f"{source}: clean images degraded by "
                                                                  f"{'+'.join(degradation.kinds)}")


def _subdir(root: Path, names) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def is_paired(source: str) -> bool:
    root = Path(source)
    return root.is_dir() and _subdir(root, DEGRADED_DIRS) is not None and _subdir(root, CLEAN_DIRS) is not None


class Paired(torch.utils.data.Dataset):
    def __init__(self, pairs: list[tuple[Path, Path]]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        degraded, clean = self.pairs[i]
        return {"image": degraded, "target": _Files([clean])(0), "id": str(degraded)}


def paired_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None) -> DataSplits:
    """root/degraded/NAME with root/clean/NAME (same relative path). Every pair is checked before
    training: a missing partner, or a clean image that is not 1, 2 or 4 times the degraded one's size (the
    same factor for all), is an error naming the file."""
    root = Path(source)
    low, high = _subdir(root, DEGRADED_DIRS), _subdir(root, CLEAN_DIRS)
    if low is None or high is None:
        raise ZooError(f"--data {root}: expected sub-folders degraded/ and clean/ with the same file names")
    pairs, scale = [], None
    for f in find_images([low]):
        rel = f.relative_to(low)
        partner = high / rel
        if not partner.is_file():
            found = [p for p in partner.parent.glob(partner.stem + ".*")] if partner.parent.is_dir() else []
            if not found:
                raise ZooError(f"{f}: no clean partner {partner} (degraded/ and clean/ need the same names)")
            partner = found[0]
        try:
            with Image.open(f) as a, Image.open(partner) as b:
                (wa, ha), (wb, hb) = a.size, b.size
        except OSError as e:
            raise ZooError(f"{f}: cannot read this pair ({e})") from None
        s = wb // wa if wa else 0
        if s not in (1, 2, 4) or (wb, hb) != (wa * s, ha * s):
            raise ZooError(f"{partner}: {wb}x{hb}, but its degraded image {f} is {wa}x{ha}; the clean image must be "
                           "the same size or exactly 2x or 4x larger")
        if scale is not None and s != scale:
            raise ZooError(f"{partner}: {s}x its degraded image, but the pairs before it are {scale}x; use one factor")
        scale = s
        pairs.append((f, partner))
    if len(pairs) < 2:
        raise ZooError(f"--data {root}: need at least 2 pairs in {low.name}/ and {high.name}/ (found {len(pairs)})")
    train_idx, val_idx = random_split(len(pairs), val_fraction, seed)
    info = {"scale": scale, "degradation": {"kinds": ["paired"]}}
    return DataSplits(Paired([pairs[i] for i in train_idx]), Paired([pairs[i] for i in val_idx]), info,
                      description=f"{root}: {len(pairs)} degraded/clean pairs" + (f", {scale}x" if scale > 1 else ""))
