"""Generalisation of an ocr run (issue 21): CER and word accuracy on text it was not trained on.

    python bench/ocr_generalisation.py runs/ocr-001 [--font /usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf]

1. captchas of every length 1-9, 100 each, drawn with a seed the run never used: the default draws 4-6
   characters most often and 1, 2, 8, 9 rarely, so the rare lengths are the test;
2. 300 plain lines rendered in a font the run did not train on (DejaVu Serif, Debian's fonts-dejavu-core,
   when it is there), next to 300 in the training fonts, same seed.
Each set is written as a folder of images named by their text and evaluated with the run (zoo eval --data),
so the numbers are what a user gets. Prints a table; the load average goes next to it."""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from zoo_core import load_run
from zoo_ocr.render import draw_captcha, fonts, line_text, render_line, SYMBOLS

SEED = "generalisation-2026"


def folder(root: Path, name: str, items) -> Path:
    out = root / name
    out.mkdir(parents=True)
    for i, (image, text) in enumerate(items):
        image.save(out / f"{text}_{i}.png")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--font", default="/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")
    ap.add_argument("--per-length", type=int, default=100)
    ap.add_argument("--lines", type=int, default=300)
    args = ap.parse_args()
    run = load_run(args.run, device="cpu")
    rng = random.Random(SEED)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for length in range(1, 10):
            items = []
            for _ in range(args.per_length):
                text = "".join(rng.choice(SYMBOLS) for _ in range(length))
                items.append((draw_captcha(text, rng), text))
            scores, _ = run.evaluate(data=folder(root, f"captcha-{length}", items), workers=0)
            rows.append((f"captchas of {length} characters", scores))
        sets = [("lines, training fonts", None)]
        if Path(args.font).is_file():
            sets.append((f"lines, unseen font {Path(args.font).name}", args.font))
        for name, font in sets:
            r = random.Random(SEED + "-lines")
            items = []
            for _ in range(args.lines):
                text = line_text(r, r.randint(3, 9))
                items.append((render_line(text, font or r.choice(fonts()), r), text))
            scores, _ = run.evaluate(data=folder(root, name.replace(" ", "-").replace(",", ""), items), workers=0)
            rows.append((name, scores))
    print(f"| set | images | CER | word accuracy |\n|---|---|---|---|")
    for name, s in rows:
        print(f"| {name} | {s['images']} | {s['cer']:.2%} | {s['word_accuracy']:.1%} |")
    print("load average:", Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()
