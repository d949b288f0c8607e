"""Images and tables in: robust image loading with skip reporting, CSV reading with path-column
resolution, seeded splits. Part of the public API (zoo_core re-exports it) so that every plugin
handles bad files, odd CSVs and splits the same way, and none copies another's helpers.
"""

from __future__ import annotations

import csv
import os
import random
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps

from ..base.errors import ZooError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}

# The largest image zoo decodes (width x height, read from the header before any pixel is allocated):
# 100 megapixels, a large panorama, about 300 MB decoded as RGB. Beyond it a file is refused in one line
# (training skips it and says so): a few-KB PNG can declare a size that decodes to gigabytes. ZOO_MAX_PIXELS
# raises or lowers it; zoo serve has its own, smaller --max-pixels per upload.
MAX_PIXELS = int(os.environ.get("ZOO_MAX_PIXELS") or 100_000_000)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL's own check: a warning past it, an error past twice it


def check_pixels(img: Image.Image, where: str | Path) -> None:
    """A one-line ZooError if `img` (opened, not yet decoded) declares more pixels than MAX_PIXELS."""
    if img.width * img.height > MAX_PIXELS:
        raise ZooError(f"{where}: {img.width}x{img.height} is more than zoo decodes ({MAX_PIXELS:,} pixels; "
                       "a decompression bomb, or set ZOO_MAX_PIXELS)")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit grayscale to 0-255 (PIL's own convert would clip, not scale).

    I;16 is 16-bit: scaled by 65535 -> 255. Mode I and F say nothing about their range, so it is read
    from the values: I holding 0-65535 is 16-bit data (PIL opens 16-bit PGM/PPM so) and is scaled the
    same way, I holding 0-255 is 8-bit data and kept, F holding 0-1 is scaled by 255, F holding 0-255
    is kept; anything else (negative, larger) is stretched from its own minimum to its maximum."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        arr = arr.astype(np.float32) / 257.0
    else:  # "I" or "F"
        arr = arr.astype(np.float64)
        finite = np.isfinite(arr)
        arr = np.where(finite, arr, 0.0)
        lo, hi = (float(arr[finite].min()), float(arr[finite].max())) if finite.any() else (0.0, 0.0)
        if lo >= 0 and img.mode == "F" and hi <= 1.0:
            arr = arr * 255.0
        elif lo >= 0 and hi <= 255:
            pass
        elif lo >= 0 and img.mode != "F" and hi <= 65535:
            arr = arr / 257.0
        else:
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L")


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL image to 'L' (1 channel) or 'RGB' (3 channels).

    EXIF orientation is applied; transparency is composited on white (what a viewer shows);
    16-bit is scaled, CMYK and palette images converted."""
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_8bit(img)
    if img.mode == "P":
        transparent = getattr(img, "has_transparency_data", "transparency" in img.info)
        img = img.convert("RGBA" if transparent else "RGB")
    if img.mode == "La":  # premultiplied: PIL converts it to LA only
        img = img.convert("LA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    target = "L" if channels == 1 else "RGB"
    if img.mode == target:
        return img
    try:
        return img.convert(target)
    except ValueError:  # modes PIL converts to RGB only (LAB, ...)
        return img.convert("RGB").convert(target)


def load_image(path: str | Path, channels: int = 3) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EXIF and palette warnings are noise here; failures still raise
        with Image.open(path) as img:
            check_pixels(img, path)
            img.load()
            return to_mode(img, channels)


def image_size(path: str | Path) -> tuple[int, int]:
    """(h, w) of an image file as zoo loads it, read from its header: EXIF orientation applied (a photo
    rotated by its EXIF tag swaps them), so boxes, points and masks are checked against the right size."""
    with Image.open(path) as img:
        w, h = img.size
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            w, h = h, w
    return h, w


def open_image(image: str | Path | Image.Image, channels: int = 3) -> Image.Image:
    """A path or PIL image in the mode the model wants; a file that cannot be read is a one-line ZooError."""
    if isinstance(image, Image.Image):
        return to_mode(image, channels)
    try:
        return load_image(image, channels)
    except ZooError:
        raise
    except Image.DecompressionBombError:
        raise ZooError(f"{image}: more pixels than zoo decodes ({MAX_PIXELS:,}; a decompression bomb, or set "
                       "ZOO_MAX_PIXELS)") from None
    except FileNotFoundError:
        raise ZooError(f"{image}: no such file") from None
    except Exception as e:  # whatever PIL raises for it, the file is the problem
        raise ZooError(f"{image}: cannot read image ({type(e).__name__})") from None


def check_image(path: Path) -> str | None:
    """None when `path` decodes completely, else why it does not (zero bytes, truncated, not an image)."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    return f"{img.width}x{img.height} is more than zoo decodes ({MAX_PIXELS:,} pixels, ZOO_MAX_PIXELS)"
                img.load()  # decodes everything: catches truncated files that verify() lets through
                if img.width < 1 or img.height < 1:
                    return "image has no pixels"
        return None
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}"


def scan_images(paths: Sequence[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Split `paths` into readable images and (path, reason) pairs for the ones to skip.

    Every file is decoded once, in threads (PIL releases the GIL while decoding), with a progress bar:
    a broken file found now is a line in the log, found mid-epoch it would be a crash."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        reasons = list(tqdm(pool.map(check_image, paths), total=len(paths), desc="checking images", unit="img",
                            disable=None if len(paths) > 500 else True, leave=False))
    good = [p for p, r in zip(paths, reasons) if r is None]
    bad = [(str(p), r) for p, r in zip(paths, reasons) if r is not None]
    return good, bad


def stratified_split(labels: Sequence[Any], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices for train and val, keeping each label's share; seeded, so the same every run.

    Every label with two or more examples gets at least one in each split."""
    if val_fraction >= 1.0:  # evaluation: everything is validation
        return [], list(range(len(labels)))
    by_label: dict[Any, list[int]] = defaultdict(list)
    for i, y in enumerate(labels):
        by_label[y].append(i)
    rng = random.Random(seed)
    train, val = [], []
    for y in sorted(by_label, key=str):
        idx = by_label[y]
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val += idx[:n_val]
        train += idx[n_val:]
    return sorted(train), sorted(val)


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories (recursively) into a sorted list of image files."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f))
        elif p.exists():
            out.append(p)
        else:
            raise ZooError(f"{p}: no such file or directory")
    return out


def random_split(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices for train and val of n unlabelled-by-class items (boxes, points, ...): seeded, at least
    one of each when n >= 2."""
    if val_fraction >= 1.0:
        return [], list(range(n))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = min(max(int(round(n * val_fraction)), 1), n - 1) if n >= 2 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


# ------------------------------------------------------------------------------------------------ CSV

PATH_COLUMNS = ("path", "file", "filename", "image", "image_path", "img", "file_name")


def read_csv(path: str | Path, columns: dict[str, Sequence[str]], *, optional: Sequence[str] = (),
             chosen: dict[str, str | None] | None = None) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of a CSV (or .tsv) as dicts keyed by zoo's column names, and the file's header.

    `columns` maps each name zoo wants to the header names accepted for it, case-insensitive
    ({"path": PATH_COLUMNS, "label": ("label", "class")}); `chosen` holds the user's explicit picks
    (--set dataset.label_column=NAME); names in `optional` may be missing (their value is "").
    Every problem is a one-line ZooError naming the file, and the column when one is missing."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ZooError(f"{path}: not a UTF-8 text CSV file") from None
    except OSError as e:
        raise ZooError(f"{path}: cannot read ({e.strerror})") from None
    if not text.strip():
        raise ZooError(f"{path}: the CSV file is empty")
    dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    first = text.splitlines()[0]
    if dialect is csv.excel and "," not in first:  # a spreadsheet's CSV in a ';' locale, or tabs in a .csv
        sep = next((c for c in (";", "\t", "|") if c in first), None)
        if sep:
            dialect = type("sniffed", (csv.excel,), {"delimiter": sep})
    chosen = chosen or {}
    try:
        reader = csv.DictReader(text.splitlines(), dialect=dialect)
        header = [c for c in (reader.fieldnames or []) if c is not None]
        lower = {c.strip().lower(): c for c in header}
        picked: dict[str, str | None] = {}
        for name, accepted in columns.items():
            wanted = chosen.get(name)
            if wanted is not None:
                if wanted not in header:
                    raise ZooError(f"{path}: no column '{wanted}' (columns: {', '.join(header)})")
                picked[name] = wanted
                continue
            picked[name] = next((lower[a] for a in accepted if a in lower), None)
            if picked[name] is None and name not in optional:
                raise ZooError(f"{path}: missing the {name} column (columns: {', '.join(header) or 'none'}); name it "
                               f"one of {', '.join(accepted)} or pass --set dataset.{name}_column=NAME")
        rows, lines = [], []
        for r in reader:
            row = {name: (r.get(col) or "").strip() if col else "" for name, col in picked.items()}
            bad = next((name for name, v in row.items() if "\0" in v), None)
            if bad is not None:  # a path with one cannot be opened: the file is damaged or not text
                raise ZooError(f"{path}:{reader.line_num}: a NUL byte in the {bad} column; fix or remove the row")
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as e:
        raise ZooError(f"{path}: malformed CSV ({e})") from None
    if not rows:
        raise ZooError(f"{path}: the CSV has a header but no rows")
    if picked.get("split"):  # a dataset's own split is checked where it is read, whatever the dataset
        split_column([r["split"] for r in rows], str(path), lines)
    return rows, header


def split_column(values: Sequence[str], where: str, lines: Sequence[int] | None = None) -> list[str] | None:
    """A data file's own split: each row's value of its split column, lower-cased, or None when the column
    is absent or empty in every row (then the dataset makes a seeded random split). A value other than
    train or val, or a row left empty among filled ones, is a one-line error naming its line
    (`lines[i]`, by default i + 2: the rows of a CSV under its header)."""
    values = [v.strip().lower() for v in values]
    if not any(values):
        return None
    for i, v in enumerate(values):
        if v not in ("train", "val"):
            problem = "split is empty" if not v else f"split '{v}' is neither train nor val"
            raise ZooError(f"{where}:{lines[i] if lines else i + 2}: {problem}; mark every row train or val, or leave the "
                           "whole column empty for a seeded random split (evaluate test images with zoo eval --data)")
    return values


MISSING = ("", "nan", "na", "n/a", "none", "null")  # how spreadsheets and pandas write an empty cell


def is_missing(value: str) -> bool:
    """Whether a data file's cell means "no value": empty, or NaN/nan/NA/None/null as pandas and
    spreadsheets write a missing one (a label spelled so would otherwise become a class named 'NaN')."""
    return value.strip().lower() in MISSING


def resolve_path(base: str | Path, value: str) -> Path:
    """A path from a data file, relative to the data file's folder unless absolute (a NUL byte in it is a
    ZooError naming the data file)."""
    if "\0" in value:
        raise ZooError(f"{base}: a path with a NUL byte ({value[:40]!r}); fix the data file")
    p = Path(value)
    return p if p.is_absolute() else (Path(base).parent / p).resolve()


def check_listed_images(paths: Sequence[Path]) -> tuple[set[Path], list[tuple[str, str]]]:
    """Which of the files a CSV or JSON lists are readable images, and (path, reason) for the rest
    (missing files included), decoding each once."""
    missing = {p for p in paths if not p.is_file()}
    skipped = [(str(p), "file not found") for p in sorted(missing)]
    good, bad = scan_images([p for p in dict.fromkeys(paths) if p not in missing])
    return set(good), skipped + bad


def skipped_example(skipped: Sequence[tuple[str, str]]) -> str:
    """' (e.g. path: reason)' for the first skipped file, for an error that says why nothing was read."""
    return f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
