"""Hostile and odd image files for the fault suite, made on the spot (no file is checked in)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A PNG of a few hundred bytes whose header declares width x height 8-bit grey pixels: decoding it
    would allocate width*height bytes (and more converting it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (width + 1)  # filter byte + the row; compressed, rows of zeros cost next to nothing
    idat = zlib.compress(row * 4, 9)  # a real decoder would want all `height` rows: it never gets that far
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def odd_images(folder: Path) -> dict[str, Path]:
    """Readable images in every odd mode a camera, a scanner or an editor writes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    out = {}

    def save(name, img, **kw):
        out[name] = folder / name
        img.save(out[name], **kw)

    save("cmyk.jpg", rgb.convert("CMYK"))
    save("sixteen.png", Image.fromarray((rng.integers(0, 65535, (24, 32))).astype(np.uint16)))
    save("palette.png", rgb.convert("P"))
    save("onebit.png", rgb.convert("1"))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: shown upright, 24 wide and 32 tall
    save("rotated.jpg", rgb, exif=exif)
    frames = [rgb.convert("P"), rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT).convert("P")]
    out["animated.gif"] = folder / "animated.gif"
    frames[0].save(out["animated.gif"], save_all=True, append_images=frames[1:], duration=50, loop=0)
    save("tiny.png", Image.new("RGB", (1, 1), (200, 10, 10)))
    save("wide.png", Image.new("RGB", (2000, 1), (10, 200, 10)))
    save("tall.png", Image.new("RGB", (1, 2000), (10, 10, 200)))
    save("rgba.png", rgb.convert("RGBA"))
    return out


def bad_images(folder: Path) -> dict[str, Path]:
    """Files with an image's name that are not (whole) images."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {"text.jpg": folder / "text.jpg", "empty.png": folder / "empty.png", "truncated.png": folder / "truncated.png"}
    out["text.jpg"].write_text("this is not a picture\n")
    out["empty.png"].write_bytes(b"")
    full = folder / "full.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    out["truncated.png"].write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    return out
