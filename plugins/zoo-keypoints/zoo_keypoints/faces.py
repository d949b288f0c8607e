"""The embedded data: drawn faces whose landmarks are known exactly, because they are computed first
and the face is drawn from them.

Each face is built in its own frame (half-width 1, y down) with random proportions (eye spacing and
height, nose length, mouth width, face aspect), turned a little to one side (yaw: the features shift
and the far side narrows), then rolled, scaled and placed on a canvas of random, mostly non-square
size, over a real texture shipped with scikit-image, a colour gradient or grey noise, with a few
distracting blobs. Some faces stick out of the canvas: their outside points are not visible, which
the loss and the metrics mask. Drawn at twice the size and shrunk, for smooth edges."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

NAMES = ["left_brow", "right_brow", "left_eye", "right_eye", "nose", "mouth_left", "mouth_right", "lower_lip",
         "chin", "left_cheek", "right_cheek"]
# Lines drawn between points in pictures, so that a predicted face reads as a face.
SKELETON = [(0, 2), (1, 3), (2, 3), (2, 4), (3, 4), (4, 5), (4, 6), (5, 7), (6, 7), (7, 8), (9, 2), (10, 3), (9, 8),
            (10, 8)]
TEXTURES = ("brick", "grass", "gravel")
SUPERSAMPLE = 2


@lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
    import skimage.data

    arr = getattr(skimage.data, name)()
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3]).astype(np.uint8)


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    kind = rng.random()
    if kind < 0.45:  # a tinted crop of a real texture
        tex = _texture(TEXTURES[rng.integers(len(TEXTURES))])
        side = int(tex.shape[0] * rng.uniform(0.3, 0.8))
        cw, ch = (side, max(8, int(side * h / w))) if w >= h else (max(8, int(side * w / h)), side)
        cw, ch = min(cw, tex.shape[1]), min(ch, tex.shape[0])
        x, y = rng.integers(0, tex.shape[1] - cw + 1), rng.integers(0, tex.shape[0] - ch + 1)
        crop = Image.fromarray(tex[y:y + ch, x:x + cw]).resize((w, h), Image.BILINEAR)
        arr = np.asarray(crop, dtype=np.float32) * rng.uniform(0.6, 1.2, 3)
    elif kind < 0.75:  # a colour gradient
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, h)[:, None, None]
        arr = np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)) + rng.normal(0, 8, (h, w, 3))
    else:  # grey with noise
        arr = np.clip(rng.uniform(40, 220) + rng.normal(0, 12, (h, w, 1)), 0, 255).repeat(3, axis=2)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def face_geometry(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The landmarks (11, 2) and the drawn parts (polygons) of one face in its own frame."""
    aspect = rng.uniform(1.15, 1.45)  # face height / width
    eye_dx, eye_y = rng.uniform(0.34, 0.5), rng.uniform(-0.32, -0.1)
    brow_y = eye_y - rng.uniform(0.2, 0.32)
    nose_y = rng.uniform(0.18, 0.35)
    mouth_y, mouth_dx = rng.uniform(0.55, 0.75), rng.uniform(0.25, 0.42)
    lip = rng.uniform(0.06, 0.16)
    yaw = rng.uniform(-0.35, 0.35)  # turned to one side: features shift, the far half narrows

    def turn(x: np.ndarray, y: np.ndarray, depth: float = 1.0) -> np.ndarray:
        # left half (x < 0) scaled by 1 + yaw, right half by 1 - yaw, features shifted by yaw * depth
        x = np.where(x < 0, x * (1 + yaw * 0.6), x * (1 - yaw * 0.6)) + yaw * 0.35 * depth
        return np.stack([x, y], axis=-1)

    eye_r = rng.uniform(0.1, 0.16)
    cheek_y = eye_y + 0.1
    cheek_x = np.sqrt(max(0.0, 1 - (cheek_y / aspect) ** 2))
    points = np.array([
        turn(np.array(-eye_dx), np.array(brow_y)), turn(np.array(eye_dx), np.array(brow_y)),
        turn(np.array(-eye_dx), np.array(eye_y)), turn(np.array(eye_dx), np.array(eye_y)),
        turn(np.array(0.0), np.array(nose_y), depth=1.6),
        turn(np.array(-mouth_dx), np.array(mouth_y)), turn(np.array(mouth_dx), np.array(mouth_y)),
        turn(np.array(0.0), np.array(mouth_y + lip)),
        turn(np.array(0.0), np.array(aspect), depth=0.3),
        turn(np.array(-cheek_x), np.array(cheek_y), depth=0.0), turn(np.array(cheek_x), np.array(cheek_y), depth=0.0),
    ], dtype=np.float64)
    outline = _ellipse(0, 0, 1, aspect)
    parts = {"face": turn(outline[:, 0], outline[:, 1], depth=0.0)}
    for side, (ex, ey) in (("l", points[2]), ("r", points[3])):
        parts[f"eye_{side}"] = _ellipse(ex, ey, eye_r * 1.5, eye_r, 24)
        parts[f"pupil_{side}"] = _ellipse(ex, ey, eye_r * 0.55, eye_r * 0.55, 16)
    for side, (bx, by) in (("l", points[0]), ("r", points[1])):
        parts[f"brow_{side}"] = np.array([[bx - 0.2, by + 0.04], [bx, by - 0.03], [bx + 0.2, by + 0.04],
                                          [bx + 0.2, by + 0.09], [bx, by + 0.03], [bx - 0.2, by + 0.09]])
    nx, ny = points[4]
    parts["nose"] = np.array([[nx - yaw * 0.3, eye_y + 0.05], [nx - 0.11, ny - 0.02], [nx, ny], [nx + 0.11, ny - 0.02]])
    (lx, ly), (rx, ry), (bx, by) = points[5], points[6], points[7]
    parts["mouth"] = np.array([[lx, ly], [(lx + bx) / 2, (ly + by) / 2 - lip * 0.1], [bx, by],
                               [(rx + bx) / 2, (ry + by) / 2 - lip * 0.1], [rx, ry], [(lx + rx) / 2, (ly + ry) / 2 - lip * 0.25]])
    return points, parts


def _colour(rng: np.random.Generator, base, spread: float) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.asarray(base, dtype=float) + rng.normal(0, spread, 3), 0, 255))


def draw_face(rng: np.random.Generator, w: int, h: int) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """(image, points (11, 2) in pixels, visible (11,) bool) of one face on a w x h canvas."""
    s = SUPERSAMPLE
    canvas = _background(rng, w, h).resize((w * s, h * s), Image.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(0, 4)):  # distractors: blobs that are not faces
        cx, cy, r = rng.uniform(0, w * s), rng.uniform(0, h * s), rng.uniform(3, 0.15 * min(w, h)) * s
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_colour(rng, rng.uniform(0, 255, 3), 10))
    points, parts = face_geometry(rng)
    half_width = rng.uniform(0.16, 0.32) * min(w, h)
    roll = np.deg2rad(rng.uniform(-30, 30))
    rotation = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    # the centre anywhere that keeps most of the face in: now and then a part sticks out
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.3, 0.7) * h
    if rng.random() < 0.1:
        cx = rng.choice([rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0)]) * w

    def place(xy: np.ndarray) -> np.ndarray:  # face frame -> canvas pixels
        return xy @ rotation.T * half_width + np.array([cx, cy])

    skin = _colour(rng, [(225, 190, 160), (190, 140, 100), (140, 95, 65), (95, 65, 45)][rng.integers(4)], 12)
    dark = _colour(rng, (40, 30, 25), 15)
    lips = _colour(rng, (170, 70, 70), 25)
    fill = {"face": skin, "eye_l": (245, 245, 240), "eye_r": (245, 245, 240), "pupil_l": dark, "pupil_r": dark,
            "brow_l": dark, "brow_r": dark, "mouth": lips}
    for name, polygon in parts.items():
        xy = [tuple(p) for p in place(polygon) * s]
        if name == "nose":
            draw.line(xy, fill=_colour(rng, np.asarray(skin) * 0.6, 5), width=max(2, int(half_width * s * 0.06)))
        else:
            draw.polygon(xy, fill=fill[name], outline=(0, 0, 0) if name == "face" else None)
    image = canvas.resize((w, h), Image.LANCZOS)
    pixels = place(points)
    visible = (pixels[:, 0] >= 0) & (pixels[:, 0] < w) & (pixels[:, 1] >= 0) & (pixels[:, 1] < h)
    return image, pixels.astype(np.float32), visible


def generate_faces(count: int, seed: int, min_size: int = 96, max_size: int = 160):
    """`count` (image, points, visible, (h, w)) of drawn faces, all drawn from `seed`."""
    rng = np.random.default_rng([seed, 20251123])
    items = []
    for _ in range(count):
        w, h = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
        image, points, visible = draw_face(rng, w, h)
        items.append((image, points, visible, (h, w)))
    return items
