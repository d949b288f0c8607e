"""Landmarks drawn on an image: the skeleton's lines under zoo's point markers."""

from __future__ import annotations

from typing import Sequence

from PIL import ImageDraw
from zoo_core import color, draw_points


def draw_landmarks(image, points: Sequence[Sequence[float]], skeleton: Sequence[Sequence[int]] = (),
                   visible: Sequence[bool] | None = None, colour: int | None = None, marker: str = "dot"):
    """Points (x, y) in the image's pixels, each in its own colour (so left and right read apart) or all
    in `colour`; lines between skeleton pairs whose two ends are visible."""
    image = image.convert("RGB") if image.mode != "RGB" else image.copy()
    draw = ImageDraw.Draw(image)
    width = max(1, round(max(image.size) / 300))
    line = color(colour) if colour is not None else (255, 255, 255)
    for i, j in skeleton:
        if visible is None or (visible[i] and visible[j]):
            draw.line([tuple(points[i]), tuple(points[j])], fill=line, width=width)
    colours = [colour] * len(points) if colour is not None else list(range(len(points)))
    return draw_points(image, points, visible=visible, colors=colours, marker=marker)
