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
    key_lines,
    random_split,
    read_coco,
    read_text,
    read_xml,
    read_yaml,
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


SPLITS = ("train", "val", "test")


def splits(items: list[Item], ids: list[str], classes: list[str], seed: int, val_fraction: float, what: str,
           skipped=(), extra_info: dict | None = None, in_memory: bool = False) -> DataSplits:
    """Train/val by the split rules of every format (README "Your own boxes", one table):

    - no item declares a split: a seeded random split (val_fraction);
    - declared train/val/test: train trains, val validates, test is never trained on (zoo eval --data
      scores it: at evaluation, the test split when there is one, else val); an image in no declared
      split is left out (counted); declared train without val: val is drawn from train at random."""
    declared = any(it.split for it in items)
    evaluating = val_fraction >= 1.0
    if not declared:
        train_idx, val_idx = random_split(len(items), val_fraction, seed)
        layout = "all for evaluation" if evaluating else f"a seeded {1 - val_fraction:.0%}/{val_fraction:.0%} split"
    else:
        by = {s: [i for i, it in enumerate(items) if it.split == s] for s in (*SPLITS, "")}
        counts = ", ".join(f"{len(by[s])} {s}" for s in SPLITS if by[s])
        left = f", {len(by[''])} in no split (left out)" if by[""] else ""
        if evaluating:
            chosen = "test" if by["test"] else "val" if by["val"] else "train"
            train_idx, val_idx = [], by[chosen]
            layout = f"its own split ({counts}{left}): evaluating {chosen}"
        else:
            if not by["train"]:
                raise ZooError(f"{what}: declares {counts} but no training images; name a train split")
            if by["val"]:
                train_idx, val_idx = by["train"], by["val"]
                layout = f"its own split ({counts}{left})"
            else:
                t, v = random_split(len(by["train"]), val_fraction, seed)
                train_idx, val_idx = [by["train"][i] for i in t], [by["train"][i] for i in v]
                layout = f"its own split ({counts}{left}), val drawn from train ({val_fraction:.0%})"
            if by["test"]:
                layout += ", test held out"
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

ROBOFLOW_COCO = "_annotations.coco.json"  # Roboflow's COCO export: {train,valid,test}/_annotations.coco.json


def _coco_pair(root: Path) -> dict[str, Path]:
    """A folder's COCO files by split: Roboflow's {train,valid,test}/_annotations.coco.json, or COCO's own
    annotations/instances_{train,val,test}*.json (instances_train2017.json, ...)."""
    found: dict[str, Path] = {}
    for split, folder in (("train", "train"), ("val", "valid"), ("val", "val"), ("test", "test")):
        if split not in found and (root / folder / ROBOFLOW_COCO).is_file():
            found[split] = root / folder / ROBOFLOW_COCO
    if not found and (root / "annotations").is_dir():
        for split in SPLITS:
            files = sorted((root / "annotations").glob(f"instances_{split}*.json"))
            if files:
                found[split] = files[0]
    return found


def is_coco(source: str) -> bool:
    p = Path(source)
    if p.is_dir():
        return "train" in _coco_pair(p)
    return p.is_file() and p.suffix.lower() == ".json"


def read_coco_json(path: Path, need_annotations: bool = True) -> dict:
    """A checked COCO instances JSON (zoo_core.read_coco), errors located at the line of the annotation's bbox;
    without need_annotations, an image-info file (COCO's test-dev: images and categories) is enough."""
    cache: list = []
    return read_coco(path, lambda n, ann: read_where(path, n, cache), need_annotations=need_annotations)


def _coco_items(path: Path, classes: list[str] | None, reference_info: dict | None, image_dir: str, split: str
                ) -> tuple[list[Item], list[str], dict[int, Any]]:
    doc = read_coco_json(path)
    names = [c["name"] for c in doc["categories"]]
    if classes is not None and names != classes:
        extra = [n for n in names if n not in classes]
        if extra:
            raise ZooError(f"{path}: categories {', '.join(extra)} are not in the training file's ({', '.join(classes)})")
    classes = check_classes(classes or names, reference_info, str(path))
    index = {c["id"]: classes.index(c["name"]) for c in doc["categories"]}
    dropped = {c["id"] for c in doc["dropped"]}
    roots = [Path(image_dir)] if image_dir else [path.parent, path.parent / "images", path.parent.parent / "images"]
    if not image_dir and path.stem.startswith("instances_"):  # COCO's own: annotations/instances_val2017.json, val2017/
        roots.append(path.parent.parent / path.stem.split("_", 1)[1])
    items, by_id = [], {}
    for im in doc["images"]:
        name = im["file_name"]
        file = next((r / name for r in roots if (r / name).is_file()), roots[0] / name)
        by_id[im["id"]] = Item(file, (int(im["height"]), int(im["width"])), split=split)
        items.append(by_id[im["id"]])
    lines: list = []
    for n, ann in enumerate(doc["annotations"]):
        if ann["category_id"] in dropped:
            continue
        item = by_id[ann["image_id"]]
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            where = read_where(path, n, lines)
            raise ZooError(f"{where}: bbox must be [x, y, width, height] (four numbers), got {str(bbox)[:60]}")
        if ann.get("iscrowd"):
            continue  # a crowd region is not one object; COCO's own evaluation ignores it too
        x, y, w, h = bbox
        item.boxes.append(check_box([x, y, x + w, y + h], item.size,
                                    f"{read_where(path, n, lines)} (image {Path(str(item.image)).name})"))
        item.labels.append(index[ann["category_id"]])
    return items, classes, {v: k for k, v in index.items()}


def read_where(path: Path, n: int, cache: list) -> str:
    """'file:line' of annotation n (the line of its "bbox"), read once per file."""
    if not cache:
        cache.append(key_lines(path.read_text(encoding="utf-8-sig"), "bbox"))
    lines = cache[0]
    return f"{path}:{lines[n]}" if n < len(lines) else f"{path}: annotations[{n}]"


def coco_dataset(source: str, *, data_config, seed: int, val_fraction: float, reference_info: dict | None = None,
                 image_dir: str = "", val: str = "", test: str = "") -> DataSplits:
    """A COCO instances JSON ("images", "annotations" with bbox [x, y, w, h] in pixels, "categories").
    Images are looked up under image_dir (default: next to the JSON, then its images/ folder, then ../images/).
    A separate validation JSON (option val, `--set dataset.val=instances_val.json`; test likewise) makes
    the split; so does a folder holding Roboflow's {train,valid,test}/_annotations.coco.json or COCO's
    annotations/instances_{train,val}*.json. A placeholder category with no annotations (Roboflow's
    category 0, supercategory "none") is not a class."""
    root = Path(source)
    files = _coco_pair(root) if root.is_dir() else {"train" if (val or test) else "": root}
    if val:
        files["val"] = Path(val)
    if test:
        files["test"] = Path(test)
    for f in files.values():
        if not f.is_file():
            raise ZooError(f"{f}: no such COCO JSON")
    main = files.get("train", files.get(""))
    items, classes, ids_by_class = _coco_items(main, None, reference_info, image_dir, "train" if "train" in files else "")
    for split in ("val", "test"):
        if split in files:
            more, _, _ = _coco_items(files[split], classes, reference_info, "", split)
            items += more
    items, skipped = _readable(items, root)
    # COCO's category ids, in class order: the COCO results format writes these
    extra = {"category_ids": [ids_by_class.get(i, i + 1) for i in range(len(classes))]}
    return splits(items, [str(it.image) for it in items], classes, seed, val_fraction, str(root), skipped, extra)


# --------------------------------------------------------------------------------------------- YOLO

YAMLS = ("data.yaml", "dataset.yaml", "data.yml")
SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _yaml_of(p: Path) -> Path | None:
    if p.is_file() and p.suffix.lower() in (".yaml", ".yml"):
        return p
    return next((p / n for n in YAMLS if (p / n).is_file()), None) if p.is_dir() else None


def _roboflow_dirs(root: Path) -> dict[str, Path]:
    """Roboflow's YOLO export: {train,valid,test}/images with {train,valid,test}/labels beside them."""
    return {SPLIT_DIRS[d.name]: d / "images" for d in sorted(root.iterdir()) if d.name in SPLIT_DIRS
            and (d / "images").is_dir()} if root.is_dir() else {}


def is_yolo(source: str) -> bool:
    p = Path(source)
    if _yaml_of(p) is not None:
        return True
    return p.is_dir() and ((p / "labels").is_dir() or bool(_roboflow_dirs(p)))


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last /images/ of the image's path becomes /labels/, the suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _yolo_names(yaml_file: Path | None, root: Path) -> list[str]:
    if yaml_file is not None:
        doc = read_yaml(yaml_file, "a YOLO data.yaml")
        names = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(names, dict) and all(isinstance(k, int) for k in names):
            if sorted(names) != list(range(len(names))):
                raise ZooError(f"{yaml_file}: 'names' indices must be 0..{len(names) - 1}, got {sorted(names)}")
            names = [names[k] for k in sorted(names)]
        if not isinstance(names, list) or not names or not all(isinstance(n, (str, int, float)) for n in names):
            raise ZooError(f"{yaml_file}: needs 'names', a list of class names (or a dict index: name)")
        if isinstance(doc.get("nc"), int) and doc["nc"] != len(names):
            raise ZooError(f"{yaml_file}: nc is {doc['nc']} but 'names' lists {len(names)} classes")
        return [str(n) for n in names]
    for name in ("classes.txt", "obj.names"):
        if (root / name).is_file():
            names = [ln.strip() for ln in read_text(root / name, "a class list").splitlines() if ln.strip()]
            if names:
                return names
    raise ZooError(f"{root}: a YOLO folder needs its class names in data.yaml ('names') or classes.txt (one a line)")


def _yolo_sources(yaml_file: Path | None, root: Path) -> dict[str, list[Path]]:
    """The image files of each split: data.yaml's train/val/test (a folder, a .txt list of images, or a
    list of those; relative to its `path`, else to its folder, Roboflow's '../train/images' read as
    Ultralytics reads it), else the Roboflow folders, else images/{train,val,valid,test}/ under root."""
    doc = read_yaml(yaml_file, "a YOLO data.yaml") if yaml_file is not None else {}
    declared = {k: doc.get(k) for k in ("train", "val", "test")} if isinstance(doc, dict) else {}
    if any(declared.values()):
        base = yaml_file.parent
        if isinstance(doc.get("path"), str) and doc["path"]:
            base = Path(doc["path"]) if Path(doc["path"]).is_absolute() else (yaml_file.parent / doc["path"])
            base = base if base.is_dir() else yaml_file.parent
        out: dict[str, list[Path]] = {}
        for split, value in declared.items():
            if not value:
                continue
            entries = value if isinstance(value, list) else [value]
            files: list[Path] = []
            for entry in entries:
                if not isinstance(entry, str):
                    raise ZooError(f"{yaml_file}: '{split}' must be a path or a list of paths, got {entry!r}")
                p = base / entry
                if not p.exists() and entry.startswith("../"):
                    p = base / entry[3:]
                if p.is_dir():
                    files += find_images([p])
                elif p.is_file() and p.suffix.lower() == ".txt":
                    for n, line in enumerate(read_text(p, "a list of images").splitlines(), start=1):
                        line = line.strip()
                        if line:
                            if "\0" in line:
                                raise ZooError(f"{p}:{n}: the path contains a NUL byte")
                            files.append(p.parent / line if not Path(line).is_absolute() else Path(line))
                else:
                    raise ZooError(f"{yaml_file}: {split}: {entry} is not a folder or .txt list of images "
                                   f"(looked for {p})")
            out[split] = files
        return out
    rf = _roboflow_dirs(root)
    if rf:
        return {split: find_images([d]) for split, d in rf.items()}
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise ZooError(f"{root}: no images/ folder (YOLO layout: images/X.jpg with labels/X.txt, or Roboflow's "
                       "train/images, valid/images)")
    files = find_images([images_dir])
    by_split: dict[str, list[Path]] = {}
    for f in files:
        rel = Path(f).relative_to(images_dir)
        split = SPLIT_DIRS.get(rel.parts[0], "") if len(rel.parts) > 1 else ""
        by_split.setdefault(split, []).append(Path(f))
    return by_split


def _yolo_boxes(label: Path, item: Item, names: list[str], remap: list[int]) -> None:
    """`class cx cy w h` (normalised 0..1) per line, or a segmentation polygon `class x1 y1 ... xn yn`, read
    as its bounding box (as Ultralytics does)."""
    h, w = item.size
    for n, line in enumerate(read_text(label, "a YOLO label file").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label}:{n}"
        parts = line.split()
        try:
            cls = int(parts[0])
            values = [float(v) for v in parts[1:]]
        except ValueError:
            raise ZooError(f"{where}: expected 'class cx cy w h' (an integer and four numbers) or a polygon "
                           f"'class x1 y1 x2 y2 ...', got {line.strip()[:80]!r}") from None
        if len(values) != 4 and (len(values) < 6 or len(values) % 2):
            raise ZooError(f"{where}: expected 'class cx cy w h' (an integer and four numbers) or a polygon "
                           f"'class x1 y1 x2 y2 ...' (3 points or more), got {len(parts)} columns")
        if not 0 <= cls < len(names):
            raise ZooError(f"{where}: class {cls} is outside the class list (0..{len(names) - 1}: {', '.join(names)})")
        if not all(np.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in values):
            raise ZooError(f"{where}: coordinates must be normalised to 0..1 (divide by the image's width and height), "
                           f"got {line.strip()[:80]!r}")
        if len(values) == 4:
            cx, cy, bw, bh = values
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
        else:
            xs, ys = values[0::2], values[1::2]
            box = [min(xs) * w, min(ys) * h, max(xs) * w, max(ys) * h]
        item.boxes.append(check_box(box, item.size, where))
        item.labels.append(remap[cls])


def yolo_dataset(source: str, *, data_config, seed: int, val_fraction: float, reference_info: dict | None = None
                 ) -> DataSplits:
    """An Ultralytics/Roboflow YOLO dataset: a data.yaml (or the folder holding it) whose train/val/test
    name folders or .txt lists of images; Roboflow's train/, valid/, test/ folders of images/ and labels/;
    or images/ with labels/ (images/{train,val,valid,test}/ are the split). Each image's labels are the
    .txt at its path with the last images/ replaced by labels/: one object a line, `class cx cy w h`
    normalised to 0..1, or a polygon `class x1 y1 ... xn yn` (read as its box). An image without a label
    file, or with an empty one, is background; test images are never trained on (the split rules)."""
    src = Path(source)
    yaml_file = _yaml_of(src)
    root = yaml_file.parent if yaml_file is not None else src
    names = _yolo_names(yaml_file, root)
    classes = check_classes(names, reference_info, str(src))
    remap = [classes.index(n) for n in names]
    sources = _yolo_sources(yaml_file, root)
    items = [Item(f, (0, 0), split=split) for split, files in sources.items() for f in files]
    if not items:
        raise ZooError(f"{src}: no images found (YOLO layout: images/X.jpg with labels/X.txt)")
    if "train" in sources and not sources["train"]:
        raise ZooError(f"{src}: the train split has no images")
    labels = [label_path(it.image) for it in items]
    if not any(lb.is_file() for lb in labels):
        raise ZooError(f"{src}: none of its {len(items)} images has a label file (looked for e.g. {labels[0]}: the "
                       "image's path with images/ replaced by labels/ and .txt)")
    for it, lb in zip(items, labels):
        it.label_file = lb if lb.is_file() else None
    items, skipped = _readable(items, src)
    for item in items:
        item.size = image_size(item.image)
        if item.label_file is not None:
            _yolo_boxes(item.label_file, item, names, remap)
    return splits(items, [str(it.image) for it in items], classes, seed, val_fraction, str(src), skipped)


# ---------------------------------------------------------------------------------------------- VOC

def is_voc(source: str) -> bool:
    p = Path(source)
    return p.is_dir() and (p / "Annotations").is_dir()


def _voc_sets(root: Path) -> dict[str, set[str]]:
    """ImageSets/Main/{train,val,trainval,test}.txt: the image ids of each split (trainval, when train.txt
    is absent, is the training set and val is drawn from it)."""
    main = root / "ImageSets" / "Main"
    sets = {}
    for name in ("train", "val", "trainval", "test"):
        f = main / f"{name}.txt"
        if f.is_file():
            sets[name] = {ln.split()[0] for ln in read_text(f, "a VOC image set").splitlines() if ln.strip()}
    if "trainval" in sets:
        if "train" not in sets and "val" not in sets:
            sets["train"] = sets["trainval"]
        elif "train" not in sets:
            sets["train"] = sets["trainval"] - sets.get("val", set())
    sets.pop("trainval", None)
    return sets


def voc_dataset(source: str, *, data_config, seed: int, val_fraction: float, reference_info: dict | None = None,
                skip_difficult: bool = False) -> DataSplits:
    """Annotations/X.xml (Pascal VOC) with the images in JPEGImages/ (or beside, by the XML's filename).
    The classes are those in classes.txt (or labels.txt) when present, else every name found, sorted.
    ImageSets/Main/{train,val,trainval,test}.txt, when present, are the split (the split rules: test is
    never trained on, an image in no list is left out). VOC's 1-based inclusive pixel boxes become
    0-based: (xmin - 1, ymin - 1, xmax, ymax), as Detectron2 reads them. XML is read without entity
    expansion (defusedxml): a billion-laughs file is refused, not expanded."""
    root = Path(source)
    xmls = sorted((root / "Annotations").glob("*.xml"))
    if not xmls:
        raise ZooError(f"{root / 'Annotations'}: no .xml files")
    listed = next((root / n for n in ("classes.txt", "labels.txt") if (root / n).is_file()), None)
    fixed = [ln.strip() for ln in read_text(listed, "a class list").splitlines() if ln.strip()] if listed else None
    parsed = []
    for x in xmls:
        doc = read_xml(x, "a Pascal VOC annotation")
        if doc.tag != "annotation":
            raise ZooError(f"{x}: not a Pascal VOC annotation (root <{doc.tag}>, expected <annotation>)")
        text = read_text(x, "a Pascal VOC annotation")
        object_lines = [text.count("\n", 0, m.start()) + 1 for m in re.finditer(r"<object\b", text)]
        for n, obj in enumerate(doc.iter("object")):
            if not (obj.findtext("name") or "").strip():
                where = f"{x}:{object_lines[n] if n < len(object_lines) else 1}"
                raise ZooError(f"{where}: an <object> without a <name>; name its class or remove it")
        parsed.append((x, doc, object_lines))
    names = fixed or sorted({(o.findtext("name") or "").strip() for _, d, _ in parsed for o in d.iter("object")})
    if not names:
        raise ZooError(f"{root / 'Annotations'}: no <object> in any file and no classes.txt: nothing to learn")
    classes = check_classes(names, reference_info, str(root))
    sets = _voc_sets(root)
    items = []
    for x, doc, object_lines in parsed:
        filename = (doc.findtext("filename") or f"{x.stem}.jpg").strip()
        file = next((p for p in (root / "JPEGImages" / filename, root / filename, x.parent / filename) if p.is_file()),
                    root / "JPEGImages" / filename)
        split = next((s for s in SPLITS if x.stem in sets.get(s, ())), "") if sets else ""
        item = Item(file, (0, 0), split=split)
        item.objects, item.xml = [], x
        size = doc.find("size")
        try:
            item.declared = (int(float(size.findtext("height"))), int(float(size.findtext("width")))) \
                if size is not None else None
        except (TypeError, ValueError):
            raise ZooError(f"{x}: <size> needs numeric <width> and <height>") from None
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
        if item.declared not in (None, item.size, item.size[::-1], (0, 0)):
            raise ZooError(f"{item.xml}: <size> says {item.declared[1]}x{item.declared[0]}, the image "
                           f"{Path(item.image).name} is {item.size[1]}x{item.size[0]}; fix <size> or the image")
        for box, label, where in item.objects:
            item.boxes.append(check_box(box, item.size, where))
            item.labels.append(label)
    return splits(items, [str(it.image) for it in items], classes, seed, val_fraction, str(root), skipped)
