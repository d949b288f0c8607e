"""Identity data: a folder per identity, a CSV of (path, identity), or the embedded photo identities.

Every dataset splits the same way, by identity, so that validation measures what a gallery of new
people or products meets (open set):

- `val_fraction` of the identities are held out of training entirely: their images are the open-set
  gallery, and those with two or more images are also queries (each against all the others);
- of every training identity with at least `closed_per_identity + 2` images, `closed_per_identity`
  images are held out as well: the closed-set figures (identities the model was trained on).

A sample's target is {"label": training class index or -1 (held out), "identity": index over all
identities, "path": the file}; the loss reads "label", the retrieval metrics "identity".
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from zoo_core import (
    PATH_COLUMNS,
    DataConfig,
    DataSplits,
    ZooError,
    cache_dir,
    check_listed_images,
    find_images,
    read_csv,
    resolve_path,
    scan_images,
    skipped_example,
)

LAYOUT_HINT = "expected DIR/<identity>/*.jpg: one folder per person, product or animal"
IDENTITY_COLUMNS = ("identity", "id", "label", "class", "person")


# ------------------------------------------------------------------------------------------ the split

def split_identities(items: Sequence[tuple[Any, str]], *, seed: int, val_fraction: float, closed_per_identity: int,
                     reference_info: dict | None, where: str, description: str, samples_per_identity: int = 4) -> DataSplits:
    """(image, identity name) pairs -> DataSplits split by identity (see the module's docstring)."""
    by_identity: dict[str, list[Any]] = {}
    for image, name in items:
        by_identity.setdefault(name, []).append(image)
    names = sorted(by_identity)
    if val_fraction >= 1.0:
        held = set(names)  # evaluation on other data (zoo eval --data): every identity is new to the model
    else:
        if len(names) < 3:
            raise ZooError(f"{where}: found {len(names)} identit{'y' if len(names) == 1 else 'ies'}; open-set "
                           "validation holds some out of training, so give at least 3")
        rng = np.random.default_rng(seed)
        n_held = min(len(names) - 2, max(1, round(len(names) * val_fraction)))
        held = {names[i] for i in rng.choice(len(names), n_held, replace=False)}
    # the training identities, the loss's classes; at evaluation the model's (its own split, rebuilt by seed)
    classes = list(reference_info["classes"]) if reference_info is not None else [n for n in names if n not in held]
    index = {n: i for i, n in enumerate(classes)}
    every = {n: i for i, n in enumerate(names)}
    rng = np.random.default_rng(seed + 1)
    train, val = [], []
    for name in names:
        images = by_identity[name]
        label = index.get(name, -1) if name not in held else -1
        samples = [{"image": im, "id": str(im),
                    "target": {"label": label, "identity": every[name], "path": str(im)}} for im in images]
        if name in held:
            val += samples
            continue
        order = rng.permutation(len(samples))
        n_closed = closed_per_identity if len(samples) >= closed_per_identity + 2 else 0
        val += [samples[i] for i in order[:n_closed]]
        train += [samples[i] for i in order[n_closed:]]
    single = [n for n in held if len(by_identity[n]) == 1]
    notes = []
    if single:
        notes.append(f"{len(single)} held-out identit{'y has' if len(single) == 1 else 'ies have'} one image: "
                     "in the gallery, never a query")
    info = {"classes": classes}
    labels = [s["target"]["label"] for s in train]
    layout = (f"{len(names)} identities, all evaluated as new (open set)" if len(held) == len(names) else
              f"{len(names)} identities: {len(names) - len(held)} trained on, {len(held)} held out for open-set validation")
    return DataSplits(train, val, info, description=f"{description} ({layout}){'; ' + '; '.join(notes) if notes else ''}",
                      batch_sampler=PKSampler.factory(labels, samples_per_identity) if labels else None)


class PKSampler:
    """Batches of P identities x K images each (K = samples_per_identity, P = batch_size // K), drawn from
    the generator the trainer re-seeds every epoch: a triplet or multi-similarity loss needs positives in
    every batch, and margin losses train better with them. An identity with fewer than K images repeats
    some. An epoch is as many batches as a plain shuffle would make."""

    def __init__(self, labels: Sequence[int], batch_size: int, generator: torch.Generator, k: int):
        self.by_label: dict[int, list[int]] = {}
        for i, y in enumerate(labels):
            self.by_label.setdefault(int(y), []).append(i)
        self.k = max(1, min(k, batch_size))
        self.p = max(1, batch_size // self.k)
        self.generator, self.n = generator, len(labels)
        self.batches = max(1, self.n // (self.p * self.k))

    @classmethod
    def factory(cls, labels: Sequence[int], k: int):
        labels = list(labels)
        return lambda dataset, batch_size, generator: cls(labels, batch_size, generator, k)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        ids = list(self.by_label)
        for _ in range(self.batches):
            chosen = torch.randperm(len(ids), generator=self.generator)[:self.p].tolist()
            batch = []
            for c in chosen:
                members = self.by_label[ids[c]]
                if len(members) >= self.k:
                    picks = torch.randperm(len(members), generator=self.generator)[:self.k].tolist()
                else:
                    picks = torch.randint(len(members), (self.k,), generator=self.generator).tolist()
                batch += [members[j] for j in picks]
            yield batch


def _check_options(val_fraction: float, closed_per_identity: int, samples_per_identity: int) -> None:
    if closed_per_identity < 0:
        raise ZooError(f"dataset option closed_per_identity must be >= 0, got {closed_per_identity}")
    if samples_per_identity < 2:
        raise ZooError(f"dataset option samples_per_identity must be >= 2 (positives in each batch), got {samples_per_identity}")


# --------------------------------------------------------------------------------------- identity folder

def is_folder(source: str) -> bool:
    return Path(source).is_dir()


def folder_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None, closed_per_identity: int = 2,
                   samples_per_identity: int = 4) -> DataSplits:
    """DIR/<identity>/<image>: every sub-folder an identity, its images found recursively."""
    _check_options(val_fraction, closed_per_identity, samples_per_identity)
    root = Path(source)
    if not root.is_dir():
        raise ZooError(f"{root}: not a directory ({LAYOUT_HINT})")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ZooError(f"{root}: no identity folders ({LAYOUT_HINT})")
    files = {d.name: find_images([d]) for d in folders}
    empty = [name for name, f in files.items() if not f]
    if empty:
        raise ZooError(f"{root / empty[0]}: an identity folder with no images in it"
                       f"{f' ({len(empty)} such folders)' if len(empty) > 1 else ''}; add images or remove it")
    good, skipped = scan_images([p for f in files.values() for p in f])
    readable = set(good)
    items = [(p, name) for name, f in files.items() for p in f if p in readable]
    if not items:
        raise ZooError(f"{root}: none of the {len(skipped)} image file(s) could be read{skipped_example(skipped)}")
    data = split_identities(items, seed=seed, val_fraction=val_fraction, closed_per_identity=closed_per_identity,
                            reference_info=reference_info, where=str(root), description=str(root),
                            samples_per_identity=samples_per_identity)
    data.skipped = skipped
    return data


# ------------------------------------------------------------------------------------------------ CSV

def is_csv(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() in (".csv", ".tsv")


def csv_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                reference_info: dict | None = None, closed_per_identity: int = 2, samples_per_identity: int = 4,
                path_column: str | None = None, identity_column: str | None = None) -> DataSplits:
    """Rows of (path, identity), paths relative to the CSV's folder."""
    _check_options(val_fraction, closed_per_identity, samples_per_identity)
    path = Path(source)
    rows, _ = read_csv(path, {"path": PATH_COLUMNS, "identity": IDENTITY_COLUMNS},
                       chosen={"path": path_column, "identity": identity_column})
    skipped = [(f"{path}:{n + 2}", "empty path or identity") for n, r in enumerate(rows) if not r["path"] or not r["identity"]]
    rows = [r for r in rows if r["path"] and r["identity"]]
    files = [resolve_path(path, r["path"]) for r in rows]
    readable, bad = check_listed_images(files)
    skipped += bad
    items = [(f, r["identity"]) for f, r in zip(files, rows) if f in readable]
    if not items:
        raise ZooError(f"{path}: none of the {len(skipped)} image(s) it lists could be read{skipped_example(skipped)}; "
                       "paths are relative to the CSV's folder")
    data = split_identities(items, seed=seed, val_fraction=val_fraction, closed_per_identity=closed_per_identity,
                            reference_info=reference_info, where=str(path), description=str(path),
                            samples_per_identity=samples_per_identity)
    data.skipped = skipped
    return data


# ------------------------------------------------------------------------------ the embedded identities

# Real images that ship with scikit-image (photos, a micrograph, textures) and scikit-learn (two photos).
SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "brick",
           "grass", "gravel", "sklearn:china", "sklearn:flower")
VERSION = "1"  # bump when the recipe below changes: the cached files are keyed by it


def _source_image(name: str) -> np.ndarray:
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name.split(':')[1]}.jpg")
    from zoo_core import skimage_image

    return skimage_image(name)


def _view(rng: np.random.Generator, photo: np.ndarray, cx: float, cy: float, side: float, size: int):
    """One sighting of an identity: the square region of `side` px centred at (cx, cy), seen shifted by up
    to 12% of its side, scaled 0.8-1.25x, rotated by any angle, its hue turned by any amount, saturation,
    brightness and contrast changed, sometimes grey or blurred, with sensor noise."""
    from PIL import Image, ImageFilter

    s = side * rng.uniform(0.8, 1.25)
    x = cx + rng.uniform(-0.12, 0.12) * side
    y = cy + rng.uniform(-0.12, 0.12) * side
    half = s * 0.75  # room for the rotation's corners
    h, w = photo.shape[:2]
    box = (int(max(0, x - half)), int(max(0, y - half)), int(min(w, x + half)), int(min(h, y + half)))
    img = Image.fromarray(photo[box[1]:box[3], box[0]:box[2]])
    img = img.rotate(float(rng.uniform(0, 360)), resample=Image.BILINEAR, center=(x - box[0], y - box[1]))
    left, top = x - box[0] - s / 2, y - box[1] - s / 2
    img = img.crop((int(left), int(top), int(left + s), int(top + s))).resize((size, size), Image.BILINEAR)
    hsv = np.asarray(img.convert("HSV"), dtype=np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(0, 256)) % 256
    hsv[..., 1] *= rng.uniform(0.4, 1.6)
    img = Image.fromarray(np.clip(hsv, 0, 255).astype(np.uint8), "HSV").convert("RGB")
    arr = np.asarray(img, dtype=np.float32)
    arr = (arr - arr.mean()) * rng.uniform(0.6, 1.4) + arr.mean() * rng.uniform(0.6, 1.4)
    arr += rng.normal(0, rng.uniform(0, 10), arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.2:
        img = img.convert("L").convert("RGB")
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    return img


def generate_identities(root: Path, identities: int, per_identity: int, size: int, seed: int) -> Path:
    """Write root/<identity>/<n>.png. Identities are square regions of the source images, spread over
    them evenly (the same photo gives several, which look alike), each region a quarter to a third of the
    photo's shorter side."""
    rng = np.random.default_rng(seed)
    tmp = root.with_name(root.name + f".{os.getpid()}.tmp")  # renamed into place whole: a kill leaves no half set
    tmp.mkdir(parents=True, exist_ok=True)
    per_source = math.ceil(identities / len(SOURCES))
    made = 0
    for s, source in enumerate(SOURCES):
        photo = _source_image(source)
        h, w = photo.shape[:2]
        for j in range(per_source):
            if made == identities:
                break
            side = min(h, w) * rng.uniform(0.25, 0.33)
            margin = side * 0.9
            cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
            folder = tmp / f"{source.replace('sklearn:', '')}-{j:02d}"
            folder.mkdir()
            for n in range(per_identity):
                _view(rng, photo, cx, cy, side, size).save(folder / f"{n:02d}.png")
            made += 1
    try:
        tmp.rename(root)
    except OSError:  # another process finished first: its copy is the same
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def photo_identities(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                     reference_info: dict | None = None, identities: int = 110, per_identity: int = 10,
                     size: int = 96, closed_per_identity: int = 2, samples_per_identity: int = 4) -> DataSplits:
    """The embedded default: `identities` regions of real photos, `per_identity` sightings each (see
    _view), generated with a fixed seed into zoo's cache on first use, then read as an identity folder."""
    _check_options(val_fraction, closed_per_identity, samples_per_identity)
    if identities < 3 or per_identity < 2 or size < 16:
        raise ZooError("dataset options: identities >= 3, per_identity >= 2 and size >= 16")
    key = hashlib.sha256(f"{VERSION}-{identities}-{per_identity}-{size}".encode()).hexdigest()[:12]
    root = cache_dir("embed") / f"photo-identities-{key}"
    if not root.is_dir():
        generate_identities(root, identities, per_identity, size, seed=12345)  # the data is the same for every run
    items = [(p, p.parent.name) for d in sorted(root.iterdir()) if d.is_dir() for p in sorted(d.glob("*.png"))]
    return split_identities(items, seed=seed, val_fraction=val_fraction, closed_per_identity=closed_per_identity,
                            reference_info=reference_info, where=str(root), samples_per_identity=samples_per_identity,
                            description=f"photo identities: {identities} regions of real photos x {per_identity} "
                                        f"sightings (hue, rotation, scale, light changed)")
