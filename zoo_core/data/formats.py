"""Reading the annotation files other tools write, safely: JSON (COCO), YAML (Ultralytics' data.yaml),
XML (Pascal VOC) and the size a mask or image declares, each refused in one line naming the file before
anything large is allocated. Part of the public API: every task plugin reading these formats checks them
the same way (no copies).

Limits (README "What zoo guarantees"): a JSON annotation file up to MAX_JSON_BYTES, a YAML or XML file up
to MAX_SMALL_BYTES, no YAML aliases (an alias bomb of a few hundred bytes expands to gigabytes), no XML
entity declarations (the billion-laughs payload), and an image or mask no larger than MAX_PIXELS as
declared in its header, checked before it is decoded."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from ..base.errors import ZooError

MAX_JSON_BYTES = 4 * 2**30  # COCO's train2017 instances file is 0.45 GB; beyond this, a mistake or an attack
MAX_SMALL_BYTES = 16 * 2**20  # a data.yaml, an XML annotation, a classes.json
MAX_PIXELS = 300_000_000  # as zoo_core.data.images' PIL limit: a panorama passes, a decompression bomb does not


def _size_check(path: Path, limit: int, what: str) -> None:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ZooError(f"{path}: cannot read ({e.strerror or e})") from None
    if size > limit:
        raise ZooError(f"{path}: {size / 2**20:.0f} MiB is too large for {what} (limit {limit / 2**20:.0f} MiB)")


def read_text(path: str | Path, what: str, limit: int = MAX_SMALL_BYTES) -> str:
    """A UTF-8 text file (a BOM allowed) of at most `limit` bytes, or a one-line ZooError naming it."""
    path = Path(path)
    _size_check(path, limit, what)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise ZooError(f"{path}:{line}: not UTF-8 text (byte {e.start}); save {what} as UTF-8") from None
    except OSError as e:
        raise ZooError(f"{path}: cannot read ({e.strerror or e})") from None


def read_json(path: str | Path, what: str = "a JSON file", limit: int = MAX_JSON_BYTES) -> Any:
    """A JSON document, refused in one line when the file is too large, starts with something that is
    not JSON (checked on its first bytes, before a huge file is read), is not UTF-8, is malformed or is
    nested too deeply to parse."""
    path = Path(path)
    _size_check(path, limit, what)
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as e:
        raise ZooError(f"{path}: cannot read ({e.strerror or e})") from None
    if not head:
        raise ZooError(f"{path}: empty file; expected {what}")
    if head[:1] not in b"{[":
        raise ZooError(f"{path}: not JSON (starts with {head[:16]!r}); expected {what}")
    text = read_text(path, what, limit)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ZooError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); expected {what}") from None
    except RecursionError:
        raise ZooError(f"{path}: JSON nested too deeply to read; expected {what}") from None


def read_yaml(path: str | Path, what: str = "a YAML file") -> Any:
    """yaml.safe_load without aliases (`*name`): a YAML alias bomb expands to gigabytes from a few hundred
    bytes; data files written by Ultralytics, Roboflow or CVAT never use them."""
    import yaml

    path = Path(path)
    text = read_text(path, what)

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise ZooError(f"{path}:{mark.line + 1}: YAML aliases (*name) are not read in {what}; write the "
                               "values out")
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=NoAliases)  # noqa: S506 (a SafeLoader, aliases refused)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ZooError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or str(e).splitlines()[0]})") from None
    except RecursionError:
        raise ZooError(f"{path}: YAML nested too deeply to read") from None


def read_xml(path: str | Path, what: str = "an XML file"):
    """The root element of an XML file, parsed by defusedxml: entity declarations (billion laughs,
    quadratic blow-up, external entities) are refused, as is a file over MAX_SMALL_BYTES."""
    import defusedxml
    import defusedxml.ElementTree as DET

    path = Path(path)
    text = read_text(path, what)
    try:
        return DET.fromstring(text)
    except DET.ParseError as e:
        raise ZooError(f"{path}:{e.position[0]}: not valid XML ({str(e).split(':')[0]}); expected {what}") from None
    except defusedxml.DefusedXmlException as e:
        raise ZooError(f"{path}: XML with {type(e).__name__} is refused (entity declarations are not read in "
                       f"{what})") from None
    except RecursionError:
        raise ZooError(f"{path}: XML nested too deeply to read") from None


def declared_size(path: str | Path, what: str = "an image", max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(h, w) as the file's header declares it (nothing decoded), EXIF orientation applied; a file that is
    not an image, or declares more than max_pixels, is a one-line ZooError naming it."""
    import warnings

    from PIL import Image

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ZooError(f"{path}: declares {w}x{h} pixels, over the limit of {max_pixels:,}; refused as {what}")
                try:
                    rotated = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
                except Exception:  # damaged EXIF: the pixels are still the image's
                    rotated = False
    except ZooError:
        raise
    except FileNotFoundError:
        raise ZooError(f"{path}: no such file ({what})") from None
    except Image.DecompressionBombError:
        raise ZooError(f"{path}: declares more than {max_pixels:,} pixels; refused as {what}") from None
    except Exception as e:  # whatever PIL raises for it, the file is the problem
        raise ZooError(f"{path}: not readable as {what} ({type(e).__name__})") from None
    return (w, h) if rotated else (h, w)


# --------------------------------------------------------------------------------------------- COCO

def _is_id(v: Any) -> bool:
    return isinstance(v, (int, str)) and not isinstance(v, bool)


def _positive_int(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == int(v) and v > 0


def key_lines(text: str, key: str) -> list[int]:
    """The line of each `"key":` in a JSON text, in order: where each annotation is, for errors."""
    return [text.count("\n", 0, m.start()) + 1 for m in re.finditer(rf'"{re.escape(key)}"\s*:', text)]


def read_coco(path: str | Path, where: Callable[[int, dict], str] | None = None,
              need_annotations: bool = True) -> dict[str, Any]:
    """A COCO instances JSON, checked: {"images": [...], "annotations": [...], "categories": [...]} with
    images {id, file_name, width, height}, categories {id, name}, annotations {image_id, category_id}.
    Duplicate image or category ids, duplicate category names, an annotation of an image or category
    that is not listed, and wrong types are one-line errors naming the file and the entry (`where(n,
    annotation)` says where annotation n is, e.g. its line; default "annotation <id>").

    A placeholder category with no annotations (Roboflow's category 0 with supercategory "none", the
    parent of the real ones) is dropped: it is not a class. The result's "categories" are the classes'
    categories in id order; "dropped" lists the placeholders."""
    path = Path(path)
    doc = read_json(path, "a COCO instances JSON")
    keys = ("images", "annotations", "categories") if need_annotations else ("images", "categories")
    if not isinstance(doc, dict) or not set(keys) <= set(doc):
        missing = [k for k in keys if not isinstance(doc, dict) or k not in doc]
        raise ZooError(f"{path}: not a COCO instances file: missing {', '.join(repr(k) for k in missing)} (needs "
                       f"{', '.join(repr(k) for k in keys)})")
    doc.setdefault("annotations", [])
    for k in ("images", "annotations", "categories"):
        if not isinstance(doc[k], list):
            raise ZooError(f"{path}: '{k}' must be a list, got {type(doc[k]).__name__}")
    where = where or (lambda n, a: f"{path}: annotation {a.get('id', n)}")
    images: dict[Any, dict] = {}
    for n, im in enumerate(doc["images"]):
        at = f"{path}: images[{n}]"
        if not isinstance(im, dict) or not {"id", "file_name", "width", "height"} <= set(im):
            raise ZooError(f"{at}: an image needs id, file_name, width and height")
        if not _is_id(im["id"]) or not isinstance(im["file_name"], str) or not im["file_name"].strip():
            raise ZooError(f"{at}: id must be a number or string and file_name a non-empty string")
        if not (_positive_int(im["width"]) and _positive_int(im["height"])):
            raise ZooError(f"{at}: width and height must be positive whole numbers, got {im['width']!r}, {im['height']!r}")
        if "\0" in im["file_name"]:
            raise ZooError(f"{at}: file_name contains a NUL byte")
        if im["id"] in images:
            raise ZooError(f"{at}: image id {im['id']!r} is used twice ({images[im['id']]['file_name']!r} and "
                           f"{im['file_name']!r}); give each image its own id")
        images[im["id"]] = im
    cats: dict[Any, dict] = {}
    for n, c in enumerate(doc["categories"]):
        at = f"{path}: categories[{n}]"
        if not isinstance(c, dict) or not _is_id(c.get("id")) or not isinstance(c.get("name"), str) or not c["name"].strip():
            raise ZooError(f"{at}: a category needs an id and a non-empty name, got {str(c)[:80]}")
        if c["id"] in cats:
            raise ZooError(f"{at}: category id {c['id']!r} is used twice")
        if any(o["name"] == c["name"] for o in cats.values()):
            raise ZooError(f"{at}: category name {c['name']!r} is used twice; merge the two or rename one")
        cats[c["id"]] = c
    used = set()
    for n, a in enumerate(doc["annotations"]):
        if not isinstance(a, dict):
            raise ZooError(f"{path}: annotations[{n}] is not an object")
        at = where(n, a)
        if not _is_id(a.get("image_id")) or a["image_id"] not in images:
            raise ZooError(f"{at}: image_id {a.get('image_id')!r} is not in 'images'; add the image or remove the "
                           "annotation")
        if not _is_id(a.get("category_id")) or a["category_id"] not in cats:
            raise ZooError(f"{at}: category_id {a.get('category_id')!r} is not in 'categories' "
                           f"(ids: {', '.join(str(i) for i in cats)})")
        if "iscrowd" in a and a["iscrowd"] not in (0, 1, True, False):
            raise ZooError(f"{at}: iscrowd must be 0 or 1, got {a['iscrowd']!r}")
        used.add(a["category_id"])
    parents = {c.get("supercategory") for c in cats.values()}
    dropped = [c for c in cats.values() if c["id"] not in used and len(cats) > 1 and
               (str(c.get("supercategory", "")).lower() == "none" or c["name"] in parents)]
    kept = sorted((c for c in cats.values() if c not in dropped), key=lambda c: (str(type(c["id"])), c["id"]))
    if not kept:
        raise ZooError(f"{path}: no categories")
    return {**doc, "categories": kept, "dropped": dropped, "image_index": images}
