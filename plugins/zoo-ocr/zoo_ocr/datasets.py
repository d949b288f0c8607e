"""Text-line data: the embedded captchas and rendered lines, a folder whose file names are the text, or a
CSV `path,text`. Each sample's target is {"text": str, "labels": LongTensor}, the labels indexing the
alphabet from 1 (0 is CTC's blank). The alphabet is declared (`--set dataset.alphabet=0123456789`), the
model's own (evaluation), or every character the labels use; a character outside it is a one-line error
naming the file (and line). Empty texts are refused unless declared (`--set dataset.allow_empty=true`).

info: {"alphabet": str, "baseline_text": the most common training text, "baseline_length": the median
training length, "baseline_char": the most common training character}: what the trivial baselines guess."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from zoo_core import (
    PATH_COLUMNS,
    DataConfig,
    DataSplits,
    ZooError,
    check_listed_images,
    find_images,
    random_split,
    read_csv,
    resolve_path,
    scan_images,
    skipped_example,
    split_column,
)

TEXT_COLUMNS = ("text", "label", "transcription", "string", "word", "target")
DUPLICATE = re.compile(r"^(.*?)_\d+$")  # AB12C_2.png: a second image of the text AB12C


def encode(text: str, alphabet: str) -> torch.Tensor:
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    return torch.tensor([index[c] for c in text], dtype=torch.long)


def check_text(text: str, alphabet: str | None, where: str, allow_empty: bool, whose: str) -> None:
    if not text and not allow_empty:
        raise ZooError(f"{where}: empty text; every image needs its text, or pass --set dataset.allow_empty=true "
                       "if images without text are meant (they teach the model to read nothing)")
    if alphabet is not None:
        bad = next((c for c in text if c not in alphabet), None)
        if bad is not None:
            raise ZooError(f"{where}: character {bad!r} (in {text!r}) is not in {whose} {alphabet!r}")


def _alphabet(texts: list[str], declared: str, reference_info: dict | None) -> tuple[str | None, str]:
    """(the alphabet to check texts against now, or None to infer it; whose it is, for messages)."""
    if reference_info is not None:
        return str(reference_info["alphabet"]), "this model's alphabet"
    if declared:
        if len(set(declared)) != len(declared):
            raise ZooError(f"--set dataset.alphabet: {declared!r} repeats a character")
        return declared, "the declared alphabet (dataset.alphabet)"
    return None, ""


def baselines(texts: list[str]) -> dict[str, Any]:
    """What the trivial baselines guess, from the training texts."""
    lengths = sorted(len(t) for t in texts) or [0]
    chars = Counter(c for t in texts for c in t)
    return {"baseline_text": Counter(texts).most_common(1)[0][0] if texts else "",
            "baseline_length": lengths[len(lengths) // 2],
            "baseline_char": chars.most_common(1)[0][0] if chars else ""}


def make_splits(items: list[tuple[Any, str, str]], alphabet: str, val_fraction: float, seed: int,
                presplit: list[str] | None, reference_info: dict | None, description: str,
                skipped: list | None = None, in_memory: bool = False) -> DataSplits:
    """items: (image, text, id). A split column (train/val) or a seeded random split."""
    samples = [{"image": image, "target": {"text": text, "labels": encode(text, alphabet)}, "id": id}
               for image, text, id in items]
    if presplit is not None:
        train = [s for s, p in zip(samples, presplit) if p == "train"]
        val = [s for s, p in zip(samples, presplit) if p == "val"]
        layout = "its own train/val split"
    else:
        train_idx, val_idx = random_split(len(samples), val_fraction, seed)
        train, val = [samples[i] for i in train_idx], [samples[i] for i in val_idx]
        layout = f"a seeded random {1 - val_fraction:.0%}/{val_fraction:.0%} split"
    info = ({k: reference_info[k] for k in ("alphabet", "baseline_text", "baseline_length", "baseline_char")
             if k in reference_info} if reference_info is not None
            else {"alphabet": alphabet, **baselines([s["target"]["text"] for s in train])})
    return DataSplits(train, val, info, skipped=skipped or [], in_memory=in_memory,
                      description=f"{description} ({len(samples)} lines, {len(alphabet)} characters, {layout})")


# ------------------------------------------------------------------------------------------ embedded

def embedded_dataset(source: str | None, *, data_config: DataConfig, seed: int, val_fraction: float,
                     reference_info: dict | None = None, captchas: int = 4000, lines: int = 2000,
                     font: str = "") -> DataSplits:
    """`captchas` captchas and `lines` rendered lines, 1-9 characters (see render.py); `font` renders the
    lines in another font file instead of the training fonts (a generalisation test: zoo eval RUN
    --set dataset.font=/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf --set dataset.captchas=0)."""
    from .render import ALPHABET, drawn

    if captchas < 0 or lines < 0 or captchas + lines < 2:
        raise ZooError(f"--set dataset.captchas / dataset.lines: at least 2 images in all, got {captchas} and {lines}")
    if font and not Path(font).is_file():
        raise ZooError(f"--set dataset.font={font}: no such font file")
    images: list = []
    texts: list[str] = []
    for kind, count in (("captcha", captchas), ("line", lines)):
        if count:
            im, tx = drawn(kind, count, seed, font if kind == "line" else "")
            images += im
            texts += tx
    alphabet = str(reference_info["alphabet"]) if reference_info is not None else ALPHABET
    for i, t in enumerate(texts):
        check_text(t, alphabet, f"embedded line {i}", False, "this model's alphabet")
    kinds = ["captcha"] * captchas + ["line"] * lines
    items = [(im, t, f"{k}-{i}:{t}") for i, (im, t, k) in enumerate(zip(images, texts, kinds))]
    what = f"{captchas} captchas and {lines} lines" + (f" in {Path(font).name}" if font else "")
    return make_splits(items, alphabet, val_fraction, seed, None, reference_info,
                       f"generated text: {what}, 1-9 characters, seed {seed}", in_memory=True)


# --------------------------------------------------------------------------------------------- folder

def is_folder(source: str) -> bool:
    return Path(source).is_dir()


def text_of(path: Path) -> str:
    """The text a file's name holds: the stem, less a trailing _N that tells copies apart (AB12C_2.png)."""
    m = DUPLICATE.match(path.stem)
    return m.group(1) if m else path.stem


def folder_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                   reference_info: dict | None = None, alphabet: str = "", allow_empty: bool = False) -> DataSplits:
    """DIR/<text>.png (AB12C.png, AB12C_2.png), or DIR/train/ and DIR/val/ holding such files."""
    root = Path(source)
    if not root.is_dir():
        raise ZooError(f"{root}: not a directory (expected images named by their text: AB12C.png, AB12C_2.png)")
    parts = {p: root / p for p in ("train", "val") if (root / p).is_dir()}
    groups = {p: find_images([d]) for p, d in parts.items()} if len(parts) == 2 else {"": find_images([root])}
    files = [(f, p) for p, fs in groups.items() for f in fs]
    if not files:
        raise ZooError(f"{root}: no images (expected images named by their text: AB12C.png, AB12C_2.png)")
    good, skipped = scan_images([f for f, _ in files])
    ok = set(good)
    kept = [(f, p) for f, p in files if f in ok]
    if not kept:
        raise ZooError(f"{root}: none of the {len(skipped)} image file(s) could be read{skipped_example(skipped)}")
    check, whose = _alphabet([], alphabet, reference_info)
    for f, _ in kept:
        check_text(text_of(f), check, str(f), allow_empty, whose)
    texts = [text_of(f) for f, _ in kept]
    chars = check if check is not None else "".join(sorted(set("".join(texts))))
    if not chars:
        raise ZooError(f"{root}: every text is empty; there is nothing to learn to read")
    items = [(f, t, str(f)) for (f, _), t in zip(kept, texts)]
    presplit = [p for _, p in kept] if len(groups) == 2 else None
    return make_splits(items, chars, val_fraction, seed, presplit, reference_info, str(root), skipped)


# ------------------------------------------------------------------------------------------------ CSV

def is_csv(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() in (".csv", ".tsv")


def csv_dataset(source: str, *, data_config: DataConfig, seed: int, val_fraction: float,
                reference_info: dict | None = None, path_column: str | None = None, text_column: str | None = None,
                alphabet: str = "", allow_empty: bool = False) -> DataSplits:
    """Rows of (path, text), paths relative to the CSV; an optional split column (train/val)."""
    path = Path(source)
    rows, _ = read_csv(path, {"path": PATH_COLUMNS, "text": TEXT_COLUMNS, "split": ("split",)}, optional=["split"],
                       chosen={"path": path_column, "text": text_column})
    check, whose = _alphabet([], alphabet, reference_info)
    parsed = []
    for n, r in enumerate(rows):
        where = f"{path}:{n + 2}"
        if not r["path"]:
            raise ZooError(f"{where}: empty path")
        check_text(r["text"], check, where, allow_empty, whose)
        parsed.append((resolve_path(path, r["path"]), r["text"], r["split"].lower()))
    readable, skipped = check_listed_images([f for f, _, _ in parsed])
    kept = [p for p in parsed if p[0] in readable]
    if not kept:
        raise ZooError(f"{path}: none of the {len(skipped)} image(s) it lists could be read{skipped_example(skipped)}; "
                       "paths are relative to the CSV's folder")
    chars = check if check is not None else "".join(sorted(set("".join(t for _, t, _ in kept))))
    if not chars:
        raise ZooError(f"{path}: every text is empty; there is nothing to learn to read")
    presplit = split_column([s for _, _, s in kept], str(path))
    return make_splits([(f, t, str(f)) for f, t, _ in kept], chars, val_fraction, seed, presplit, reference_info,
                       str(path), skipped)
