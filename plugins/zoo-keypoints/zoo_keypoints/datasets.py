"""Keypoint data: the embedded drawn faces, the source's CSV layout, and COCO keypoints JSON.

Each dataset returns raw samples {"image": PIL image or path, "target": {"points": tv_tensors.KeyPoints
(K, 2) in the image's pixels, "visible": bool (K,)}}: zoo's v2 transforms move the points with the image,
and the visibility travels beside them. info holds the layout (names, flip pairs, eyes, skeleton; see
points.layout) and "mean_shape", the mean training shape as the model sees it: the metrics' baseline.

A label that is wrong (wrong number of columns, not a number, a point outside its image, an image file
that does not exist) is an error naming the file and line: fixed at its source, not trained on or
quietly dropped. Only images that exist but cannot be decoded are skipped, with their reason."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from zoo_core import (
    DataConfig,
    DataSplits,
    ZooError,
    check_listed_images,
    image_size,
    random_split,
    read_json,
    skipped_example,
    split_column,
)

from .faces import NAMES, SKELETON, generate_faces
from .points import flip_permutation, layout, mean_shape

TOLERANCE = 1.0  # pixels a point may lie outside its image (annotation tools' off-by-one), then clipped


class Item:
    """One labelled image before transforms: where it is (a path, or a PIL image), its points in its own
    pixels (K, 2), which are visible (K,), its size (h, w), and an optional crop box (x0, y0, x1, y1)
    that the image is cut to when loaded (COCO instances in images with several of them)."""

    __slots__ = ("image", "points", "visible", "size", "crop", "id")

    def __init__(self, image, points, visible, size, crop=None, id=""):
        self.image, self.points, self.visible, self.size, self.crop, self.id = image, points, visible, size, crop, id


class KeypointSamples(torch.utils.data.Dataset):
    """Raw samples for zoo's SampleDataset; a cropped item is loaded and cut here, lazily."""

    def __init__(self, items: list[Item], k: int, flip_pairs):
        self.items = items
        # how points swap under a horizontal flip, carried by each sample to the augmentation
        self.flip = torch.tensor(flip_permutation(k, flip_pairs)) if flip_pairs else None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        it = self.items[i]
        image = it.image
        if it.crop is not None:
            from zoo_core import open_image

            image = open_image(image).crop(tuple(int(v) for v in it.crop))
        h, w = it.size
        points = tv_tensors.KeyPoints(torch.as_tensor(it.points, dtype=torch.float32).reshape(-1, 2), canvas_size=(h, w))
        return {"image": image, "target": {"points": points, "visible": torch.as_tensor(it.visible, dtype=torch.bool),
                                           "flip": self.flip},
                "id": it.id or (str(it.image) if not hasattr(it.image, "size") else "")}


def _splits(items: list[Item], layout_info: dict[str, Any], *, data_config: DataConfig, seed: int, val_fraction: float,
            reference_info: dict | None, description: str, skipped=(), split_names: list[str] | None = None,
            in_memory: bool = False) -> DataSplits:
    if split_names and val_fraction < 1.0:  # checked by zoo_core.split_column: train or val in every item
        train_idx = [i for i, s in enumerate(split_names) if s == "train"]
        val_idx = [i for i, s in enumerate(split_names) if s == "val"]
        description += ", its split column"
    else:
        train_idx, val_idx = random_split(len(items), val_fraction, seed)
        if val_fraction < 1.0:
            description += f", a seeded {1 - val_fraction:.0%}/{val_fraction:.0%} split"
    train, val = [items[i] for i in train_idx], [items[i] for i in val_idx]
    if reference_info is not None and reference_info.get("mean_shape"):
        # evaluating a trained model: its own layout and baseline, so points are read as it learned them
        k = len(reference_info["keypoints"])
        if len(layout_info["keypoints"]) != k:
            raise ZooError(f"the data has {len(layout_info['keypoints'])} keypoints per image, the model predicts {k}")
        info = {key: reference_info[key] for key in ("keypoints", "flip_pairs", "eyes", "skeleton", "mean_shape")
                if key in reference_info}
    else:
        basis = train or items
        info = {**layout_info, "mean_shape": mean_shape([it.points for it in basis], [it.visible for it in basis],
                                                        [it.size for it in basis], data_config)}
    k = len(info["keypoints"])
    return DataSplits(KeypointSamples(train, k, info["flip_pairs"]), KeypointSamples(val, k, info["flip_pairs"]), info, skipped=list(skipped),
                      description=description, in_memory=in_memory)


# -------------------------------------------------------------------------------------- drawn-faces

def faces_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                  reference_info: dict | None = None, count: int = 1000, min_size: int = 96,
                  max_size: int = 160) -> DataSplits:
    if count < 2:
        raise ZooError(f"dataset 'drawn-faces' option count must be >= 2, got {count}")
    if not 32 <= min_size <= max_size <= 2048:
        raise ZooError(f"dataset 'drawn-faces': need 32 <= min_size <= max_size <= 2048, got {min_size}, {max_size}")
    items = [Item(image, points, visible, size, id=f"face-{i:04d}")
             for i, (image, points, visible, size) in enumerate(generate_faces(count, seed, min_size, max_size))]
    info = layout(NAMES, skeleton=SKELETON, where="dataset 'drawn-faces'")
    return _splits(items, info, data_config=data_config, seed=seed, val_fraction=val_fraction,
                   reference_info=reference_info, in_memory=True,
                   description=f"drawn-faces ({count} drawn faces with {len(NAMES)} exact landmarks on "
                               f"{min_size}-{max_size} px canvases, seed {seed}")


# ---------------------------------------------------------------------------------------------- CSV

def is_csv(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() in (".csv", ".tsv")


def _number(cell: str) -> float | None:
    """A coordinate, or None for a missing one (an empty cell, nan, or a negative value: not labelled)."""
    cell = cell.strip()
    if not cell or cell.lower() in ("nan", "na", "none", "null"):
        return None
    value = float(cell)  # ValueError: the caller names the line
    return None if math.isnan(value) or value < 0 else value


def _names_from_header(header: list[str]) -> list[str] | None:
    """['nose_x', 'nose_y', ...] or ['x0', 'y0', ...] -> point names; None if the header says nothing."""
    if len(header) % 2:
        return None
    names = []
    for a, b in zip(header[::2], header[1::2]):
        a, b = a.strip(), b.strip()
        ma, mb = re.fullmatch(r"(.*?)[_ ]?x", a, re.I), re.fullmatch(r"(.*?)[_ ]?y", b, re.I)
        if ma and mb and ma.group(1) == mb.group(1):
            names.append(ma.group(1) or str(len(names)))
        elif re.fullmatch(r"x[_ ]?(\w+)", a, re.I) and re.fullmatch(r"y[_ ]?(\w+)", b, re.I):
            names.append(re.fullmatch(r"x[_ ]?(\w+)", a, re.I).group(1))
        else:
            return None
    return names if len(set(names)) == len(names) else None


def csv_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                reference_info: dict | None = None, image_dir: str = "", names: str = "", flip_pairs: str = "auto",
                eyes: str = "") -> DataSplits:
    """The source's layout: each row an image file, then x0, y0, x1, y1, ... (pixels), with or without a
    header row; images relative to `image_dir` (default: the CSV's folder). An empty, NaN or negative
    coordinate marks a point that is not labelled (masked, not trained on). Point names come from
    `names`, else from a header like nose_x,nose_y, else they are numbers (68 numbered points are read
    as the iBUG face layout: flip pairs and outer eye corners known)."""
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: cannot read as a UTF-8 CSV ({getattr(e, 'strerror', None) or type(e).__name__})") from None
    dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    try:
        rows = [(n + 1, r) for n, r in enumerate(csv.reader(text.splitlines(), dialect=dialect)) if any(c.strip() for c in r)]
    except csv.Error as e:
        raise ZooError(f"{path}: malformed CSV ({e})") from None
    if not rows:
        raise ZooError(f"{path}: the CSV file is empty")
    header = None
    first = rows[0][1]
    try:
        [_number(c) for c in first[1:]]
        has_header = len(first) < 2
    except ValueError:
        has_header = True
    if has_header:
        header, rows = first, rows[1:]
        if not rows:
            raise ZooError(f"{path}: the CSV has a header but no rows")
    width = len(header) if header else len(rows[0][1])
    # an optional last column, named in the header: train / val
    split_col = width - 1 if header and header[-1].strip().lower() == "split" else None
    coordinates = width - 1 - (split_col is not None)
    if coordinates < 2 or coordinates % 2:
        where = f"{path}:{1 if header else rows[0][0]}"
        raise ZooError(f"{where}: expected an image file, then x, y pairs{', then split' if split_col else ''}; got "
                       f"{width} columns")
    k = coordinates // 2
    point_names = ([n.strip() for n in names.split(",")] if names.strip() else
                   (_names_from_header(header[1:1 + 2 * k]) if header else None) or [str(i) for i in range(k)])
    if len(point_names) != k:
        raise ZooError(f"{path}: option names gives {len(point_names)} names for {k} points")
    info = layout(point_names, None if flip_pairs == "auto" else flip_pairs, eyes or None, where=str(path))
    base = Path(image_dir) if image_dir else path.parent
    if image_dir and not base.is_dir():
        raise ZooError(f"--set dataset.image_dir={image_dir}: no such folder")

    parsed = []
    for line, r in rows:
        where = f"{path}:{line}"
        if len(r) != width:
            raise ZooError(f"{where}: expected {width} columns (an image file, {k} x, y pairs"
                           f"{', split' if split_col else ''}), got {len(r)}")
        if not r[0].strip():
            raise ZooError(f"{where}: empty image file name")
        if "\0" in r[0]:
            raise ZooError(f"{where}: a NUL byte in the image file name; fix or remove the row")
        coords = r[1:1 + 2 * k]
        try:
            values = [_number(c) for c in coords]
        except ValueError:
            bad = next(c for c in coords if not _is_number(c))
            raise ZooError(f"{where}: coordinates must be numbers, got {bad!r} (column {coords.index(bad) + 2})") from None
        file = base / r[0].strip() if not Path(r[0].strip()).is_absolute() else Path(r[0].strip())
        if not file.is_file():
            raise ZooError(f"{where}: no image file {r[0].strip()!r} in {base}; point --set dataset.image_dir=DIR at the images")
        parsed.append((where, file, values, r[split_col].strip().lower() if split_col else ""))
    # checked for every row, read or not: None, or train/val in each
    presplit = split_column([p[3] for p in parsed], str(path), [int(p[0].rpartition(":")[2]) for p in parsed])
    readable, skipped = check_listed_images([f for _, f, _, _ in parsed])
    items, split_names = [], []
    for where, file, values, split in parsed:
        if file not in readable:
            continue
        h, w = image_size(file)
        points, visible = np.zeros((k, 2), dtype=np.float32), np.zeros(k, dtype=bool)
        for i in range(k):
            x, y = values[2 * i], values[2 * i + 1]
            if x is None or y is None:
                continue
            if x > w + TOLERANCE or y > h + TOLERANCE:
                raise ZooError(f"{where}: point {i} ({point_names[i]}) at ({x:g}, {y:g}) lies outside its {w}x{h} image "
                               f"{file.name}")
            points[i] = (min(x, w - 1e-3), min(y, h - 1e-3))
            visible[i] = True
        if not visible.any():  # nothing to learn from, and a split of such rows would score a perfect 0.0
            raise ZooError(f"{where}: no labelled point (every coordinate empty, NaN or negative); label at least one "
                           "or remove the row")
        items.append(Item(file, points, visible, (h, w), id=str(file)))
        split_names.append(split)
    if not items:
        raise ZooError(f"{path}: none of the {len(skipped)} image(s) it lists could be read{skipped_example(skipped)}")
    return _splits(items, info, data_config=data_config, seed=seed, val_fraction=val_fraction,
                   reference_info=reference_info, skipped=skipped, split_names=split_names if presplit else None,
                   description=f"{path} ({len(items)} images, {k} points each")


def _is_number(cell: str) -> bool:
    try:
        _number(cell)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------- COCO

def is_coco(source: str) -> bool:
    p = Path(source)
    if not (p.is_file() and p.suffix.lower() == ".json"):
        return False
    with open(p, "rb") as f:
        head = f.read(1 << 16)
    return b'"annotations"' in head or b'"images"' in head or b'"categories"' in head


class _Lines:
    """Where things are in a JSON text: the line of an annotation (by id or order) or an image entry, so
    that an error names file:line like the CSV's do."""

    def __init__(self, text: str):
        self.text = text
        start = text.find('"annotations"')
        self.annotations_at = max(0, start)

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, max(0, pos)) + 1

    def annotation(self, ann: dict, index: int) -> int:
        if "id" in ann:
            m = re.compile(r'"id"\s*:\s*' + re.escape(json.dumps(ann["id"])) + r"\s*[,}\]]").search(self.text, self.annotations_at)
            if m:
                # the annotation's opening brace: the last '{' before its "id"
                return self.line(self.text.rfind("{", self.annotations_at, m.start()))
        m = None
        pos = self.annotations_at
        for _ in range(index + 1):  # the index-th '"keypoints"' after "annotations"
            m = re.compile(r'"keypoints"\s*:\s*\[').search(self.text, pos)
            if not m:
                return self.line(self.annotations_at)
            pos = m.end()
        return self.line(m.start())

    def image(self, file_name: str) -> int:
        m = re.compile(r'"file_name"\s*:\s*' + re.escape(json.dumps(file_name))).search(self.text)
        return self.line(m.start()) if m else 1


def coco_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                 reference_info: dict | None = None, image_dir: str = "", category: str = "", crop: str = "auto",
                 margin: float = 0.15, flip_pairs: str = "auto", eyes: str = "") -> DataSplits:
    """COCO keypoints: `images` (id, file_name, width, height), `annotations` (image_id, keypoints as
    x, y, v triples, optional bbox), `categories` (keypoints names, skeleton 1-based). v = 0 is not
    labelled (masked); v = 1 (occluded) and v = 2 are trained on. Images relative to `image_dir`
    (default: the JSON's folder, or its images/ subfolder). One sample per annotation with a labelled
    point; crop "auto" cuts each instance's box (plus `margin`) out of its image when some image holds
    several instances (people), and keeps whole images otherwise (one face per photo); "box" or "none" force it."""
    path = Path(source)
    data = read_json(path, "a COCO keypoints JSON")  # size, first bytes, UTF-8 and nesting checked in one line
    text = path.read_text(encoding="utf-8-sig")
    if crop not in ("auto", "box", "none"):
        raise ZooError(f"--set dataset.crop={crop}: use auto, box or none")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        raise ZooError(f"{path}: not COCO keypoints JSON (needs lists 'images', 'annotations' and 'categories')")
    lines = _Lines(text)
    categories = [c for c in data["categories"] if isinstance(c, dict) and c.get("keypoints")]
    if category:
        categories = [c for c in categories if str(c.get("name")) == category or str(c.get("id")) == category]
    if not categories:
        raise ZooError(f"{path}: no category with keypoints{f' named {category!r}' if category else ''}")
    if len(categories) > 1:
        raise ZooError(f"{path}: several categories have keypoints ({', '.join(str(c.get('name')) for c in categories)}); "
                       "pick one with --set dataset.category=NAME")
    cat = categories[0]
    names = [str(n) for n in cat["keypoints"]]
    k = len(names)
    skeleton = [(int(a) - 1, int(b) - 1) for a, b in cat.get("skeleton") or []]  # COCO's skeleton is 1-based
    info = layout(names, None if flip_pairs == "auto" else flip_pairs, eyes or None, skeleton, where=str(path))
    base = Path(image_dir) if image_dir else path.parent
    if not image_dir and not any((base / str(im.get("file_name", ""))).is_file() for im in data["images"][:20]) \
            and (path.parent / "images").is_dir():
        base = path.parent / "images"
    images = {}
    for im in data["images"]:
        if not isinstance(im, dict) or "id" not in im or not im.get("file_name"):
            raise ZooError(f"{path}:{lines.image(str(im.get('file_name', '')) if isinstance(im, dict) else '')}: "
                           "each image needs an id and a file_name")
        images[im["id"]] = im

    anns = []
    for index, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or ann.get("category_id", cat.get("id")) != cat.get("id"):
            continue
        where = f"{path}:{lines.annotation(ann, index)}"
        kp = ann.get("keypoints")
        if not isinstance(kp, list) or len(kp) != 3 * k:
            raise ZooError(f"{where}: keypoints must be {3 * k} numbers (x, y, v for each of {k} points), "
                           f"got {len(kp) if isinstance(kp, list) else type(kp).__name__}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in kp):
            bad = next(v for v in kp if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)))
            raise ZooError(f"{where}: keypoints must be numbers, got {bad!r}")
        if ann.get("image_id") not in images:
            raise ZooError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        im = images[ann["image_id"]]
        file = base / im["file_name"]
        if not file.is_file():
            raise ZooError(f"{path}:{lines.image(im['file_name'])}: no image file {im['file_name']!r} in {base}; "
                           "point --set dataset.image_dir=DIR at the images")
        xyv = np.asarray(kp, dtype=np.float64).reshape(k, 3)
        if not (xyv[:, 2] > 0).any():
            continue  # nothing labelled: nothing to learn from
        anns.append((where, ann, im, file, xyv))
    if not anns:
        raise ZooError(f"{path}: no annotation of category {cat.get('name')!r} has a labelled keypoint")
    readable, skipped = check_listed_images(list(dict.fromkeys(f for _, _, _, f, _ in anns)))
    per_image: dict[Any, int] = {}
    for _, ann, _, _, _ in anns:
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
    use_boxes = crop == "box" or (crop == "auto" and max(per_image.values()) > 1)
    items = []
    for where, ann, im, file, xyv in anns:
        if file not in readable:
            continue
        h, w = image_size(file)
        labelled = xyv[:, 2] > 0
        outside = labelled & ((xyv[:, 0] < -TOLERANCE) | (xyv[:, 1] < -TOLERANCE) | (xyv[:, 0] > w + TOLERANCE)
                              | (xyv[:, 1] > h + TOLERANCE))
        if outside.any():
            i = int(np.argmax(outside))
            raise ZooError(f"{where}: point {i} ({names[i]}) at ({xyv[i, 0]:g}, {xyv[i, 1]:g}) lies outside its "
                           f"{w}x{h} image {im['file_name']}")
        points = np.stack([xyv[:, 0].clip(0, w - 1e-3), xyv[:, 1].clip(0, h - 1e-3)], axis=1).astype(np.float32)
        box = None
        if use_boxes:
            box = _crop_box(ann.get("bbox"), points[labelled], w, h, margin)
            points = points - np.array([box[0], box[1]], dtype=np.float32)
            inside = (points[:, 0] >= 0) & (points[:, 0] < box[2] - box[0]) & (points[:, 1] >= 0) & (points[:, 1] < box[3] - box[1])
            labelled = labelled & inside
            size = (box[3] - box[1], box[2] - box[0])
        else:
            size = (h, w)
        items.append(Item(file, points, labelled, size, crop=box, id=f"{file}#{ann.get('id', len(items))}"))
    if not items:
        raise ZooError(f"{path}: none of the images it lists could be read{skipped_example(skipped)}")
    return _splits(items, info, data_config=data_config, seed=seed, val_fraction=val_fraction,
                   reference_info=reference_info, skipped=skipped,
                   description=f"{path} ({len(items)} {'instances' if use_boxes else 'images'}, {k} points each")


def _crop_box(bbox, labelled_points: np.ndarray, w: int, h: int, margin: float) -> tuple[int, int, int, int]:
    """The instance's box (COCO x, y, width, height; else its labelled points' extent), grown by `margin`
    of its size on every side, in whole pixels inside the image."""
    if isinstance(bbox, list) and len(bbox) == 4 and bbox[2] > 0 and bbox[3] > 0:
        x0, y0, bw, bh = (float(v) for v in bbox)
    else:
        x0, y0 = labelled_points.min(axis=0)
        bw, bh = labelled_points.max(axis=0) - (x0, y0)
    grow_x, grow_y = max(bw * margin, 4.0), max(bh * margin, 4.0)
    left, top = max(0, int(math.floor(x0 - grow_x))), max(0, int(math.floor(y0 - grow_y)))
    right, bottom = min(w, int(math.ceil(x0 + bw + grow_x))), min(h, int(math.ceil(y0 + bh + grow_y)))
    return left, top, max(right, left + 2), max(bottom, top + 2)
