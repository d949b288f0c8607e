"""Unlabelled images: each is its own target. Raw samples {"image": PIL image, "target": None, "id"}."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from zoo_core import DataConfig, DataSplits, ZooError, find_images, random_split


class _Images:
    def __init__(self, items: list, ids: list[str]):
        self.items, self.ids = items, ids

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.items[i], "target": None, "id": self.ids[i]}


def _splits(images: list, ids: list[str], val_fraction: float, seed: int, description: str, **kw) -> DataSplits:
    train_idx, val_idx = random_split(len(images), val_fraction, seed)
    pick = lambda idx: _Images([images[i] for i in idx], [ids[i] for i in idx])  # noqa: E731
    return DataSplits(pick(train_idx), pick(val_idx), {}, description=description, **kw)


def faces_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                  reference_info: dict | None = None) -> DataSplits:
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise ZooError("the embedded faces need scikit-image: pip install scikit-image") from None
    faces = lfw_subset()[:100]  # the first 100 are faces, the rest non-face crops
    images = [Image.fromarray((f * 255).round().astype(np.uint8)) for f in faces]
    return _splits(images, [f"lfw-{i:03d}" for i in range(len(images))], val_fraction, seed,
                   "scikit-image lfw_subset: 100 grey 25x25 faces", in_memory=True)


def digits_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None) -> DataSplits:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ZooError("the embedded digits need scikit-learn: pip install scikit-learn") from None
    digits = load_digits().images
    images = [Image.fromarray((d * 255 / 16).round().astype(np.uint8)) for d in digits]
    return _splits(images, [f"digit-{i:04d}" for i in range(len(images))], val_fraction, seed,
                   "scikit-learn digits: 1,797 grey 8x8 images", in_memory=True)


def is_folder(source: str) -> bool:
    return Path(source).is_dir() and bool(find_images([source]))


def folder_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None) -> DataSplits:
    files = find_images([source])
    if len(files) < 2:
        raise ZooError(f"--data {source}: need at least 2 images (found {len(files)})")
    return _splits(files, [str(f) for f in files], val_fraction, seed, f"{source}: {len(files)} images")
