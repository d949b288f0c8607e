"""Classification data: the embedded digits, a folder per class, or a CSV of (path, label)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from zoo_core import DataConfig, DataSplits, ZooError
from zoo_core.data import ImageDataset, build_transforms, find_images, scan_images, stratified_split

LAYOUT_HINT = "expected DIR/<class>/*.jpg, or DIR/train/<class>/ and DIR/val/<class>/"


def _splits(train_items, val_items, classes, data_config: DataConfig, augment: str, **kw: Any) -> DataSplits:
    train_tf, eval_tf = build_transforms(data_config, augment)
    c = data_config.channels
    return DataSplits(ImageDataset(train_items, train_tf, c), ImageDataset(val_items, eval_tf, c),
                      info={"classes": list(classes)}, **kw)


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


def _example(skipped: Sequence[tuple[str, str]]) -> str:
    return f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""


def _check_unreadable_classes(lost: Sequence[str], what: str, where: str, skipped: Sequence[tuple[str, str]]) -> None:
    """Training on a class none of whose images can be read would make an output that is never right.
    `skipped`: the skipped files of the `lost` classes."""
    if lost:
        raise ZooError(f"{where}: no readable image for {what}(s) {', '.join(lost)} "
                       f"({len(skipped)} file(s) skipped){_example(skipped)}")


# --------------------------------------------------------------------------------------------- digits

def digits_images() -> tuple[list[Image.Image], np.ndarray]:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels) as 8-bit PIL images, and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = [Image.fromarray(np.round(img * (255.0 / 16.0)).astype(np.uint8), mode="L") for img in d.images]
    return images, d.target


def digits_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float, augment: str,
                   reference_info: dict | None = None) -> DataSplits:
    images, labels = digits_images()
    train_idx, val_idx = stratified_split(labels.tolist(), val_fraction, seed)
    classes = [str(i) for i in range(10)]
    return _splits([(images[i], int(labels[i])) for i in train_idx], [(images[i], int(labels[i])) for i in val_idx],
                   classes, data_config, augment, in_memory=True,
                   description="scikit-learn digits (1,797 real 8x8 handwritten digits, 10 classes)")


# --------------------------------------------------------------------------------------- image folder

def is_folder(source: str) -> bool:
    return Path(source).is_dir()


def _class_folders(root: Path) -> dict[str, list[Path]]:
    return {d.name: find_images([d]) for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))}


def _folder_items(classes: list[str], by_class: dict[str, list[Path]]) -> tuple[list, list]:
    """(path, class index) for every readable image, and (path, reason) for the rest."""
    paths = [p for c in by_class for p in by_class[c]]
    good, bad = scan_images(paths)
    ok = set(good)
    index = {c: i for i, c in enumerate(classes)}
    return [(p, index[c]) for c in by_class for p in by_class[c] if p in ok], bad


def folder_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float, augment: str,
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
        raise ZooError(f"{root}: none of the {len(skipped)} image file(s) could be read{_example(skipped)}")
    if reference_info is None:
        readable = {y for part in items.values() for _, y in part}
        lost = [c for i, c in enumerate(classes) if i not in readable]
        lost_files = {str(f) for folders in by_part.values() for c in lost for f in folders.get(c, [])}
        _check_unreadable_classes(lost, "class folder", str(root), [s for s in skipped if s[0] in lost_files])
    if presplit:
        train, val = items["train"], items["val"]
    else:
        train_idx, val_idx = stratified_split([y for _, y in items["all"]], val_fraction, seed)
        train, val = [items["all"][i] for i in train_idx], [items["all"][i] for i in val_idx]
    layout = "train/ and val/ folders" if presplit else f"a seeded stratified {1 - val_fraction:.0%}/{val_fraction:.0%} split"
    return _splits(train, val, classes, data_config, augment, skipped=skipped,
                   description=f"{root} ({len(classes)} classes, {layout})")


# ------------------------------------------------------------------------------------------------ CSV

PATH_COLUMNS = ("path", "file", "filename", "image", "image_path", "img")
LABEL_COLUMNS = ("label", "class", "target", "category")


def is_csv(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() in (".csv", ".tsv")


def _pick(columns: list[str], wanted: str | None, choices: tuple[str, ...], what: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise ZooError(f"{path}: no column '{wanted}' (columns: {', '.join(columns)})")
        return wanted
    lower = {c.strip().lower(): c for c in columns}
    for name in choices:
        if name in lower:
            return lower[name]
    raise ZooError(f"{path}: missing the {what} column (columns: {', '.join(columns) or 'none'}); name it one of "
                   f"{', '.join(choices)} or pass --set dataset.{what}_column=NAME")


def read_labels_csv(path: Path, path_column: str | None, label_column: str | None) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ZooError(f"{path}: not a UTF-8 text CSV file") from None
    except OSError as e:
        raise ZooError(f"{path}: cannot read ({e.strerror})") from None
    if not text.strip():
        raise ZooError(f"{path}: the CSV file is empty")
    dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    try:
        reader = csv.DictReader(text.splitlines(), dialect=dialect)
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        pcol = _pick(columns, path_column, PATH_COLUMNS, "path", path)
        lcol = _pick(columns, label_column, LABEL_COLUMNS, "label", path)
        rows = [{"path": (r.get(pcol) or "").strip(), "label": (r.get(lcol) or "").strip(),
                 "split": (r.get("split") or "").strip().lower()} for r in reader]
    except csv.Error as e:
        raise ZooError(f"{path}: malformed CSV ({e})") from None
    if not rows:
        raise ZooError(f"{path}: the CSV has a header but no rows")
    return rows


def csv_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float, augment: str,
                reference_info: dict | None = None, path_column: str | None = None,
                label_column: str | None = None) -> DataSplits:
    """Rows of (path, label), paths relative to the CSV's folder. A 'split' column with train/val
    values, when present, is used instead of a random split."""
    path = Path(source)
    rows = read_labels_csv(path, path_column, label_column)
    skipped = [(f"{path}:{n + 2}", "empty path or label") for n, r in enumerate(rows) if not r["path"] or not r["label"]]
    rows = [r for r in rows if r["path"] and r["label"]]
    files = [(path.parent / r["path"]).resolve() if not Path(r["path"]).is_absolute() else Path(r["path"]) for r in rows]
    missing = {f for f in files if not f.is_file()}
    skipped += [(str(f), "file not found") for f in sorted(missing)]
    good, bad = scan_images([f for f in files if f not in missing])
    skipped += bad
    ok = set(good)
    kept = [(f, r) for f, r in zip(files, rows) if f in ok]
    if not kept:
        raise ZooError(f"{path}: none of the {len(skipped)} image(s) it lists could be read{_example(skipped)}; "
                       "paths are relative to the CSV's folder")
    if reference_info is None:
        lost = sorted({r["label"] for r in rows} - {r["label"] for _, r in kept})
        lost_files = {str(f) for f, r in zip(files, rows) if r["label"] in lost}
        _check_unreadable_classes(lost, "label", str(path), [s for s in skipped if s[0] in lost_files])
    classes = _check_classes(sorted({r["label"] for _, r in kept}), str(path), reference_info)
    index = {c: i for i, c in enumerate(classes)}
    items = [(f, index[r["label"]]) for f, r in kept]
    splits = [r["split"] for _, r in kept]
    if splits and all(s in ("train", "val") for s in splits):
        train = [it for it, s in zip(items, splits) if s == "train"]
        val = [it for it, s in zip(items, splits) if s == "val"]
        layout = "its split column"
    else:
        train_idx, val_idx = stratified_split([y for _, y in items], val_fraction, seed)
        train, val = [items[i] for i in train_idx], [items[i] for i in val_idx]
        layout = f"a seeded stratified {1 - val_fraction:.0%}/{val_fraction:.0%} split"
    return _splits(train, val, classes, data_config, augment, skipped=skipped,
                   description=f"{path} ({len(items)} images, {len(classes)} classes, {layout})")
