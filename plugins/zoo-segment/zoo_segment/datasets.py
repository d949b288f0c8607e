"""Segmentation data: the embedded generated scenes, a folder of images with a folder of masks, or COCO
polygons.

Each dataset returns raw samples {"image": PIL image or path, "target": the stored Mask (see masks.py),
"id"}; masks of files are read when a sample is loaded (a large dataset never sits in memory), after one
validating pass at start-up that names the file of any mask that does not fit its image or its class
list. info holds "classes" (names, index 0 first), "colors" (RGB per class, from the masks' palette or
the spec), "ignore_index" and "class_pixels" (each class's share of the training pixels, for class weights)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image, ImageDraw
from zoo_core import (
    SCENE_CLASSES,
    DataConfig,
    DataSplits,
    ZooError,
    check_listed_images,
    declared_size,
    find_images,
    generate_scenes,
    image_size,
    random_split,
    read_coco,
    read_json,
    skipped_example,
)

from .masks import IGNORE, class_colors, stored_mask

# --------------------------------------------------------------------------------------------- samples


class MaskSamples(torch.utils.data.Dataset):
    """Raw samples whose masks are made when asked for: (image, make_mask, id) triples, where make_mask()
    returns the (H, W) class-index array (a picklable partial, so loader workers can call it).

    With `original` (the validation split), the target is {"mask": the Mask the transforms move,
    "original": the same (H, W) stored mask as a plain tensor, which they leave alone}: the metrics score
    the prediction at each image's own resolution against it (the field's convention)."""

    def __init__(self, items: list[tuple[Any, Callable[[], np.ndarray], str]], ignore_index: int = IGNORE,
                 original: bool = False):
        self.items, self.ignore_index, self.original = items, ignore_index, original

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image, make_mask, sample_id = self.items[i]
        mask = stored_mask(make_mask(), self.ignore_index)
        if self.original:
            return {"image": image, "target": {"mask": mask, "original": mask.as_subclass(torch.Tensor)[0].clone()},
                    "id": sample_id}
        return {"image": image, "target": mask, "id": sample_id}


def _split(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    train_idx, val_idx = random_split(n, val_fraction, seed)
    return list(train_idx), list(val_idx)


def _pixel_shares(counts: np.ndarray) -> list[float]:
    total = max(1, int(counts.sum()))
    return [round(float(c) / total, 6) for c in counts]


def _info(classes: list[str], colors: list[list[int]], ignore_index: int, counts: np.ndarray,
          reference_info: dict | None) -> dict[str, Any]:
    if reference_info is not None:  # evaluation: index classes as the model learned them
        return {k: reference_info[k] for k in ("classes", "colors", "ignore_index", "class_pixels") if k in reference_info}
    return {"classes": classes, "colors": colors, "ignore_index": ignore_index, "class_pixels": _pixel_shares(counts)}


def _check_reference(classes: list[str], reference_info: dict | None, where: str) -> None:
    if reference_info is not None and len(classes) > len(reference_info["classes"]):
        raise ZooError(f"{where}: has {len(classes)} classes, the model knows {len(reference_info['classes'])} "
                       f"({', '.join(reference_info['classes'])})")


# ---------------------------------------------------------------------------------------- scenes

def scenes_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None, count: int = 400, min_size: int = 160,
                   max_size: int = 320) -> DataSplits:
    """zoo_core's generated scenes: 1-3 crops of real photos (cat, coffee, astronaut) cut to ellipses,
    rectangles and polygons on grey or textured canvases; their masks are exact by construction."""
    if count < 2:
        raise ZooError(f"dataset 'scene-masks' option count must be >= 2, got {count}")
    if not 32 <= min_size <= max_size <= 2048:
        raise ZooError(f"dataset 'scene-masks': need 32 <= min_size <= max_size <= 2048, got {min_size}, {max_size}")
    scenes = generate_scenes(count, seed, min_size=min_size, max_size=max_size)
    classes = ["background", *SCENE_CLASSES]
    items = [(s.image, partial(np.asarray, s.mask), f"scene-{i:04d}") for i, s in enumerate(scenes)]
    train_idx, val_idx = _split(count, val_fraction, seed)
    counts = sum(np.bincount(scenes[i].mask.ravel(), minlength=len(classes)) for i in train_idx)
    return DataSplits(MaskSamples([items[i] for i in train_idx]), MaskSamples([items[i] for i in val_idx], original=True),
                      _info(classes, class_colors(len(classes)), IGNORE, counts, reference_info), in_memory=True,
                      description=f"scenes ({count} generated scenes of {', '.join(SCENE_CLASSES)} crops on "
                                  f"{min_size}-{max_size} px canvases, seed {seed})")


# ----------------------------------------------------------------------------------- mask folder

IMAGE_DIRS = ("images", "imgs", "img", "JPEGImages")
MASK_DIRS = ("masks", "mask", "labels", "annotations", "SegmentationClass")
SPEC = "classes.json"


def _subdir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def is_mask_folder(source: str) -> bool:
    root = Path(source)
    return root.is_dir() and _subdir(root, IMAGE_DIRS) is not None and _subdir(root, MASK_DIRS) is not None


def _read_spec(path: Path) -> tuple[list[str], list[list[int]] | None]:
    """classes.json: {"classes": ["background", "cat", ...], "colors": [[0, 0, 0], [255, 0, 0], ...]}
    (colors optional; required only for RGB masks, which are read by colour)."""
    spec = read_json(path, 'a class spec {"classes": ["background", ...], "colors": [[0, 0, 0], ...]}', limit=2**24)
    expected = 'expected {"classes": ["background", ...], "colors": [[0, 0, 0], ...]}'
    classes = spec.get("classes") if isinstance(spec, dict) else None
    if not isinstance(classes, list) or not all(isinstance(c, str) and c.strip() for c in classes):
        got = f"a {type(classes).__name__} {str(classes)[:40]!r}" if classes is not None else "nothing"
        raise ZooError(f"{path}: 'classes' must be a list of names, got {got}; {expected}")
    if not classes:
        raise ZooError(f"{path}: 'classes' is empty")
    if len(set(classes)) != len(classes):
        raise ZooError(f"{path}: 'classes' names a class twice")
    if len(classes) > 255:
        raise ZooError(f"{path}: {len(classes)} classes; masks of class indices hold at most 255 (255 is 'ignore')")
    colors = spec.get("colors")
    if colors is not None:
        if not isinstance(colors, list) or len(colors) != len(classes) or not all(
                isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colors):
            raise ZooError(f"{path}: 'colors' needs one [r, g, b] (0..255) per class ({len(classes)}), got "
                           f"{str(colors)[:60]}")
    return list(classes), colors


def read_mask(path: Path, colors: list[list[int]] | None = None, image: Path | None = None) -> np.ndarray:
    """A mask file as (H, W) class indices: palette ("P") and grey ("L", "I;16") PNGs hold the index
    itself; RGB masks are read by colour, which needs the spec's colors (an unknown colour is an error).
    With its `image`, the size the mask file declares is compared with the image's before anything is decoded."""
    declared = declared_size(path, "a mask")
    if image is not None and declared != image_size(image):
        h, w = image_size(image)
        raise ZooError(f"{path}: mask is {declared[1]}x{declared[0]}, its image {image.name} is {w}x{h}")
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in ("P", "L", "I", "I;16", "1"):
                return np.asarray(img).astype(np.int64)
            if mode in ("RGB", "RGBA") and colors is not None:
                rgb = np.asarray(img.convert("RGB")).astype(np.int64)
            else:
                rgb = None
    except ZooError:
        raise
    except Exception as e:  # a truncated or corrupt file: the file is the problem
        raise ZooError(f"{path}: cannot read the mask ({type(e).__name__}: {str(e)[:80]})") from None
    if rgb is not None:
        key = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
        out = np.full(key.shape, -1, np.int64)
        for i, (r, g, b) in enumerate(colors):
            out[key == (r << 16 | g << 8 | b)] = i
        if (out < 0).any():
            y, x = np.argwhere(out < 0)[0]
            raise ZooError(f"{path}: colour {tuple(int(v) for v in rgb[y, x])} at ({x}, {y}) is not one of the "
                           f"classes' colors in {SPEC}")
        return out
    hint = " (an RGB picture of the mask: list each class's colour in classes.json 'colors')" if mode in ("RGB", "RGBA") else ""
    raise ZooError(f"{path}: a {mode} mask; use palette or grey PNGs of class indices, or RGB masks with "
                   f"colors in {SPEC}{hint}")


def _palette(path: Path, n: int) -> list[list[int]] | None:
    with Image.open(path) as img:  # a mask already read once: its file is an image
        pal = img.getpalette() if img.mode == "P" else None
    if not pal or len(pal) < 3 * n:
        return None
    return [pal[3 * i:3 * i + 3] for i in range(n)]


def _find_mask(masks_dir: Path, images_dir: Path, image: Path) -> Path | None:
    rel = image.relative_to(images_dir).with_suffix("")
    for suffix in (".png", ".PNG", ".tif", ".tiff", ".bmp", ".gif"):
        if (masks_dir / rel).with_suffix(suffix).is_file():
            return (masks_dir / rel).with_suffix(suffix)
    return None


def mask_folder_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                        reference_info: dict | None = None, ignore_index: int = IGNORE) -> DataSplits:
    """root/images/NAME.jpg with root/masks/NAME.png (same stem, same sub-folders), optional
    root/classes.json. Every mask is checked once, before training: same size as its image, values in the
    class list (or the ignore index). A wrong or missing mask is an error naming its file: labels are fixed
    at their source, not trained on. Unreadable images are skipped with their reason, as zoo does everywhere."""
    root = Path(source)
    images_dir, masks_dir = _subdir(root, IMAGE_DIRS), _subdir(root, MASK_DIRS)
    if images_dir is None or masks_dir is None:
        raise ZooError(f"--data {root}: expected sub-folders images/ and masks/ (image and mask with the same name)")
    classes, colors = _read_spec(root / SPEC) if (root / SPEC).is_file() else (None, None)
    files = [Path(f) for f in find_images([images_dir])]
    if not files:
        raise ZooError(f"{images_dir}: no images found")
    readable, skipped = check_listed_images(files)
    pairs = []
    for f in files:
        mask = _find_mask(masks_dir, images_dir, f)
        if mask is None:
            raise ZooError(f"{f}: no mask for it in {masks_dir} (expected {f.relative_to(images_dir).with_suffix('.png')})")
        if f in readable:
            pairs.append((f, mask))
    if not pairs:
        raise ZooError(f"{images_dir}: none of the {len(skipped)} image(s) could be read{skipped_example(skipped)}")
    # The validating pass: sizes, values, and the class pixel counts for class weights.
    known = len(classes) if classes is not None else None
    counts = np.zeros(256, np.int64)
    for f, m in pairs:
        labels = read_mask(m, colors, image=f)  # the sizes compared before the mask is decoded
        values = np.unique(labels)
        bad = [int(v) for v in values if v != ignore_index and (v < 0 or v > 255 or (known is not None and v >= known))]
        if bad:
            allowed = f"0..{known - 1} ({', '.join(classes)})" if known is not None else "0..254"
            raise ZooError(f"{m}: values {bad[:8]} are not classes {allowed} nor the ignore index {ignore_index}; "
                           f"fix the mask or list the classes in {root / SPEC}")
        counts += np.bincount(labels[labels != ignore_index].ravel(), minlength=256)[:256]
    if classes is None:
        n = max(2, int(np.nonzero(counts)[0].max()) + 1)
        classes = ["background", *[f"class_{i}" for i in range(1, n)]]
    colors = colors or _palette(pairs[0][1], len(classes)) or class_colors(len(classes))
    _check_reference(classes, reference_info, str(root))
    counts = counts[:len(classes)]
    items = [(f, partial(read_mask, m, colors if _is_rgb(m) else None), str(f)) for f, m in pairs]
    train_idx, val_idx = _split(len(items), val_fraction, seed)
    return DataSplits(MaskSamples([items[i] for i in train_idx], ignore_index),
                      MaskSamples([items[i] for i in val_idx], ignore_index, original=True),
                      _info(classes, colors, ignore_index, counts, reference_info), skipped=skipped,
                      description=f"{root} ({len(items)} images with masks, {len(classes)} classes)")


def _is_rgb(path: Path) -> bool:
    with Image.open(path) as img:
        return img.mode in ("RGB", "RGBA")


# ------------------------------------------------------------------------------------ COCO polygons

def is_coco(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() == ".json"


def rasterize(size_hw: tuple[int, int], shapes: list[tuple[int, Any]], ignore_index: int = IGNORE) -> np.ndarray:
    """(H, W) class indices from (class index, COCO segmentation) pairs in order (later ones on top):
    polygons [[x0, y0, x1, y1, ...], ...] or uncompressed RLE {"counts": [...], "size": [h, w]}; class
    index None marks a crowd region, which is ignored."""
    h, w = size_hw
    canvas = Image.new("I", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    out = np.zeros((h, w), np.int64)
    for label, seg in shapes:
        value = ignore_index if label is None else label
        if isinstance(seg, dict):
            runs = np.asarray(seg["counts"], np.int64)
            flat = np.zeros(h * w, bool)
            pos = np.concatenate([[0], np.cumsum(runs)])
            for k in range(1, len(runs), 2):  # odd runs are foreground, column-major
                flat[pos[k]:pos[k + 1]] = True
            out[flat.reshape(w, h).T] = value
        else:
            canvas.paste(0, (0, 0, w, h))
            for poly in seg:
                draw.polygon([(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)], fill=1)
            out[np.asarray(canvas) > 0] = value
    return out


def _check_segmentation(seg: Any, size_hw: tuple[int, int], where: str) -> None:
    if isinstance(seg, dict):
        if not isinstance(seg.get("counts"), list):
            raise ZooError(f"{where}: compressed RLE is not supported (decode it with pycocotools, or use polygons)")
        if list(seg.get("size", [])) != list(size_hw) or sum(seg["counts"]) != size_hw[0] * size_hw[1]:
            raise ZooError(f"{where}: RLE size {seg.get('size')} does not cover its {size_hw[1]}x{size_hw[0]} image")
        return
    if not isinstance(seg, list) or not seg:
        raise ZooError(f"{where}: segmentation must be a list of polygons [[x0, y0, x1, y1, ...]]")
    for poly in seg:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            raise ZooError(f"{where}: a polygon needs at least 3 (x, y) points as a flat list, got {str(poly)[:60]}")
        if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in poly):
            raise ZooError(f"{where}: polygon coordinates must be numbers, got {str(poly)[:60]}")


def coco_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                 reference_info: dict | None = None, ignore_index: int = IGNORE) -> DataSplits:
    """A COCO instances JSON: categories become classes 1..K in id order after "background", each image's
    polygons are drawn in annotation order (crowd regions: ignored). File names are relative to the JSON's
    folder (or its images/ sub-folder). A bad annotation is an error naming the JSON and the annotation id."""
    path = Path(source)
    coco = read_coco(path)  # checked: types, duplicate ids, annotations of unlisted images or categories
    images, annotations, cats = coco["images"], coco["annotations"], coco["categories"]
    dropped = {c["id"] for c in coco["dropped"]}  # a placeholder category without annotations: no class
    annotations = [a for a in annotations if a["category_id"] not in dropped]
    label_of = {c["id"]: i + 1 for i, c in enumerate(cats)}
    classes = ["background", *[str(c["name"]) for c in cats]]
    by_image: dict[Any, dict] = {}
    for im in images:
        f = path.parent / str(im["file_name"])
        if not f.exists() and (path.parent / "images" / im["file_name"]).exists():
            f = path.parent / "images" / im["file_name"]
        by_image[im["id"]] = {"file": f, "size": (int(im["height"]), int(im["width"])), "shapes": []}
    for a in annotations:
        where = f"{path}: annotation {a.get('id', '?')}"
        if a.get("image_id") not in by_image:
            raise ZooError(f"{where}: image_id {a.get('image_id')!r} is not in 'images'")
        if a.get("category_id") not in label_of:
            raise ZooError(f"{where}: category_id {a.get('category_id')!r} is not in 'categories' "
                           f"({', '.join(str(c['id']) for c in cats)})")
        entry = by_image[a["image_id"]]
        _check_segmentation(a.get("segmentation"), entry["size"], where)
        entry["shapes"].append((None if a.get("iscrowd") else label_of[a["category_id"]], a["segmentation"]))
    entries = list(by_image.values())
    readable, skipped = check_listed_images([e["file"] for e in entries])
    kept = []
    for e in entries:
        if e["file"] not in readable:
            continue
        if image_size(e["file"]) != e["size"]:
            h, w = image_size(e["file"])
            raise ZooError(f"{path}: {e['file'].name} is {w}x{h}, the JSON says {e['size'][1]}x{e['size'][0]}")
        kept.append(e)
    if not kept:
        raise ZooError(f"{path}: none of the {len(skipped)} image(s) it lists could be read{skipped_example(skipped)}; "
                       "file names are relative to the JSON's folder")
    _check_reference(classes, reference_info, str(path))
    items = [(e["file"], partial(rasterize, e["size"], e["shapes"], ignore_index), str(e["file"])) for e in kept]
    train_idx, val_idx = _split(len(items), val_fraction, seed)
    counts = np.zeros(len(classes), np.int64)
    for i in train_idx:
        labels = items[i][1]()
        counts += np.bincount(labels[labels != ignore_index].ravel(), minlength=len(classes))[:len(classes)]
    return DataSplits(MaskSamples([items[i] for i in train_idx], ignore_index),
                      MaskSamples([items[i] for i in val_idx], ignore_index, original=True),
                      _info(classes, class_colors(len(classes)), ignore_index, counts, reference_info), skipped=skipped,
                      description=f"{path} ({len(kept)} images, {len(annotations)} polygons, {len(cats)} categories)")
