"""Detection data: the embedded generated scenes, and the three formats people bring: COCO JSON, YOLO
txt folders and Pascal VOC XML.

Each dataset returns raw samples {"image": PIL image or path, "target": {"boxes": BoundingBoxes (n, 4)
XYXY in original pixels, "labels": (n,) class indices}, "id"}; transforms move the boxes with the image.
info["classes"] names the classes (COCO's also keeps "category_ids", for the COCO results format).

Validation, the same for every format: a box that is not four finite numbers, is empty, or lies outside
its image (by more than a pixel: annotation tools' off-by-one is clipped), and a label outside the class
list, stop the run with one line naming the file and line; an image without annotations is background
(allowed, counted in the description); an image that cannot be read is skipped with its reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from zoo_core import (
    SCENE_CLASSES,
    DataSplits,
    ZooError,
    check_listed_images,
    find_images,
    generate_scenes,
    image_size,
    random_split,
    skipped_example,
)

TOLERANCE = 1.0  # pixels a box may stick out of its image before it is an error (then it is clipped)


@dataclass
class Item:
    image: Any  # a PIL image or a path
    size: tuple[int, int]  # (h, w)
    boxes: list[list[float]] = field(default_factory=list)  # XYXY, original pixels
    labels: list[int] = field(default_factory=list)
    split: str = ""  # "train", "val" or "" (a random split decides)

    def sample(self, id: str) -> dict[str, Any]:
        boxes = torch.tensor(self.boxes, dtype=torch.float32).reshape(-1, 4)
        return {"image": self.image, "id": id, "target": {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=self.size),
            "labels": torch.tensor(self.labels, dtype=torch.long)}}


def check_box(box: list[float], size: tuple[int, int], where: str) -> list[float]:
    """The box clipped to its image, or a one-line error naming `where` (file:line)."""
    if len(box) != 4 or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in box):
        raise ZooError(f"{where}: a box needs four finite numbers, got {box}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ZooError(f"{where}: empty box (need x1 > x0 and y1 > y0), got [{x0:g}, {y0:g}, {x1:g}, {y1:g}]")
    h, w = size
    if x0 < -TOLERANCE or y0 < -TOLERANCE or x1 > w + TOLERANCE or y1 > h + TOLERANCE:
        raise ZooError(f"{where}: box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] lies outside its {w}x{h} image")
    return [max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)]


def check_classes(names: list[str], reference_info: dict | None, where: str) -> list[str]:
    """At evaluation, the model's classes: the data's must be among them (indexed as the model learned)."""
    if reference_info is None:
        return names
    known = list(reference_info["classes"])
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ZooError(f"{where}: class(es) {', '.join(unknown)} unknown to the model (it knows: {', '.join(known)})")
    return known


def splits(items: list[Item], ids: list[str], classes: list[str], seed: int, val_fraction: float, what: str,
           skipped=(), extra_info: dict | None = None, in_memory: bool = False) -> DataSplits:
    """Train/val from the items' own split when every item has one, else a seeded random split."""
    if items and all(it.split in ("train", "val") for it in items):
        train_idx = [i for i, it in enumerate(items) if it.split == "train"]
        val_idx = [i for i, it in enumerate(items) if it.split == "val"]
        layout = "its own train/val split"
    else:
        train_idx, val_idx = random_split(len(items), val_fraction, seed)
        layout = f"a seeded {1 - val_fraction:.0%}/{val_fraction:.0%} split"
    objects = sum(len(it.boxes) for it in items)
    background = sum(1 for it in items if not it.boxes)
    bg = f", {background} without objects (background)" if background else ""
    return DataSplits([items[i].sample(ids[i]) for i in train_idx], [items[i].sample(ids[i]) for i in val_idx],
                      {"classes": list(classes), **(extra_info or {})}, skipped=list(skipped), in_memory=in_memory,
                      description=f"{what} ({len(items)} images, {objects} objects of {len(classes)} classes{bg}, {layout})")


def _readable(items: list[Item], source: Path) -> tuple[list[Item], list[tuple[str, str]]]:
    readable, skipped = check_listed_images([it.image for it in items])
    kept = [it for it in items if it.image in readable]
    if not kept:
        raise ZooError(f"{source}: none of the {len(items)} image(s) it lists could be read{skipped_example(skipped)}")
    return kept, skipped


# ------------------------------------------------------------------------------------------- scenes

def scenes_dataset(source: str | None, *, data_config, seed: int, val_fraction: float, reference_info: dict | None = None,
                   count: int = 800, min_size: int = 160, max_size: int = 320, max_objects: int = 3) -> DataSplits:
    """Generated scenes (zoo_core.generate_scenes): 1-3 crops of real scikit-image photos per image, of
    the classes cat, coffee and astronaut, cut to ellipses, rectangles or polygons, pasted without
    overlap on grey or brick/grass/gravel canvases of 160-320 px, mostly non-square."""
    if count < 2 or max_objects < 1 or not 32 <= min_size <= max_size <= 2048:
        raise ZooError(f"dataset 'detect-scenes': need count >= 2, max_objects >= 1, 32 <= min_size <= max_size <= 2048; "
                       f"got {count}, {max_objects}, {min_size}, {max_size}")
    classes = list(SCENE_CLASSES)
    scenes = generate_scenes(count, seed, classes, objects=(1, max_objects), min_size=min_size, max_size=max_size)
    items = [Item(s.image, (s.image.height, s.image.width), s.boxes, s.labels) for s in scenes]
    return splits(items, [f"scene-{i:04d}" for i in range(count)], classes, seed, val_fraction,
                  f"generated scenes, seed {seed}", in_memory=True)


# --------------------------------------------------------------------------------------------- COCO

def is_coco(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() == ".json"


def _json_lines(text: str, key: str) -> list[int]:
    """The line of each `"key":` in the text, in order: where each annotation's box is, for errors."""
    return [text.count("\n", 0, m.start()) + 1 for m in re.finditer(rf'"{key}"\s*:', text)]


def coco_dataset(source: str, *, data_config, seed: int, val_fraction: float, reference_info: dict | None = None,
                 image_dir: str = "") -> DataSplits:
    """A COCO instances JSON ("images", "annotations" with bbox [x, y, w, h] in pixels, "categories").
    Images are looked up under image_dir (default: next to the JSON, then its images/ folder, then ../images/)."""
    path = Path(source)
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ZooError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(doc, dict) or not {"images", "annotations", "categories"} <= set(doc):
        raise ZooError(f"{path}: not a COCO instances file (needs 'images', 'annotations' and 'categories')")
    cats = sorted(doc["categories"], key=lambda c: c["id"])
    names = [str(c["name"]) for c in cats]
    classes = check_classes(names, reference_info, str(path))
    index = {c["id"]: classes.index(str(c["name"])) for c in cats}
    roots = [Path(image_dir)] if image_dir else [path.parent, path.parent / "images", path.parent.parent / "images"]
    items, by_id = [], {}
    for im in doc["images"]:
        name = im["file_name"]
        file = next((r / name for r in roots if (r / name).is_file()), roots[0] / name)
        by_id[im["id"]] = Item(file, (int(im["height"]), int(im["width"])))
        items.append(by_id[im["id"]])
    lines = _json_lines(text, "bbox")
    lines = lines if len(lines) == len(doc["annotations"]) else []
    for n, ann in enumerate(doc["annotations"]):
        where = f"{path}:{lines[n]}" if lines else f"{path}: annotations[{n}]"
        if ann.get("image_id") not in by_id:
            raise ZooError(f"{where}: annotation {ann.get('id')} refers to image_id {ann.get('image_id')}, which is not in 'images'")
        if ann.get("category_id") not in index:
            raise ZooError(f"{where}: category_id {ann.get('category_id')} is not in 'categories' "
                           f"(ids: {', '.join(str(c['id']) for c in cats)})")
        item = by_id[ann["image_id"]]
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ZooError(f"{where}: bbox must be [x, y, width, height], got {bbox}")
        x, y, w, h = bbox
        box = [x, y, x + w, y + h] if all(isinstance(v, (int, float)) for v in bbox) else bbox
        if ann.get("iscrowd"):
            continue  # a crowd region is not one object; COCO's own evaluation ignores it too
        item.boxes.append(check_box(box, item.size, f"{where} (image {Path(str(item.image)).name})"))
        item.labels.append(index[ann["category_id"]])
    items, skipped = _readable(items, path)
    # COCO's category ids, in class order: the COCO results format writes these
    ids_by_class = {v: k for k, v in index.items()}
    extra = {"category_ids": [ids_by_class.get(i, i + 1) for i in range(len(classes))]}
    return splits(items, [str(it.image) for it in items], classes, seed, val_fraction, str(path), skipped, extra)


# --------------------------------------------------------------------------------------------- YOLO

def is_yolo(source: str) -> bool:
    p = Path(source)
    return p.is_dir() and (p / "labels").is_dir()


def _yolo_classes(root: Path) -> list[str]:
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            import yaml

            try:
                doc = yaml.safe_load((root / name).read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as e:
                raise ZooError(f"{root / name}: not valid YAML ({str(e).splitlines()[0]})") from None
            names = doc.get("names") if isinstance(doc, dict) else None
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names)]
            if isinstance(names, list):
                return [str(n) for n in names]
            raise ZooError(f"{root / name}: needs 'names', a list of class names (or a dict index: name)")
    if (root / "classes.txt").is_file():
        return [ln.strip() for ln in (root / "classes.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
    raise ZooError(f"{root}: a YOLO folder needs its class names in data.yaml ('names') or classes.txt (one a line)")


def yolo_dataset(source: str, *, data_config, seed: int, val_fraction: float, reference_info: dict | None = None
                 ) -> DataSplits:
    """images/**/X.jpg with labels/**/X.txt (same relative path): one object a line, `class cx cy w h`,
    normalised to 0..1. images/train and images/val, when both exist, are the split. An image without a
    label file, or with an empty one, is background."""
    root = Path(source)
    names = _yolo_classes(root)
    classes = check_classes(names, reference_info, str(root))
    remap = [classes.index(n) for n in names]
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise ZooError(f"{root}: no images/ folder (YOLO layout: images/X.jpg with labels/X.txt)")
    files = find_images([images_dir])
    if not files:
        raise ZooError(f"{images_dir}: no images found")
    items = []
    for f in files:
        rel = Path(f).relative_to(images_dir)
        split = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in ("train", "val") else ""
        item = Item(Path(f), (0, 0), split=split)
        label = (root / "labels" / rel).with_suffix(".txt")
        item.label_file = label if label.is_file() else None
        items.append(item)
    items, skipped = _readable(items, root)
    for item in items:
        item.size = image_size(item.image)
        if item.label_file is None:
            continue
        h, w = item.size
        for n, line in enumerate(item.label_file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{item.label_file}:{n}"
            parts = line.split()
            try:
                cls, cx, cy, bw, bh = int(parts[0]), *(float(v) for v in parts[1:5])
                if len(parts) != 5:
                    raise ValueError
            except (ValueError, IndexError):
                raise ZooError(f"{where}: expected 'class cx cy w h' (an integer and four numbers), got {line.strip()!r}") from None
            if not 0 <= cls < len(names):
                raise ZooError(f"{where}: class {cls} is outside the class list (0..{len(names) - 1}: {', '.join(names)})")
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
            item.boxes.append(check_box(box, item.size, where))
            item.labels.append(remap[cls])
    if any(it.split for it in items) and not all(it.split for it in items):
        for it in items:
            it.split = ""
    return splits(items, [str(it.image) for it in items], classes, seed, val_fraction, str(root), skipped)


# ---------------------------------------------------------------------------------------------- VOC

def is_voc(source: str) -> bool:
    p = Path(source)
    return p.is_dir() and (p / "Annotations").is_dir()


def voc_dataset(source: str, *, data_config, seed: int, val_fraction: float, reference_info: dict | None = None,
                skip_difficult: bool = False) -> DataSplits:
    """Annotations/X.xml (Pascal VOC) with the images in JPEGImages/ (or beside, by the XML's filename).
    The classes are those in classes.txt (or labels.txt) when present, else every name found, sorted.
    ImageSets/Main/train.txt and val.txt, when present, are the split. VOC's 1-based inclusive pixel
    boxes become 0-based: (xmin - 1, ymin - 1, xmax, ymax), as Detectron2 reads them."""
    import xml.etree.ElementTree as ET

    root = Path(source)
    xmls = sorted((root / "Annotations").glob("*.xml"))
    if not xmls:
        raise ZooError(f"{root / 'Annotations'}: no .xml files")
    listed = next((root / n for n in ("classes.txt", "labels.txt") if (root / n).is_file()), None)
    fixed = [ln.strip() for ln in listed.read_text(encoding="utf-8").splitlines() if ln.strip()] if listed else None
    parsed = []
    for x in xmls:
        text = x.read_text(encoding="utf-8")
        try:
            doc = ET.fromstring(text)
        except ET.ParseError as e:
            raise ZooError(f"{x}:{e.position[0]}: not valid XML ({e})") from None
        object_lines = [text.count("\n", 0, m.start()) + 1 for m in re.finditer(r"<object\b", text)]
        parsed.append((x, doc, object_lines))
    names = fixed or sorted({(o.findtext("name") or "").strip() for _, d, _ in parsed for o in d.iter("object")})
    classes = check_classes(names, reference_info, str(root))
    sets = {s: {ln.strip().split()[0] for ln in (root / "ImageSets" / "Main" / f"{s}.txt").read_text().splitlines() if ln.strip()}
            for s in ("train", "val") if (root / "ImageSets" / "Main" / f"{s}.txt").is_file()}
    items = []
    for x, doc, object_lines in parsed:
        filename = (doc.findtext("filename") or f"{x.stem}.jpg").strip()
        file = next((p for p in (root / "JPEGImages" / filename, root / filename, x.parent / filename) if p.is_file()),
                    root / "JPEGImages" / filename)
        split = next((s for s, ids in sets.items() if x.stem in ids), "")
        item = Item(file, (0, 0), split=split)
        item.objects = []
        for n, obj in enumerate(doc.iter("object")):
            where = f"{x}:{object_lines[n] if n < len(object_lines) else 1}"
            name = (obj.findtext("name") or "").strip()
            if name not in classes:
                source_of_list = f" ({listed.name})" if listed else ""
                raise ZooError(f"{where}: label '{name}' is not in the class list{source_of_list}: {', '.join(classes)}")
            if skip_difficult and (obj.findtext("difficult") or "0").strip() == "1":
                continue
            bb = obj.find("bndbox")
            try:
                xmin, ymin, xmax, ymax = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                raise ZooError(f"{where}: <bndbox> needs numeric xmin, ymin, xmax, ymax") from None
            item.objects.append(([xmin - 1, ymin - 1, xmax, ymax], classes.index(name), where))
        items.append(item)
    items, skipped = _readable(items, root)
    for item in items:
        item.size = image_size(item.image)
        for box, label, where in item.objects:
            item.boxes.append(check_box(box, item.size, where))
            item.labels.append(label)
    if sets and not all(it.split for it in items):
        for it in items:
            it.split = ""
    return splits(items, [str(it.image) for it in items], classes, seed, val_fraction, str(root), skipped)
