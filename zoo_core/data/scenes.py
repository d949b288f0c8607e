"""Generated scenes for embedded datasets: crops of real photos pasted on real textures.

scikit-image ships a few real photographs and textures inside its wheel, so scenes made of them need no
download. Every function draws from the `numpy.random.Generator` it is given, so a seed fixes a dataset.
Used by the box, detection and segmentation plugins' embedded defaults; a plugin that calls these
declares `scikit-image` among its own dependencies, or installs `zoo-core[scenes]` (zoo-core does not need it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

# Real photographs shipped with scikit-image: what gets pasted.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "colorwheel",
          "camera", "coins", "clock")
# Real textures shipped with scikit-image: what half of the canvases are made of (the other half plain grey).
TEXTURES = ("brick", "grass", "gravel")
# Object classes of the default scenes: each is crops of one photo, different enough in colour and
# texture to be told apart by a small model trained for minutes on a CPU.
SCENE_CLASSES = {"cat": "chelsea", "coffee": "coffee", "astronaut": "astronaut"}
SHAPES = ("ellipse", "rectangle", "polygon")


@lru_cache(maxsize=None)
def skimage_image(name: str) -> np.ndarray:
    """One of scikit-image's bundled images as HxWx3 uint8 (grey ones repeated to three channels)."""
    try:
        import skimage.data
    except ImportError:
        from ..base.errors import ZooError

        raise ZooError("generated scenes need scikit-image for their photos and textures: "
                       "pip install scikit-image") from None
    arr = getattr(skimage.data, name)()
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3]).astype(np.uint8)


def textured_canvas(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A grey canvas with a little noise, or a tinted crop of a real texture (brick, grass, gravel)."""
    if rng.random() < 0.5:
        grey = rng.integers(90, 171)
        arr = np.clip(grey + rng.normal(0, 6, (h, w, 1)), 0, 255).repeat(3, axis=2)
        return Image.fromarray(arr.astype(np.uint8))
    tex = skimage_image(TEXTURES[rng.integers(len(TEXTURES))])
    side = 512 * rng.uniform(0.3, 0.8)  # textures are 512 px: a crop of 0.3-0.8 of it, shrunk to the canvas
    cw, ch = (int(side), int(side * h / w)) if w >= h else (int(side * w / h), int(side))
    x, y = rng.integers(0, 512 - cw + 1), rng.integers(0, 512 - ch + 1)
    crop = Image.fromarray(tex[y:y + ch, x:x + cw]).resize((w, h), Image.BILINEAR)
    tint = rng.uniform(0.75, 1.15, 3)
    return Image.fromarray(np.clip(np.asarray(crop, dtype=np.float32) * tint, 0, 255).astype(np.uint8))


def photo_crop(rng: np.random.Generator, max_w: int, max_h: int, min_side: int,
               photos: Sequence[str] = PHOTOS) -> Image.Image:
    """A random crop of one of `photos` (drawn from rng), scaled to fit within (max_w, max_h)."""
    photo = skimage_image(photos[rng.integers(len(photos))])
    ph, pw = photo.shape[:2]
    cw, ch = int(pw * rng.uniform(0.35, 0.9)), int(ph * rng.uniform(0.35, 0.9))
    x, y = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
    crop = Image.fromarray(photo[y:y + ch, x:x + cw])
    ow = int(rng.uniform(0.25, 0.75) * max_w)
    oh = int(np.clip(ow * ch / cw * rng.uniform(0.8, 1.25), min_side, max_h * 0.8))
    return crop.resize((max(min_side, ow), max(min_side, oh)), Image.BILINEAR)


def shape_mask(rng: np.random.Generator, w: int, h: int, shape: str | None = None) -> Image.Image:
    """A filled ellipse, rectangle or star-free polygon touching all four sides of a w x h box ("L" mode,
    255 inside), so the object's tight box is exactly the box it is pasted in."""
    shape = shape or SHAPES[rng.integers(len(SHAPES))]
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "ellipse":
        draw.ellipse((0, 0, w - 1, h - 1), fill=255)
    elif shape == "rectangle":
        draw.rectangle((0, 0, w - 1, h - 1), fill=255)
    else:  # a convex-ish polygon with one vertex on each side of the box, at a random place along it
        t = rng.uniform(0.2, 0.8, 4)
        draw.polygon([(t[0] * (w - 1), 0), (w - 1, t[1] * (h - 1)), (t[2] * (w - 1), h - 1), (0, t[3] * (h - 1))],
                     fill=255)
    return mask


@dataclass
class Scene:
    """One generated image with its objects: boxes XYXY in pixels, class indices into the class list,
    and a semantic mask (H, W) uint8 holding 0 for background and class index + 1 for each object."""

    image: Image.Image
    boxes: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    mask: np.ndarray | None = None


def _overlaps(box: list[float], others: list[list[float]], margin: float = 2.0) -> bool:
    return any(box[0] < o[2] + margin and o[0] < box[2] + margin and box[1] < o[3] + margin and o[1] < box[3] + margin
               for o in others)


def generate_scenes(count: int, seed: int, classes: Sequence[str] = tuple(SCENE_CLASSES),
                    objects: tuple[int, int] = (1, 3), min_size: int = 160, max_size: int = 320,
                    scale: tuple[float, float] = (0.2, 0.5)) -> list[Scene]:
    """`count` scenes of objects[0]..objects[1] objects each, pasted without overlap at random places and
    scales on non-square canvases, all drawn from `seed`. A class name is a key of SCENE_CLASSES or the
    name of any scikit-image photo; an object is a crop of its class's photo cut to an ellipse, rectangle
    or polygon, so masks are not just boxes. Objects are scale[0]..scale[1] of the canvas's shorter side."""
    photos = [SCENE_CLASSES.get(c, c) for c in classes]
    rng = np.random.default_rng([seed, 20261123])
    scenes = []
    for _ in range(count):
        w, h = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
        image = textured_canvas(rng, w, h)
        mask = np.zeros((h, w), np.uint8)
        scene = Scene(image, mask=mask)
        for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
            label = int(rng.integers(len(photos)))
            for _attempt in range(20):  # a free place for this object; crowded canvases get fewer objects
                side = rng.uniform(*scale) * min(w, h)
                ow = int(np.clip(side * rng.uniform(0.75, 1.33), 12, w - 2))
                oh = int(np.clip(side * rng.uniform(0.75, 1.33), 12, h - 2))
                x, y = int(rng.integers(0, w - ow + 1)), int(rng.integers(0, h - oh + 1))
                box = [float(x), float(y), float(x + ow), float(y + oh)]
                if not _overlaps(box, scene.boxes):
                    break
            else:
                continue
            crop = photo_crop(rng, ow * 2, oh * 2, 8, photos=[photos[label]]).resize((ow, oh), Image.BILINEAR)
            alpha = shape_mask(rng, ow, oh)
            image.paste(crop, (x, y), alpha)
            mask[y:y + oh, x:x + ow][np.asarray(alpha) > 127] = label + 1
            scene.boxes.append(box)
            scene.labels.append(label)
        scenes.append(scene)
    return scenes
