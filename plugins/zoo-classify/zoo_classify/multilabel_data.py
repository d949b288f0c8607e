"""Multi-label data: generated captchas (embedded), a CSV with a label list per row, or a folder per label.

Targets are multi-hot float tensors, one entry per label of info["classes"]."""

from __future__ import annotations

import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from zoo_core import (
    PATH_COLUMNS,
    DataConfig,
    DataSplits,
    ZooError,
    atomic_write,
    cache_dir,
    check_listed_images,
    find_images,
    random_split,
    is_missing,
    read_csv,
    resolve_path,
    scan_images,
    skipped_example,
    split_column,
)

LABELS_COLUMNS = ("labels", "tags", "label", "classes", "class", "categories", "category", "target")
SEPARATORS = ";,|"  # what a label list is likely separated by; a label holding another one is a mistake


def _multi_hot(indices: Sequence[int], n: int) -> torch.Tensor:
    target = torch.zeros(n)
    target[list(indices)] = 1.0
    return target


def _splits(items: list[tuple[Any, list[int]]], classes: list[str], val_fraction: float, seed: int,
            presplit: list[str] | None = None) -> tuple[list, list, str]:
    samples = [{"image": image, "target": _multi_hot(labels, len(classes))} for image, labels in items]
    if presplit is not None:
        return ([s for s, p in zip(samples, presplit) if p == "train"], [s for s, p in zip(samples, presplit) if p == "val"],
                "its split column")
    train_idx, val_idx = random_split(len(samples), val_fraction, seed)
    return ([samples[i] for i in train_idx], [samples[i] for i in val_idx],
            f"a seeded random {1 - val_fraction:.0%}/{val_fraction:.0%} split")


def _class_list(found: Sequence[str], where: str, reference_info: dict | None, declared: list[str] | None) -> list[str]:
    """The labels to index by: the model's at evaluation time, the declared list, or the data's own (sorted)."""
    if reference_info is not None:
        return list(reference_info["classes"])
    if declared:
        return declared
    if len(set(found)) < 2:
        raise ZooError(f"{where}: found {len(set(found))} distinct label(s); multi-label training needs at least two")
    return sorted(set(found), key=str)


# ------------------------------------------------------------------------------------------------ CSV

def is_csv(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() in (".csv", ".tsv")


def parse_labels(text: str, separator: str, where: str) -> list[str]:
    """A row's label list ('cat;outdoor'), or a one-line error naming file:line."""
    if is_missing(text):
        what = "empty label list" if not text.strip() else f"the label list is missing ({text.strip()!r})"
        raise ZooError(f"{where}: {what}; every image needs at least one label, separated by '{separator}'")
    labels = [t.strip() for t in text.split(separator)]
    if any(not t for t in labels):
        raise ZooError(f"{where}: empty label in '{text}' (a doubled or trailing '{separator}'?); "
                       f"labels are separated by '{separator}'")
    if any(is_missing(t) for t in labels):
        raise ZooError(f"{where}: a missing label in '{text}' (NaN, None, NA); name the label or remove it")
    for t in labels:
        other = next((c for c in SEPARATORS if c != separator and c in t), None)
        if other:
            raise ZooError(f"{where}: label '{t}' contains '{other}' but labels are separated by '{separator}'; "
                           f"fix the row, or pass --set dataset.separator='{other}' if that is the separator")
    return list(dict.fromkeys(labels))


def csv_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                reference_info: dict | None = None, path_column: str | None = None, labels_column: str | None = None,
                separator: str = ";", classes: str = "") -> DataSplits:
    """Rows of (path, label list): `photo.jpg,cat;outdoor`, paths relative to the CSV. `classes`
    ('cat;dog;outdoor', same separator) declares the labels; a row naming another one is an error.
    An optional split column (train/val) is used instead of a random split."""
    path = Path(source)
    if len(separator) != 1:
        raise ZooError(f"--set dataset.separator: one character, got {separator!r}")
    rows, _ = read_csv(path, {"path": PATH_COLUMNS, "labels": LABELS_COLUMNS, "split": ("split",)}, optional=["split"],
                       chosen={"path": path_column, "labels": labels_column})
    declared = parse_labels(classes, separator, "--set dataset.classes") if classes else None
    known = list(reference_info["classes"]) if reference_info is not None else declared
    parsed = []
    for n, r in enumerate(rows):
        where = f"{path}:{n + 2}"
        if not r["path"]:
            raise ZooError(f"{where}: empty path")
        labels = parse_labels(r["labels"], separator, where)
        unknown = [t for t in labels if known is not None and t not in known]
        if unknown:
            whose = "this model's labels" if reference_info is not None else "the class list"
            raise ZooError(f"{where}: label '{unknown[0]}' is not in {whose} ({', '.join(known)})")
        parsed.append((resolve_path(path, r["path"]), labels, r["split"].lower()))
    readable, skipped = check_listed_images([f for f, _, _ in parsed])
    kept = [p for p in parsed if p[0] in readable]
    if not kept:
        raise ZooError(f"{path}: none of the {len(skipped)} image(s) it lists could be read{skipped_example(skipped)}; "
                       "paths are relative to the CSV's folder")
    names = _class_list([t for _, labels, _ in kept for t in labels], str(path), reference_info, declared)
    index = {c: i for i, c in enumerate(names)}
    items = [(f, [index[t] for t in labels]) for f, labels, _ in kept]
    presplit = split_column([s for _, _, s in kept], str(path))  # (read_csv checked every row)
    train, val, layout = _splits(items, names, val_fraction, seed, presplit)
    return DataSplits(train, val, {"classes": names}, skipped=skipped,
                      description=f"{path} ({len(items)} images, {len(names)} labels, {layout})")


# --------------------------------------------------------------------------------------------- folder

def is_folder(source: str) -> bool:
    return Path(source).is_dir()


def folder_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None) -> DataSplits:
    """DIR/<label>/<file>: a file name found in several label folders (copies or links of one image)
    has all those labels. DIR/cat/p1.jpg and DIR/outdoor/p1.jpg make p1.jpg "cat" and "outdoor"."""
    root = Path(source)
    hint = "expected DIR/<label>/<image>, the same file name in every folder of a label it has"
    if not root.is_dir():
        raise ZooError(f"{root}: not a directory ({hint})")
    folders = {d.name: find_images([d]) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    folders = {name: files for name, files in folders.items() if files}
    if not folders:
        raise ZooError(f"{root}: no label folders with images in them ({hint})")
    if reference_info is not None:
        unknown = sorted(set(folders) - set(reference_info["classes"]))
        if unknown:
            raise ZooError(f"{root}/{unknown[0]}: '{unknown[0]}' is not one of this model's labels "
                           f"({', '.join(reference_info['classes'])})")
    names = _class_list(list(folders), str(root), reference_info, None)
    first: dict[str, Path] = {}  # image name -> the file read for it
    labels: dict[str, list[int]] = {}
    for label, files in folders.items():
        for f in files:
            key = str(f.relative_to(root / label))
            first.setdefault(key, f)
            labels.setdefault(key, []).append(names.index(label))
    good, skipped = scan_images(list(first.values()))
    ok = set(good)
    items = [(first[k], labels[k]) for k in sorted(first) if first[k] in ok]
    if not items:
        raise ZooError(f"{root}: none of the {len(skipped)} image file(s) could be read{skipped_example(skipped)}")
    train, val, layout = _splits(items, names, val_fraction, seed)
    return DataSplits(train, val, {"classes": names}, skipped=skipped,
                      description=f"{root} ({len(items)} images, {len(names)} labels, {layout})")


# -------------------------------------------------------------------------------------------- captcha

SYMBOLS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LENGTH = 4
CAPTCHA_SIZE = (100, 40)  # width, height: small enough to draw fast and train on a CPU, large enough to read
CHUNK = 250  # images drawn per seeded chunk: the same images whatever the number of processes


class _SeededSecrets:
    """The `secrets` functions the captcha package draws with, from a seeded generator: its images
    are random by design, ours must be the same every run."""

    def __init__(self, rng: random.Random):
        self.randbelow, self.randbits, self.choice = rng.randrange, rng.getrandbits, rng.choice


def _draw_chunk(args: tuple[int, int, int]) -> tuple[np.ndarray, list[str]]:
    seed, chunk, count = args
    import captcha.image as captcha_image

    rng = random.Random(f"zoo-captcha-{seed}-{chunk}")
    saved, captcha_image.secrets = captcha_image.secrets, _SeededSecrets(rng)
    try:
        drawer = captcha_image.ImageCaptcha(width=CAPTCHA_SIZE[0], height=CAPTCHA_SIZE[1], font_sizes=(28, 32, 36))
        texts = ["".join(rng.choice(SYMBOLS) for _ in range(LENGTH)) for _ in range(count)]
        images = np.stack([np.asarray(drawer.generate_image(t).convert("L")) for t in texts])
    finally:
        captcha_image.secrets = saved
    return images, texts


def captcha_images(count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """`count` seeded captchas (uint8, N x H x W grey) and their texts, drawn once and then read from
    the user cache (ZOO_CACHE, else ~/.cache/zoo/captcha)."""
    try:
        import captcha
    except ImportError:
        raise ZooError("the captcha dataset draws its images with the 'captcha' package, which is not installed: "
                       "pip install captcha") from None
    version = getattr(captcha, "__version__", "unknown")
    path = cache_dir("captcha") / f"captcha-v{version}-{CAPTCHA_SIZE[0]}x{CAPTCHA_SIZE[1]}-n{count}-seed{seed}.npz"
    if path.is_file():
        try:
            with np.load(path) as cached:
                return cached["images"], [str(t) for t in cached["texts"]]
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is drawn again
    from tqdm import tqdm

    jobs = [(seed, i, min(CHUNK, count - i * CHUNK)) for i in range((count + CHUNK - 1) // CHUNK)]
    workers = min(len(jobs), max(1, (os.cpu_count() or 1)))
    with tqdm(total=count, desc=f"drawing {count} captchas (once; cached in {path.parent})", unit="img",
              disable=None, leave=False) as bar:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                parts = []
                for part in pool.map(_draw_chunk, jobs):
                    parts.append(part)
                    bar.update(len(part[1]))
        else:
            parts = []
            for job in jobs:
                parts.append(_draw_chunk(job))
                bar.update(job[2])
    images, texts = np.concatenate([p[0] for p in parts]), [t for p in parts for t in p[1]]

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to the temporary name
            np.savez(f, images=images, texts=np.array(texts))

    atomic_write(path, save)
    return images, texts


def captcha_info() -> dict[str, Any]:
    """Labels "POSITION:SYMBOL" (4 x 36 = 144), grouped by position: exactly one symbol per position."""
    classes = [f"{p + 1}:{s}" for p in range(LENGTH) for s in SYMBOLS]
    return {"classes": classes, "groups": [list(range(p * len(SYMBOLS), (p + 1) * len(SYMBOLS))) for p in range(LENGTH)]}


def captcha_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                    reference_info: dict | None = None, count: int = 6000) -> DataSplits:
    if count < 2:
        raise ZooError(f"--set dataset.count: at least 2 captchas, got {count}")
    images, texts = captcha_images(count, seed)
    info = captcha_info()
    index = {c: i for i, c in enumerate(info["classes"])}
    items = [(Image.fromarray(im, mode="L"), [index[f"{p + 1}:{ch}"] for p, ch in enumerate(t)])
             for im, t in zip(images, texts)]
    train, val, layout = _splits(items, info["classes"], val_fraction, seed)
    return DataSplits(train, val, info, in_memory=True,
                      description=f"generated captchas ({count} images of {LENGTH} characters from {len(SYMBOLS)} "
                                  f"symbols, seed {seed}, {layout})")
