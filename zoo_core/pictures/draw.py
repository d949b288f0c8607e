"""Drawing predictions on the original image: captions, boxes, points, masks, and a grid of results.

Part of the public API: a task's Prediction.draw() composes these, so every task draws the same way
and `zoo predict --draw`, `zoo eval --report` and `zoo serve` need to know nothing about the task.
Coordinates are original-image pixels; line widths and text scale with the image."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Distinct, colour-blind-friendly colours (Okabe-Ito, then Tableau), cycled by class index.
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def color(i: int) -> tuple[int, int, int]:
    return PALETTE[int(i) % len(PALETTE)]


def _scale(image: Image.Image) -> float:
    return max(image.size) / 400


def _font(image: Image.Image) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(10, int(13 * _scale(image))))


def _rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB") if image.mode != "RGB" else image.copy()


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill, font, image_size) -> None:
    """Text on a filled box at xy (top-left), kept inside the image."""
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    w, h = r - l + 4, b - t + 4
    x = min(max(0, xy[0]), max(0, image_size[0] - w))
    y = min(max(0, xy[1]), max(0, image_size[1] - h))
    draw.rectangle([x, y, x + w, y + h], fill=fill)
    draw.text((x + 2 - l, y + 2 - t), text, fill=(0, 0, 0) if sum(fill[:3]) > 380 else (255, 255, 255), font=font)


def draw_caption(image: Image.Image, text: str) -> Image.Image:
    """The image with a caption strip under it (labels, text, scores)."""
    image = _rgb(image)
    font = _font(image)
    lines = text.splitlines() or [""]
    probe = ImageDraw.Draw(image)
    line_h = max(probe.textbbox((0, 0), ln or " ", font=font)[3] for ln in lines) + 4
    out = Image.new("RGB", (image.width, image.height + line_h * len(lines) + 4), (255, 255, 255))
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, ln in enumerate(lines):
        draw.text((3, image.height + 2 + i * line_h), ln, fill=(0, 0, 0), font=font)
    return out


def draw_boxes(image: Image.Image, boxes: Sequence[Sequence[float]], labels: Sequence[str] | None = None,
               colors: Sequence[int] | None = None, dashed: bool = False) -> Image.Image:
    """Boxes (x0, y0, x1, y1) with optional labels; colors are class indices into PALETTE.
    dashed=True draws ground truth, so predicted and true boxes can share one picture."""
    image = _rgb(image)
    draw = ImageDraw.Draw(image)
    font = _font(image)
    width = max(2, int(2 * _scale(image)))
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = (float(v) for v in box)
        c = color(colors[i] if colors is not None else i)
        if dashed:
            _dashed_rect(draw, (x0, y0, x1, y1), c, width)
        else:
            draw.rectangle([x0, y0, x1, y1], outline=c, width=width)
        if labels is not None and labels[i]:
            _label(draw, (x0, y0 - font.size - 6 if y0 > font.size + 6 else y0), labels[i], c, font, image.size)
    return image


def _dashed_rect(draw: ImageDraw.ImageDraw, box, fill, width: int, dash: int = 8) -> None:
    x0, y0, x1, y1 = box
    for (ax, ay), (bx, by) in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(1, int(length // dash))
        for k in range(0, steps, 2):
            t0, t1 = k / steps, min(1.0, (k + 1) / steps)
            draw.line([(ax + (bx - ax) * t0, ay + (by - ay) * t0), (ax + (bx - ax) * t1, ay + (by - ay) * t1)],
                      fill=fill, width=width)


def draw_points(image: Image.Image, points: Sequence[Sequence[float]], labels: Sequence[str] | None = None,
                visible: Sequence[bool] | None = None, colors: Sequence[int] | None = None,
                marker: str = "dot") -> Image.Image:
    """Points (x, y); invisible ones are skipped. marker "dot" for predictions, "cross" for ground truth."""
    image = _rgb(image)
    draw = ImageDraw.Draw(image)
    font = _font(image)
    r = max(2, int(3 * _scale(image)))
    for i, (x, y) in enumerate(points):
        if visible is not None and not visible[i]:
            continue
        c = color(colors[i] if colors is not None else 0)
        if marker == "cross":
            draw.line([(x - r, y - r), (x + r, y + r)], fill=c, width=2)
            draw.line([(x - r, y + r), (x + r, y - r)], fill=c, width=2)
        else:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=c, outline=(0, 0, 0))
        if labels is not None and labels[i]:
            draw.text((x + r + 1, y - r), labels[i], fill=c, font=font)
    return image


def draw_mask(image: Image.Image, mask: np.ndarray, alpha: float = 0.45, background: int | None = 0,
              colors: Sequence[Sequence[int]] | None = None) -> Image.Image:
    """A label map (h, w) of class indices over the image, each class in its colour (`colors`: RGB per
    class index, e.g. a dataset's palette; default PALETTE); `background` (a class index, or None) stays
    transparent."""
    image = _rgb(image)
    mask = np.asarray(mask)
    n = int(mask.max(initial=0)) + 1
    colours = np.array([tuple(colors[i])[:3] if colors is not None and i < len(colors) else color(i) for i in range(n)],
                       dtype=np.float32)
    overlay = colours[mask.astype(np.int64)]
    base = np.asarray(image, dtype=np.float32)
    blend = np.where((mask != background)[..., None] if background is not None else True,
                     base * (1 - alpha) + overlay * alpha, base)
    return Image.fromarray(blend.clip(0, 255).astype(np.uint8))


def image_grid(images: Sequence[Image.Image], path: str | Path, columns: int = 4, cell: int = 320,
               titles: Sequence[str] | None = None) -> Path:
    """Drawn predictions side by side in one PNG, each scaled to fit a cell (aspect ratio kept)."""
    from ..base.artifacts import atomic_write

    n = len(images)
    cols = max(1, min(columns, n))
    rows = (n + cols - 1) // cols
    title_h = 18 if titles else 0
    sheet = Image.new("RGB", (cols * cell, rows * (cell + title_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for k, img in enumerate(images):
        img = _rgb(img)
        img.thumbnail((cell - 6, cell - 6))
        x, y = (k % cols) * cell, (k // cols) * (cell + title_h)
        if titles:
            draw.text((x + 3, y + 2), titles[k][:48], fill=(0, 0, 0), font=font)
        sheet.paste(img, (x + (cell - img.width) // 2, y + title_h + (cell - img.height) // 2))
    path = Path(path)
    return atomic_write(path, lambda p: sheet.save(p, format="PNG"))
