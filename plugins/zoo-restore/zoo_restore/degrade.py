"""Degradations as declared, seeded data transforms: a clean image in, the degraded one out.

A `Degradation` is built from the dataset's options (saved in the run's config) and draws every random
choice from the torch.Generator it is given: validation uses one seeded by the example's index (the same
degraded image every epoch), training one seeded from torch's global generator, which the trainer seeds
(and DataLoader seeds per worker), so a resumed run draws the same degradations.

Kinds, applied in this order whatever order they are named in:
  blur    Gaussian blur, sigma drawn from `blur` (min, max) pixels
  motion  a straight motion blur, length drawn from `motion` (min, max) pixels, any angle
  sr2/sr4 downscale by 2 or 4 (bicubic, antialiased): super-resolution; the model upscales again
  noise   additive Gaussian noise, sigma drawn from `noise` (min, max) in 0-255 grey levels
  jpeg    JPEG compression, quality drawn from `jpeg` (min, max)
  inpaint a random square of side `mask` pixels replaced by noise (the source's 42x42 noise square)
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from zoo_core import ZooError

KINDS = ("blur", "motion", "sr2", "sr4", "noise", "jpeg", "inpaint")


def _range(value, name: str) -> tuple[float, float]:
    """'0.8-2.0', '5', 5 or (0.8, 2.0) -> (min, max)."""
    try:
        if isinstance(value, str):
            parts = [float(v) for v in value.replace(",", "-").split("-") if v.strip()]
            lo, hi = (parts[0], parts[-1]) if len(parts) in (1, 2) else (None, None)
        else:
            lo, hi = (value, value) if isinstance(value, (int, float)) else tuple(value)
    except (TypeError, ValueError):
        lo = hi = None
    if lo is None or not 0 <= lo <= hi:
        raise ZooError(f"dataset option {name}: give MIN-MAX (or one value), 0 <= MIN <= MAX (got {value!r})")
    return float(lo), float(hi)


@dataclass(frozen=True)
class Degradation:
    kinds: tuple[str, ...] = ("blur", "noise")
    blur: tuple[float, float] = (0.8, 2.0)
    motion: tuple[float, float] = (5.0, 11.0)
    noise: tuple[float, float] = (5.0, 20.0)
    jpeg: tuple[float, float] = (20.0, 60.0)
    mask: int = 42

    @classmethod
    def parse(cls, degrade: str, blur=(0.8, 2.0), motion=(5.0, 11.0), noise=(5.0, 20.0), jpeg=(20.0, 60.0),
              mask: int = 42) -> "Degradation":
        kinds = tuple(k.strip() for k in degrade.replace(",", "+").split("+") if k.strip())
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ZooError(f"dataset option degrade='{degrade}': use one or more of {', '.join(KINDS)} joined by '+' "
                           "(e.g. blur+noise, sr2)")
        if "sr2" in kinds and "sr4" in kinds:
            raise ZooError("dataset option degrade: sr2 and sr4 exclude each other")
        q = _range(jpeg, "jpeg")
        if q[1] > 100:
            raise ZooError(f"dataset option jpeg: qualities are 1-100 (got {jpeg!r})")
        if mask < 1:
            raise ZooError(f"dataset option mask: a side in pixels >= 1 (got {mask})")
        return cls(tuple(k for k in KINDS if k in kinds), _range(blur, "blur"), _range(motion, "motion"),
                   _range(noise, "noise"), q, int(mask))

    @property
    def scale(self) -> int:
        return 4 if "sr4" in self.kinds else 2 if "sr2" in self.kinds else 1

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def __call__(self, clean: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """(3, H, W) uint8 clean -> (3, H/s, W/s) uint8 degraded (H and W multiples of the scale)."""
        x = clean.float().div(255)[None]

        def draw(lo_hi: tuple[float, float]) -> float:
            lo, hi = lo_hi
            return lo + (hi - lo) * float(torch.rand((), generator=g))

        if "blur" in self.kinds:
            x = gaussian_blur(x, draw(self.blur))
        if "motion" in self.kinds:
            x = motion_blur(x, draw(self.motion), float(torch.rand((), generator=g)) * math.pi)
        s = self.scale
        if s > 1:
            x = F.interpolate(x, size=(x.shape[-2] // s, x.shape[-1] // s), mode="bicubic", antialias=True,
                              align_corners=False)
        if "noise" in self.kinds:
            x = x + torch.randn(x.shape, generator=g) * draw(self.noise) / 255
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)[0]
        if "jpeg" in self.kinds:
            x = jpeg(x, int(round(draw(self.jpeg))))
        if "inpaint" in self.kinds:
            h, w = x.shape[-2:]
            m = min(self.mask, h, w)
            y0 = int(torch.randint(0, h - m + 1, (), generator=g))
            x0 = int(torch.randint(0, w - m + 1, (), generator=g))
            x = x.clone()
            x[:, y0:y0 + m, x0:x0 + m] = torch.randint(0, 256, (3, m, m), generator=g, dtype=torch.uint8)
        return x


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def motion_blur(x: torch.Tensor, length: float, angle: float) -> torch.Tensor:
    n = max(1, int(round(length)))
    if n == 1:
        return x
    r = n // 2
    size = 2 * r + 1
    kernel = torch.zeros(size, size)
    for t in torch.linspace(-(n - 1) / 2, (n - 1) / 2, n * 3):
        kernel[int(round(r + float(t) * math.sin(angle))), int(round(r + float(t) * math.cos(angle)))] += 1
    kernel /= kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    return F.conv2d(x, kernel.view(1, 1, size, size).repeat(c, 1, 1, 1), groups=c)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    from PIL import Image
    import numpy as np

    buffer = io.BytesIO()
    Image.fromarray(x.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=max(1, min(100, quality)))
    buffer.seek(0)
    return torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy()).permute(2, 0, 1)
