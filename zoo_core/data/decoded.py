"""Decoded-image cache. Image files are decoded (and, only when much larger than the model's input,
reduced) once to uint8 and kept in memory while `image_cache_gb` allows, else on disk, so later
epochs touch no JPEG. What is kept is the image *before* any random augmentation, in the model's
channel mode: for images up to twice the input size that is the decoded image itself, so a run with
the cache is bit-for-bit the run without it; a larger image is kept with its shorter side at twice the
input size, which changes pixels slightly (a resize before the transform's own) and saves memory —
unless its target lives in its pixels (boxes, points, masks), which keeps it whole.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..base.artifacts import atomic_write, cache_dir

IMAGES = "images"  # $ZOO_CACHE/images/<digest>.npz (the array and its checksum)
FORMAT = 1  # bumped when what a cached feature or image means changes; part of every key


def _hash(*chunks: bytes) -> str:
    h = hashlib.blake2b(digest_size=16)
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def _jpeg_plain(path: Path, channels: int) -> bool:
    """A JPEG torchvision decodes exactly as PIL does (tests/test_cache.py checks it): a colour JPEG read
    in colour or a grayscale one in grayscale, upright. Colour to gray (PIL's own weights), CMYK,
    EXIF-rotated and other files keep PIL's decoding."""
    from PIL import Image

    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return False
    try:
        from .images import MAX_PIXELS

        with Image.open(path) as img:  # reads the header only; an image past the limit goes to PIL, which refuses it
            return (img.format == "JPEG" and img.mode == ("L" if channels == 1 else "RGB")
                    and img.width * img.height <= MAX_PIXELS
                    and img.getexif().get(0x0112, 1) == 1)
    except Exception:
        return False


def decode(path: str | Path, channels: int) -> np.ndarray:
    """An image file as uint8 (H, W) or (H, W, 3) in the model's channel mode: torchvision's libjpeg-turbo
    decoder for plain JPEGs (faster than PIL, the same pixels), PIL (zoo's load_image: EXIF, 16-bit,
    transparency, CMYK) for everything else."""
    from ..data.images import open_image

    path = Path(path)
    if _jpeg_plain(path, channels):
        try:
            import warnings

            from torchvision.io import ImageReadMode, decode_jpeg, read_file

            with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec; PIL takes over if it goes
                warnings.simplefilter("ignore", DeprecationWarning)
                t = decode_jpeg(read_file(str(path)), mode=ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB)
            return t[0].numpy() if channels == 1 else t.permute(1, 2, 0).contiguous().numpy()
        except Exception:  # whatever libjpeg refuses, PIL gets a chance at
            pass
    return np.asarray(open_image(path, channels))


def _image_sum(arr: np.ndarray) -> bytes:
    return hashlib.blake2b(f"{arr.shape}|{arr.dtype}".encode() + np.ascontiguousarray(arr).tobytes(), digest_size=16).digest()


class DecodedImages:
    """Image files decoded once to uint8 and reused every epoch: in memory up to `memory_gb`, then (mode
    auto or disk) as .npz files (array + checksum) under $ZOO_CACHE/images keyed by (path, size, mtime) — the disk tier is a
    speed cache for files read every epoch, where a stat is enough and a content hash would read each file
    anyway. Hands out PIL images, so every transform sees what it would without the cache."""

    def __init__(self, channels: int, max_side: int | None, mode: str = "auto", memory_gb: float = 2.0,
                 disk_gb: float = 10.0):
        self.channels, self.max_side, self.mode = channels, max_side, mode
        self.memory_limit, self.disk_gb = memory_gb * 2**30, disk_gb
        self.memory: dict[str, np.ndarray] = {}
        self.held = 0
        self.memory_full = False
        self.decoded = 0  # files decoded (tests and the bench read it)

    @classmethod
    def for_run(cls, cfg: dict[str, Any], data_config) -> "DecodedImages | None":
        if cfg["image_cache"] == "off":
            return None
        _, h, w = data_config.input_size
        return cls(data_config.channels, 2 * max(h, w), cfg["image_cache"], cfg["image_cache_gb"], cfg["cache_disk_gb"])

    def _disk_path(self, path: Path, exact: bool) -> Path:
        st = path.stat()
        side = None if exact else self.max_side
        key = _hash(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.channels}|{side}|{FORMAT}".encode())
        return cache_dir(IMAGES) / f"{key}.npz"

    def _expected_shape(self, path: Path, exact: bool) -> tuple[int, ...]:
        """The decoded array's shape, from the header alone (EXIF rotation and _reduce applied)."""
        from PIL import Image

        with Image.open(path) as img:
            w, h = img.size
            if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
        if not (exact or self.max_side is None or min(h, w) <= self.max_side):
            r = self.max_side / min(h, w)
            w, h = max(1, round(w * r)), max(1, round(h * r))
        return (h, w) if self.channels == 1 else (h, w, 3)

    def _read_checked(self, cached: Path, path: Path, exact: bool) -> np.ndarray:
        """A cached decoded image, verified (checksum, dtype, the shape its file's header gives) or ValueError."""
        with np.load(cached, allow_pickle=False) as stored:
            arr, stored_sum = stored["a"], bytes(stored["sum"])
        if arr.dtype != np.uint8 or arr.shape != self._expected_shape(path, exact):
            raise ValueError("wrong shape or dtype")
        if stored_sum != _image_sum(arr):
            raise ValueError("checksum")
        return arr

    def _reduce(self, arr: np.ndarray, exact: bool) -> np.ndarray:
        """Only images larger than twice the input size are reduced (see the module's docstring), and
        never where the target is in the image's pixels (boxes, points, masks: `exact`)."""
        h, w = arr.shape[:2]
        if exact or self.max_side is None or min(h, w) <= self.max_side:
            return arr
        from PIL import Image

        r = self.max_side / min(h, w)
        return np.asarray(Image.fromarray(arr).resize((max(1, round(w * r)), max(1, round(h * r))), Image.BILINEAR,
                                                      reducing_gap=None))

    def load(self, path: str | Path, exact: bool = False):
        """The image at `path` as PIL; `exact`: at its own size whatever it is (its target is in its pixels)."""
        from PIL import Image

        key = f"{path}|{exact}"
        arr = self.memory.get(key)
        if arr is None:
            arr = self._fetch(Path(path), exact, key)
        return Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")

    def _fetch(self, path: Path, exact: bool, key: str) -> np.ndarray:
        memory_ok = self.mode in ("auto", "memory") and not self.memory_full
        disk_ok = self.mode in ("auto", "disk") and self.disk_gb > 0
        if disk_ok and not memory_ok:
            cached = None
            try:
                cached = self._disk_path(path, exact)
                arr = self._read_checked(cached, path, exact)
                os.utime(cached)  # its last use, for eviction
                return arr
            except OSError:  # not there yet, or the cache folder is unusable: decode it
                pass
            except Exception:  # damaged or replaced (fails its check): decoded again and rewritten below
                if cached is not None:
                    cached.unlink(missing_ok=True)
        arr = self._reduce(decode(path, self.channels), exact)
        self.decoded += 1
        if memory_ok and self.held + arr.nbytes <= self.memory_limit:
            self._keep(key, arr)
            return arr
        self.memory_full = memory_ok or self.memory_full
        if disk_ok:
            def write(p: Path) -> None:
                with open(p, "wb") as f:
                    np.savez(f, a=arr, sum=np.frombuffer(_image_sum(arr), np.uint8))

            try:
                atomic_write(self._disk_path(path, exact), write)
            except OSError:  # a full disk costs the speed-up, not the run
                pass
        return arr

    def _keep(self, key: str, arr: np.ndarray) -> None:
        self.memory[key] = arr
        self.held += arr.nbytes
