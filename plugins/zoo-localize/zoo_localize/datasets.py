"""Localisation data: the embedded pasted-objects, or a CSV of (path, xmin, ymin, xmax, ymax).

Each dataset returns raw samples {"image": PIL image or path, "target": BoundingBoxes (1, 4), XYXY,
original pixels, float}; the task's transforms move the box with the image, and info["mean_box"] is
the mean training box as the model sees it (normalised to its input): the baseline of the metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from zoo_core import (
    PATH_COLUMNS,
    DataConfig,
    DataSplits,
    ZooError,
    check_listed_images,
    image_size,
    photo_crop,
    random_split,
    read_csv,
    resolve_path,
    skipped_example,
    split_column,
    textured_canvas,
)

from .boxes import mean_input_box


def box_target(box, size_hw: tuple[int, int]) -> tv_tensors.BoundingBoxes:
    return tv_tensors.BoundingBoxes(torch.tensor([box], dtype=torch.float32), format="XYXY", canvas_size=size_hw)


def _samples(items: list[tuple[Any, list[float], tuple[int, int]]], ids: list[str]) -> list[dict[str, Any]]:
    return [{"image": image, "target": box_target(box, size), "id": i} for (image, box, size), i in zip(items, ids)]


def _info(train: list[tuple[Any, list[float], tuple[int, int]]], data_config: DataConfig,
          reference_info: dict | None) -> dict[str, Any]:
    if reference_info is not None and reference_info.get("mean_box"):
        return {"mean_box": list(reference_info["mean_box"])}
    return {"mean_box": mean_input_box([b for _, b, _ in train], [s for _, _, s in train], data_config)}


# ----------------------------------------------------------------------------------- pasted-objects

def generate_pasted(count: int, seed: int, min_size: int = 96, max_size: int = 160):
    """`count` (image, box, (h, w)) triples: crops of real photos pasted at random places and scales on
    non-square canvases, all drawn from `seed`."""
    rng = np.random.default_rng([seed, 20240611])
    items = []
    for _ in range(count):
        w, h = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
        canvas = textured_canvas(rng, w, h)
        obj = photo_crop(rng, w, h, min_side=max(8, min(w, h) // 6))
        x = int(rng.integers(0, w - obj.width + 1))
        y = int(rng.integers(0, h - obj.height + 1))
        canvas.paste(obj, (x, y))
        items.append((canvas, [float(x), float(y), float(x + obj.width), float(y + obj.height)], (h, w)))
    return items


def pasted_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None, count: int = 720, min_size: int = 96,
                   max_size: int = 160) -> DataSplits:
    if count < 2:
        raise ZooError(f"dataset 'pasted-objects' option count must be >= 2, got {count}")
    if not 32 <= min_size <= max_size <= 2048:
        raise ZooError(f"dataset 'pasted-objects': need 32 <= min_size <= max_size <= 2048, got {min_size}, {max_size}")
    items = generate_pasted(count, seed, min_size, max_size)
    ids = [f"pasted-{i:04d}" for i in range(count)]
    train_idx, val_idx = random_split(count, val_fraction, seed)
    train = [items[i] for i in train_idx]
    return DataSplits(_samples(train, [ids[i] for i in train_idx]), _samples([items[i] for i in val_idx], [ids[i] for i in val_idx]),
                      _info(train, data_config, reference_info), in_memory=True,
                      description=f"pasted-objects ({count} crops of scikit-image photos pasted on "
                                  f"{min_size}-{max_size} px canvases, seed {seed})")


# ------------------------------------------------------------------------------------------------ CSV

BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
TOLERANCE = 1.0  # pixels a box may stick out of its image (annotation tools' off-by-one), then clipped


def is_csv(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() in (".csv", ".tsv")


def _parse_box(row: dict[str, str], where: str) -> list[float]:
    try:
        box = [float(row[c]) for c in BOX_COLUMNS]
    except ValueError:
        raise ZooError(f"{where}: xmin, ymin, xmax, ymax must be numbers, got "
                       f"{', '.join(repr(row[c]) for c in BOX_COLUMNS)}") from None
    if not all(np.isfinite(box)):
        raise ZooError(f"{where}: box coordinates must be finite, got {box}")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ZooError(f"{where}: empty box (need xmax > xmin and ymax > ymin), got {box}")
    return box


def csv_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                reference_info: dict | None = None, path_column: str | None = None) -> DataSplits:
    """Rows of (path, xmin, ymin, xmax, ymax) in pixels, paths relative to the CSV's folder; a 'split'
    column with train/val values, when present, is used instead of a random split.

    A row whose box is wrong (not numbers, empty, outside its image) is an error naming the file and
    line: a typo in the labels is fixed at its source, not trained on or quietly dropped. Only images
    that cannot be read are skipped, with their reason, as zoo does everywhere."""
    path = Path(source)
    rows, _ = read_csv(path, {"path": PATH_COLUMNS, **{c: (c,) for c in BOX_COLUMNS}, "split": ("split",)},
                       optional=["split"], chosen={"path": path_column})
    boxes = []
    for n, r in enumerate(rows):
        if not r["path"]:
            raise ZooError(f"{path}:{n + 2}: empty path")
        boxes.append(_parse_box(r, f"{path}:{n + 2}"))
    files = [resolve_path(path, r["path"]) for r in rows]
    readable, skipped = check_listed_images(files)
    items, splits = [], []
    for n, (f, r, box) in enumerate(zip(files, rows, boxes)):
        if f not in readable:
            continue
        h, w = image_size(f)
        x0, y0, x1, y1 = box
        if x0 < -TOLERANCE or y0 < -TOLERANCE or x1 > w + TOLERANCE or y1 > h + TOLERANCE:
            raise ZooError(f"{path}:{n + 2}: box {box} lies outside its {w}x{h} image {r['path']}")
        box = [max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)]
        items.append((f, box, (h, w)))
        splits.append(r["split"].lower())
    if not items:
        raise ZooError(f"{path}: none of the {len(skipped)} image(s) it lists could be read{skipped_example(skipped)}; "
                       "paths are relative to the CSV's folder")
    ids = [str(f) for f, _, _ in items]
    splits = split_column(splits, str(path))  # (read_csv checked every row)
    if splits:
        train_idx = [i for i, s in enumerate(splits) if s == "train"]
        val_idx = [i for i, s in enumerate(splits) if s == "val"]
        layout = "its split column"
    else:
        train_idx, val_idx = random_split(len(items), val_fraction, seed)
        layout = f"a seeded {1 - val_fraction:.0%}/{val_fraction:.0%} split"
    train = [items[i] for i in train_idx]
    return DataSplits(_samples(train, [ids[i] for i in train_idx]), _samples([items[i] for i in val_idx], [ids[i] for i in val_idx]),
                      _info(train or items, data_config, reference_info), skipped=skipped,
                      description=f"{path} ({len(items)} images with boxes, {layout})")
