"""Predictions that are images (a restored photo, a reconstruction, a generated sample), and running a
model over an image too large for memory in overlapping tiles.

An `ImagePrediction` holds a full-resolution PIL image. `zoo predict --save DIR` (a task declares the
option with `SAVE_OPTION`) writes it as DIR/<input name>.png; `--draw` puts the input and the output side
by side at full size (no grid cell shrinks it); `--json` gives the saved path and the size; `zoo serve`
answers its PNG with ?image=1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from ..base.artifacts import atomic_write
from ..base.errors import ZooError
from ..base.settings import Setting
from ..contract.components import Prediction

SAVE_OPTION = Setting("save", str, None, "Write each output image at full size into this folder, named after its "
                      "input (a PNG).", nullable=True, path=True)

_SAVED: dict[str, dict[str, str]] = {}  # per --save folder, the names this process wrote: name -> source


@dataclass
class ImagePrediction(Prediction):
    """One image out per image in: `image` at its full resolution; `save_dir` where --save writes it."""

    image: Image.Image | None = None
    save_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more JSON-able facts (a latent vector, a score)
    _written: Path | None = field(default=None, repr=False)

    full_size = True  # Predictor.draw keeps it at full size

    def saved_path(self) -> Path | None:
        """Written once, on first use, when --save DIR was given (the source is known only by then); a second
        input of the same name from another folder becomes <name>-2.png, never overwriting the first."""
        if self.save_dir is None or self._written is not None or self.image is None:
            return self._written
        folder = Path(self.save_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ZooError(f"--save {folder}: cannot create the folder ({e.strerror or e})") from None
        stem = Path(self.source).stem if self.source and not self.source.startswith("<") else f"image-{id(self):x}"
        taken = _SAVED.setdefault(str(folder.resolve()), {})
        name, n = stem, 1
        while taken.get(name, self.source) != self.source:
            n += 1
            name = f"{stem}-{n}"
        taken[name] = self.source
        image = self.image
        self._written = atomic_write(folder / f"{name}.png", lambda p: image.save(p, format="PNG"))
        return self._written

    def png(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": [self.image.width, self.image.height] if self.image else None, **self.extra}
        if self.saved_path() is not None:
            out["saved"] = str(self._written)
        return out

    def caption(self) -> str:
        size = f"{self.image.width}x{self.image.height}" if self.image else "no image"
        return size + (f" -> {self._written}" if self.saved_path() is not None else "")

    def draw(self, image: Image.Image) -> Image.Image:
        """Input | output, side by side at the output's full size (the input scaled to its height)."""
        return side_by_side([image, self.image])


def side_by_side(images: list[Image.Image], gap: int = 4) -> Image.Image:
    """Images in a row at the height of the tallest, on white."""
    h = max(im.height for im in images)
    scaled = [im.convert("RGB").resize((max(1, round(im.width * h / im.height)), h), Image.BICUBIC)
              if im.height != h else im.convert("RGB") for im in images]
    sheet = Image.new("RGB", (sum(im.width for im in scaled) + gap * (len(scaled) - 1), h), (255, 255, 255))
    x = 0
    for im in scaled:
        sheet.paste(im, (x, 0))
        x += im.width + gap
    return sheet


def stack_full_size(images: list[Image.Image], path: str | Path, gap: int = 4) -> Path:
    """Drawings one under another at full size: what --draw writes for image predictions."""
    w = max(im.width for im in images)
    sheet = Image.new("RGB", (w, sum(im.height for im in images) + gap * (len(images) - 1)), (255, 255, 255))
    y = 0
    for im in images:
        sheet.paste(im.convert("RGB"), (0, y))
        y += im.height + gap
    return atomic_write(Path(path), lambda p: sheet.save(p, format="PNG"))


def tiled(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int,
          multiple: int = 1) -> torch.Tensor:
    """model(x) for an image-valued model (output (B, C', s*H, s*W) for input (B, C, H, W)), computed on
    overlapping tiles of at most tile x tile input pixels and blended with linear ramps, so memory stays
    bounded whatever the image size. Tile sides are multiples of `multiple` (the backbone's stride)."""
    _, _, H, W = x.shape
    if H <= tile and W <= tile:
        return model(x)
    tile = max(multiple, tile // multiple * multiple)
    overlap = min(overlap, tile // 2)
    step = tile - overlap

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        out = list(range(0, n - tile, step)) + [n - tile]
        return sorted(set(out))

    out = weight = None
    for y in starts(H):
        for x0 in starts(W):
            patch = x[..., y:y + tile, x0:x0 + tile]
            ph, pw = patch.shape[-2:]
            pad_h, pad_w = (-ph) % multiple, (-pw) % multiple
            if pad_h or pad_w:
                patch = torch.nn.functional.pad(patch, (0, pad_w, 0, pad_h), mode="replicate")
            y_ = model(patch)
            s = y_.shape[-1] // patch.shape[-1]
            y_ = y_[..., : ph * s, : pw * s]
            if out is None:
                out = y_.new_zeros(*y_.shape[:2], H * s, W * s)
                weight = y_.new_zeros(1, 1, H * s, W * s)
            ramp = _ramp(ph * s, overlap * s, y > 0, y + ph < H)[:, None] * _ramp(pw * s, overlap * s, x0 > 0, x0 + pw < W)[None, :]
            ramp = ramp.to(y_)
            out[..., y * s:(y + ph) * s, x0 * s:(x0 + pw) * s] += y_ * ramp
            weight[..., y * s:(y + ph) * s, x0 * s:(x0 + pw) * s] += ramp
    return out / weight.clamp_min(1e-8)


def _ramp(n: int, overlap: int, rise: bool, fall: bool) -> torch.Tensor:
    """1 in the middle, rising linearly over `overlap` pixels at an edge shared with a neighbouring tile,
    from 0 over its outer quarter: a tile's own border pixels (which saw padding, not the neighbour's
    pixels) count for nothing where the neighbour saw them whole."""
    r = torch.ones(n)
    if overlap > 0:
        margin = overlap // 4
        ramp = ((torch.arange(overlap, dtype=torch.float32) + 1 - margin) / (overlap - margin + 1)).clamp(0, 1)
        if rise:
            r[:overlap] = torch.minimum(r[:overlap], ramp)
        if fall:
            r[-overlap:] = torch.minimum(r[-overlap:], ramp.flip(0))
    return r
