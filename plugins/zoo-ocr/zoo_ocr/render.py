"""The embedded data, drawn offline and seeded: captchas of 1-9 characters with the `captcha` package
(as in the source), and plain text lines rendered with the fonts that ship with Pillow (Aileron, its
`load_default`) and with the captcha package (DroidSansMono). Drawn once, then read from zoo's cache.

Lengths are drawn unevenly on purpose (most often 4-6 characters, rarely 1, 2, 8 or 9): the CER by
length then says how the model does on lengths it saw less."""

from __future__ import annotations

import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from zoo_core import ZooError, atomic_write, cache_dir

SYMBOLS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LINE_EXTRA = " -."  # rendered lines also hold spaces, dashes and dots (plates, serial numbers, prices)
ALPHABET = SYMBOLS + LINE_EXTRA
LENGTHS = range(1, 10)
LENGTH_WEIGHTS = (1, 2, 6, 10, 10, 10, 6, 2, 1)  # 1..9 characters: 4-6 most often, 1, 2, 8, 9 rarely
CHUNK = 200  # images drawn per seeded chunk: the same images whatever the number of processes
VERSION = 1  # of the drawing code: a change makes a new cache file


class _SeededSecrets:
    """The `secrets` functions the captcha package draws with, from a seeded generator."""

    def __init__(self, rng: random.Random):
        self.randbelow, self.randbits, self.choice = rng.randrange, rng.getrandbits, rng.choice


def random_length(rng: random.Random) -> int:
    return rng.choices(list(LENGTHS), weights=LENGTH_WEIGHTS)[0]


def fonts() -> list[str]:
    """The training fonts: captcha's DroidSansMono and Pillow's own (Aileron, via load_default)."""
    import captcha

    return [str(Path(captcha.__file__).parent / "data" / "DroidSansMono.ttf"), "pillow-default"]


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    if name == "pillow-default":
        return ImageFont.load_default(size)
    try:
        return ImageFont.truetype(name, size)
    except OSError:
        raise ZooError(f"font {name}: cannot be read (a .ttf or .otf file)") from None


def line_text(rng: random.Random, length: int) -> str:
    """A line of `length` characters shaped like what people read: a plate, a code with a dash, a price."""
    kind = rng.random()
    if length >= 5 and kind < 0.3:  # two groups: AB-1234, 12 345
        cut = rng.randint(2, length - 3)
        sep = rng.choice(" -")
        return "".join(rng.choice(SYMBOLS) for _ in range(cut)) + sep + "".join(rng.choice(SYMBOLS) for _ in range(length - cut - 1))
    if length >= 4 and kind < 0.45:  # a number with a decimal point: 12.50
        digits = "".join(rng.choice("0123456789") for _ in range(length - 1))
        return digits[:-2] + "." + digits[-2:]
    return "".join(rng.choice(SYMBOLS) for _ in range(length))


def render_line(text: str, font: str, rng: random.Random, size: int | None = None) -> Image.Image:
    """`text` in `font` on a plain background: random size, grey levels (dark on light or light on dark),
    margins, a slight tilt, sometimes a blur or noise."""
    size = size or rng.randint(22, 34)
    f = _font(font, size)
    left, top, right, bottom = f.getbbox(text or " ")
    w, h = right - left, bottom - top
    mx, my = rng.randint(2, 10), rng.randint(3, 9)
    background = rng.randint(150, 255) if rng.random() < 0.85 else rng.randint(0, 90)
    ink = rng.randint(0, 80) if background > 120 else rng.randint(170, 255)
    image = Image.new("L", (w + 2 * mx, max(h, size // 2) + 2 * my), background)
    ImageDraw.Draw(image).text((mx - left, my - top), text, fill=ink, font=f)
    if rng.random() < 0.5:
        image = image.rotate(rng.uniform(-2.5, 2.5), resample=Image.BILINEAR, expand=False, fillcolor=background)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    if rng.random() < 0.3:
        arr = np.asarray(image, dtype=np.float32)
        noise = np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(4, 14), arr.shape)
        image = Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))
    return image


def draw_captcha(text: str, rng: random.Random) -> Image.Image:
    """A captcha of `text` (the captcha package: warped characters, noise dots and a curve), as wide as its
    length needs, drawn with `rng` instead of the package's `secrets`."""
    import captcha.image as captcha_image

    saved, captcha_image.secrets = captcha_image.secrets, _SeededSecrets(rng)
    try:
        drawer = captcha_image.ImageCaptcha(width=26 * len(text) + 30, height=50, font_sizes=(36, 40, 44))
        return drawer.generate_image(text).convert("L")
    finally:
        captcha_image.secrets = saved


def _draw_chunk(args: tuple[str, int, int, int, str]) -> list[tuple[np.ndarray, str]]:
    kind, seed, chunk, count, font = args
    rng = random.Random(f"zoo-ocr-{kind}-{seed}-{chunk}")
    out = []
    names = fonts() if not font else [font]
    for _ in range(count):
        length = random_length(rng)
        if kind == "captcha":
            text = "".join(rng.choice(SYMBOLS) for _ in range(length))
            image = draw_captcha(text, rng)
        else:
            text = line_text(rng, length)
            image = render_line(text, rng.choice(names), rng)
        out.append((np.asarray(image), text))
    return out


def drawn(kind: str, count: int, seed: int, font: str = "") -> tuple[list[Image.Image], list[str]]:
    """`count` seeded images of `kind` ("captcha" or "line"; lines in `font`, else the training fonts) and
    their texts, drawn once (in parallel) and then read from zoo's cache (ZOO_CACHE, else ~/.cache/zoo)."""
    if kind == "captcha":
        try:
            import captcha  # noqa: F401
        except ImportError:
            raise ZooError("the text-lines dataset draws captchas with the 'captcha' package, which is not "
                           "installed: pip install captcha") from None
    tag = Path(font).stem if font else "train-fonts"
    path = cache_dir("ocr") / f"{kind}-{tag}-v{VERSION}-n{count}-seed{seed}.npz"
    if path.is_file():
        try:
            with np.load(path) as cached:
                pixels, shapes, texts = cached["pixels"], cached["shapes"], [str(t) for t in cached["texts"]]
            ends = np.cumsum([h * w for h, w in shapes])
            images = [Image.fromarray(pixels[e - h * w:e].reshape(h, w), mode="L") for e, (h, w) in zip(ends, shapes)]
            return images, texts
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is drawn again
    from tqdm import tqdm

    jobs = [(kind, seed, i, min(CHUNK, count - i * CHUNK), font) for i in range((count + CHUNK - 1) // CHUNK)]
    workers = min(len(jobs), max(1, os.cpu_count() or 1))
    parts = []
    with tqdm(total=count, desc=f"drawing {count} {kind}s (once; cached in {path.parent})", unit="img", disable=None,
              leave=False) as bar:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for part in pool.map(_draw_chunk, jobs):
                    parts.append(part)
                    bar.update(len(part))
        else:
            for job in jobs:
                parts.append(_draw_chunk(job))
                bar.update(job[3])
    arrays = [a for part in parts for a, _ in part]
    texts = [t for part in parts for _, t in part]

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to the temporary name
            np.savez(f, pixels=np.concatenate([a.ravel() for a in arrays]),
                     shapes=np.array([a.shape for a in arrays], dtype=np.int64), texts=np.array(texts))

    atomic_write(path, save)
    return [Image.fromarray(a, mode="L") for a in arrays], texts
