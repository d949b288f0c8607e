"""Classification data: the embedded digits, a folder per class, or a CSV of (path, label).

Each dataset returns raw samples {"image": PIL image or path, "target": class index}; the task's
transforms do the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from zoo_core import (
    PATH_COLUMNS,
    DataConfig,
    DataSplits,
    ZooError,
    check_listed_images,
    find_images,
    is_missing,
    read_csv,
    resolve_path,
    scan_images,
    skipped_example,
    split_column,
    stratified_split,
)

LAYOUT_HINT = "expected DIR/<class>/*.jpg, or DIR/train/<class>/ and DIR/val/<class>/"
LABEL_COLUMNS = ("label", "class", "target", "category")


def _samples(items: Sequence[tuple[Any, int]]) -> list[dict[str, Any]]:
    return [{"image": image, "target": label} for image, label in items]


def _check_classes(classes: Sequence[str], where: str, reference_info: dict | None) -> list[str]:
    """The class list to index labels by: the data's own (sorted), or at eval time the model's."""
    if reference_info is not None:
        known = list(reference_info["classes"])
        unknown = sorted(set(classes) - set(known))
        if unknown:
            raise ZooError(f"{where}: class(es) {', '.join(unknown)} are not classes of this model "
                           f"({', '.join(known)})")
        return known
    if len(classes) < 2:
        found = f"only one class ('{classes[0]}')" if classes else "no classes"
        raise ZooError(f"{where}: found {found}; a classifier needs at least two")
    return sorted(classes, key=str)


def _check_unreadable_classes(lost: Sequence[str], what: str, where: str, skipped: Sequence[tuple[str, str]]) -> None:
    """Training on a class none of whose images can be read would make an output that is never right.
    `skipped`: the skipped files of the `lost` classes."""
    if lost:
        raise ZooError(f"{where}: no readable image for {what}(s) {', '.join(lost)} "
                       f"({len(skipped)} file(s) skipped){skipped_example(skipped)}")


def _split(items: list[tuple[Any, int]], val_fraction: float, seed: int) -> tuple[list, list, str]:
    train_idx, val_idx = stratified_split([y for _, y in items], val_fraction, seed)
    return ([items[i] for i in train_idx], [items[i] for i in val_idx],
            f"a seeded stratified {1 - val_fraction:.0%}/{val_fraction:.0%} split")


# --------------------------------------------------------------------------------------------- digits

def digits_images() -> tuple[list[Image.Image], np.ndarray]:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels) as 8-bit PIL images, and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = [Image.fromarray(np.round(img * (255.0 / 16.0)).astype(np.uint8), mode="L") for img in d.images]
    return images, d.target


def digits_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None) -> DataSplits:
    images, labels = digits_images()
    train, val, _ = _split([(images[i], int(labels[i])) for i in range(len(images))], val_fraction, seed)
    return DataSplits(_samples(train), _samples(val), {"classes": [str(i) for i in range(10)]}, in_memory=True,
                      description="scikit-learn digits (1,797 real 8x8 handwritten digits, 10 classes)")


# --------------------------------------------------------------------------------------- image folder

def is_folder(source: str) -> bool:
    return Path(source).is_dir()


def _class_folders(root: Path) -> dict[str, list[Path]]:
    return {d.name: find_images([d]) for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))}


def _folder_items(classes: list[str], by_class: dict[str, list[Path]]) -> tuple[list, list]:
    """(path, class index) for every readable image, and (path, reason) for the rest."""
    good, bad = scan_images([p for c in by_class for p in by_class[c]])
    ok = set(good)
    index = {c: i for i, c in enumerate(classes)}
    return [(p, index[c]) for c in by_class for p in by_class[c] if p in ok], bad


def folder_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None) -> DataSplits:
    root = Path(source)
    if not root.is_dir():
        raise ZooError(f"{root}: not a directory ({LAYOUT_HINT})")
    presplit = (root / "train").is_dir() and (root / "val").is_dir()
    parts = {"train": root / "train", "val": root / "val"} if presplit else {"all": root}
    by_part = {name: _class_folders(path) for name, path in parts.items()}
    names = sorted({c for folders in by_part.values() for c, files in folders.items() if files})
    if not names:
        raise ZooError(f"{root}: no class folders with images in them ({LAYOUT_HINT})")
    classes = _check_classes(names, str(root), reference_info)
    items, skipped = {}, []
    for name, folders in by_part.items():
        items[name], bad = _folder_items(classes, {c: f for c, f in folders.items() if f})
        skipped += bad
    if not any(items.values()):
        raise ZooError(f"{root}: none of the {len(skipped)} image file(s) could be read{skipped_example(skipped)}")
    if reference_info is None:
        readable = {y for part in items.values() for _, y in part}
        lost = [c for i, c in enumerate(classes) if i not in readable]
        lost_files = {str(f) for folders in by_part.values() for c in lost for f in folders.get(c, [])}
        _check_unreadable_classes(lost, "class folder", str(root), [s for s in skipped if s[0] in lost_files])
    if presplit:
        train, val, layout = items["train"], items["val"], "train/ and val/ folders"
    else:
        train, val, layout = _split(items["all"], val_fraction, seed)
    return DataSplits(_samples(train), _samples(val), {"classes": classes}, skipped=skipped,
                      description=f"{root} ({len(classes)} classes, {layout})")


# ------------------------------------------------------------------------------------------------ CSV

def is_csv(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() in (".csv", ".tsv")


def csv_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                reference_info: dict | None = None, path_column: str | None = None,
                label_column: str | None = None) -> DataSplits:
    """Rows of (path, label), paths relative to the CSV's folder. A 'split' column with train/val
    values, when present, is used instead of a random split. A missing path or label (empty, NaN, nan,
    NA, None: zoo_core.is_missing) is an error naming the file and line."""
    path = Path(source)
    rows, _ = read_csv(path, {"path": PATH_COLUMNS, "label": LABEL_COLUMNS, "split": ("split",)}, optional=["split"],
                       chosen={"path": path_column, "label": label_column})
    for n, r in enumerate(rows):  # a missing label is fixed in the file, not made a class named 'NaN'
        for column in ("path", "label"):
            if is_missing(r[column]):
                raise ZooError(f"{path}:{n + 2}: the {column} is missing ({r[column] or 'empty'!r}); fill it in or "
                               "remove the row")
    files = [resolve_path(path, r["path"]) for r in rows]
    readable, skipped = check_listed_images(files)
    kept = [(f, r) for f, r in zip(files, rows) if f in readable]
    if not kept:
        raise ZooError(f"{path}: none of the {len(skipped)} image(s) it lists could be read{skipped_example(skipped)}; "
                       "paths are relative to the CSV's folder")
    if reference_info is None:
        lost = sorted({r["label"] for r in rows} - {r["label"] for _, r in kept})
        lost_files = {str(f) for f, r in zip(files, rows) if r["label"] in lost}
        _check_unreadable_classes(lost, "label", str(path), [s for s in skipped if s[0] in lost_files])
    classes = _check_classes(sorted({r["label"] for _, r in kept}), str(path), reference_info)
    index = {c: i for i, c in enumerate(classes)}
    items = [(f, index[r["label"]]) for f, r in kept]
    splits = split_column([r["split"] for _, r in kept], str(path))  # (read_csv checked every row)
    if splits:
        train = [it for it, s in zip(items, splits) if s == "train"]
        val = [it for it, s in zip(items, splits) if s == "val"]
        layout = "its split column"
    else:
        train, val, layout = _split(items, val_fraction, seed)
    return DataSplits(_samples(train), _samples(val), {"classes": classes}, skipped=skipped,
                      description=f"{path} ({len(items)} images, {len(classes)} classes, {layout})")
