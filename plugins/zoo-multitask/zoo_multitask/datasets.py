"""Multi-task data: a CSV with an image column and any number of target columns, or the embedded
generated shapes. Both end in the same place: columns of raw strings, read by targets.py into one
resolved spec per head (the model's info) and one {head: tensor} target per image."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from zoo_core import (
    PATH_COLUMNS,
    DataConfig,
    DataSplits,
    ZooError,
    check_listed_images,
    is_missing,
    random_split,
    resolve_path,
    skipped_example,
    split_column,
)

from .targets import check_against, describe, encode_rows, parse_declaration, resolve_targets

SPLIT_COLUMN = "split"


def is_csv(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() in (".csv", ".tsv")


def _splits(n: int, split_values: list[str] | None, val_fraction: float, seed: int) -> tuple[list[int], list[int], str]:
    """The CSV's own train/val split when every row has one, else a seeded random split."""
    if split_values:  # checked by zoo_core.split_column: train or val in every row
        return ([i for i, s in enumerate(split_values) if s == "train"], [i for i, s in enumerate(split_values) if s == "val"],
                "its split column")
    train, val = random_split(n, val_fraction, seed)
    return train, val, f"a seeded {1 - val_fraction:.0%}/{val_fraction:.0%} split"


def build_splits(images: list[Any], columns: dict[str, list[str]], lines: list[int], where: str, *, targets: Any,
                 seed: int, val_fraction: float, reference_info: dict | None, split_values: list[str] | None = None,
                 skipped: list[tuple[str, str]] | None = None, ids: list[str] | None = None, in_memory: bool = False,
                 description: str = "") -> DataSplits:
    """Images and their target columns (raw strings) -> DataSplits whose info holds the resolved heads."""
    ids = ids or [str(im) if isinstance(im, (str, Path)) else f"#{i}" for i, im in enumerate(images)]
    train_idx, val_idx, layout = _splits(len(images), split_values, val_fraction, seed)
    if reference_info is not None and reference_info.get("targets"):
        # evaluation: the trained model's heads, classes and scaling, checked against this data's columns
        specs = check_against(reference_info["targets"], columns, where)
    else:
        specs = resolve_targets(parse_declaration(targets), columns, where, lines, train_rows=train_idx or None)
    encoded = encode_rows(specs, columns, where, lines)
    samples = [{"image": im, "target": t, "id": i} for im, t, i in zip(images, encoded, ids)]
    info = {"targets": specs}
    return DataSplits([samples[i] for i in train_idx], [samples[i] for i in val_idx], info, skipped=skipped or [],
                      in_memory=in_memory, description=f"{description}: heads {describe(specs)}; {layout}")


# ------------------------------------------------------------------------------------------------ CSV

def csv_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                reference_info: dict | None = None, targets: Any = None, path_column: str | None = None) -> DataSplits:
    """An image column (path, file, image, ...; paths relative to the CSV) and any number of target
    columns; an optional split column with train/val. FairFace's `file, age, gender, race` works as is."""
    path = Path(source)
    header, rows = _read_rows(path)
    lower = {c.strip().lower(): c for c in header}
    if path_column is not None:
        if path_column not in header:
            raise ZooError(f"dataset.path_column: {path} has no column '{path_column}' (columns: {', '.join(header)})")
        image_col = path_column
    else:
        image_col = next((lower[a] for a in PATH_COLUMNS if a in lower), None)
        if image_col is None:
            raise ZooError(f"{path}: no image column (columns: {', '.join(header)}); name it one of "
                           f"{', '.join(PATH_COLUMNS)} or pass --set dataset.path_column=NAME")
    split_col = lower.get(SPLIT_COLUMN)
    # checked for every row, read or not: None, or train/val in each
    all_splits = split_column([r.get(split_col) or "" for r in rows], str(path)) if split_col else None
    target_cols = [c for c in header if c not in (image_col, split_col)]
    keep, files, lines = [], [], []
    for n, r in enumerate(rows):
        if not r.get(image_col):
            raise ZooError(f"{path}:{n + 2}: empty {image_col}")
        if "\0" in r[image_col]:
            raise ZooError(f"{path}:{n + 2}: a NUL byte in the {image_col} column; fix or remove the row")
        files.append(resolve_path(path, r[image_col]))
    readable, skipped = check_listed_images(files)
    for n, f in enumerate(files):
        if f in readable:
            keep.append(n)
            lines.append(n + 2)
    if not keep:
        raise ZooError(f"{path}: none of the {len(skipped)} image(s) it lists could be read{skipped_example(skipped)}; "
                       "paths are relative to the CSV's folder")
    # NaN, nan, NA, None as pandas and spreadsheets write a missing value: missing (not learned), like an empty cell
    columns = {c: ["" if is_missing(rows[n].get(c) or "") else (rows[n].get(c) or "").strip() for n in keep]
               for c in target_cols}
    splits = [all_splits[n] for n in keep] if all_splits else None
    return build_splits([files[n] for n in keep], columns, lines, str(path), targets=targets, seed=seed,
                        val_fraction=val_fraction, reference_info=reference_info, split_values=splits, skipped=skipped,
                        description=f"{path} ({len(keep)} images)")


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ZooError(f"{path}: not a UTF-8 text CSV file") from None
    except OSError as e:
        raise ZooError(f"{path}: cannot read ({e.strerror})") from None
    dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    try:
        reader = csv.DictReader(text.splitlines(), dialect=dialect)
        header = [c for c in (reader.fieldnames or []) if c]
        rows = list(reader)
    except csv.Error as e:
        raise ZooError(f"{path}: malformed CSV ({e})") from None
    if not header:
        raise ZooError(f"{path}: the CSV file is empty")
    if not rows:
        raise ZooError(f"{path}: the CSV has a header but no rows")
    return header, rows


# ----------------------------------------------------------------------------------------- shapes

SHAPES = ("circle", "square", "triangle", "star")
TEXTURES = ("brick", "grass", "gravel")  # real textures shipped with scikit-image: half of the backgrounds


@lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
    import skimage.data

    arr = getattr(skimage.data, name)()
    return np.ascontiguousarray(arr if arr.ndim == 2 else arr[..., :3].mean(axis=2)).astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """An RGB background: grey with noise, or a tinted crop of a real texture, lowered in contrast so
    that the shape stays the most visible thing."""
    if rng.random() < 0.5:
        grey = np.full((size, size), rng.uniform(60, 190), dtype=np.float32) + rng.normal(0, 8, (size, size))
    else:
        tex = _texture(TEXTURES[rng.integers(len(TEXTURES))])
        side = int(rng.integers(size, tex.shape[0] // 2))
        y, x = rng.integers(0, tex.shape[0] - side + 1), rng.integers(0, tex.shape[1] - side + 1)
        crop = np.asarray(Image.fromarray(tex[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR))
        grey = rng.uniform(80, 170) + (crop - crop.mean()) * rng.uniform(0.3, 0.6)
    tint = rng.uniform(0.8, 1.2, 3)
    return np.clip(grey[..., None] * tint, 0, 255)


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Vertices on the circle of radius r (a star alternates r and r * 0.45)."""
    if shape == "square":
        radii, n = [r], 4
    elif shape == "triangle":
        radii, n = [r], 3
    else:
        radii, n = [r, r * 0.45], 10
    return [(cx + radii[k % len(radii)] * np.cos(angle + 2 * np.pi * k / n),
             cy + radii[k % len(radii)] * np.sin(angle + 2 * np.pi * k / n)) for k in range(n)]


def generate_shapes(count: int, seed: int, image_size: int = 64, min_frac: float = 0.25, max_frac: float = 0.85):
    """`count` (image, shape, size) triples, all drawn from `seed`: one shape (circle, square, triangle or
    star) per image, rotated, coloured, at a random place on a grey or textured background; its size is
    the diameter of the circle it is drawn in, in pixels, from min_frac to max_frac of the image side."""
    rng = np.random.default_rng([seed, 20260911])
    out = []
    for i in range(count):
        shape = SHAPES[i % len(SHAPES)]  # balanced classes; positions, sizes and colours are random
        diameter = float(rng.uniform(min_frac, max_frac) * image_size)
        r = diameter / 2
        cx, cy = rng.uniform(r, image_size - r, 2)
        background = _background(rng, image_size)
        img = Image.fromarray(background.astype(np.uint8))
        level = float(background.mean())
        fill = tuple(int(v) for v in np.clip((level + rng.choice([-1, 1]) * rng.uniform(70, 110)) * rng.uniform(0.7, 1.3, 3),
                                             0, 255))
        draw = ImageDraw.Draw(img)
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(shape, cx, cy, r, float(rng.uniform(0, 2 * np.pi))), fill=fill)
        out.append((img, shape, round(diameter, 2)))
    return out


def shapes_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None, count: int = 2000, canvas: int = 64,
                   targets: Any = None) -> DataSplits:
    """The embedded data: generated images whose two targets must both be read from the pixels: the
    shape (multiclass) and its size (regression, in pixels). Seeded by the run's seed."""
    if source is not None:
        raise ZooError("dataset 'shapes' is generated and reads no --data; for your own images use a CSV "
                       "(--data labels.csv)")
    if count < 8:
        raise ZooError(f"dataset.count must be at least 8, got {count}")
    if not 16 <= canvas <= 1024:
        raise ZooError(f"dataset.canvas (the generated images' side) must be 16 to 1024 pixels, got {canvas}")
    items = generate_shapes(count, seed, canvas)
    columns = {"shape": [s for _, s, _ in items], "size": [str(d) for _, _, d in items]}
    declared = targets if targets is not None else {"shape": {"type": "multiclass"},
                                                    "size": {"type": "regression", "unit": "px"}}
    return build_splits([im for im, _, _ in items], columns, list(range(1, count + 1)), "shapes", targets=declared,
                        seed=seed, val_fraction=val_fraction, reference_info=reference_info,
                        ids=[f"shape-{i:05d}" for i in range(count)], in_memory=True,
                        description=f"shapes ({count} generated {canvas} px images, seed {seed})")
