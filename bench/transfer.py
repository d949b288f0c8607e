"""Frozen-backbone transfer: zoo against the source material's naive loop, and the default command.

    python bench/transfer.py                       # efficientnet_lite0 (installed ImageNet weights), 10 epochs
    python bench/transfer.py --per-class 40 --epochs 10 --threads 2

The data: real photos from scikit-image (a cat, coffee, an astronaut, a rocket, a cameraman, and the
brick, grass and gravel textures), one class each. Training crops come from the left 60% of each photo,
validation crops from the right 40%, so validation asks for generalisation, not recall of a seen crop;
every crop is a random square of 30-80% of the photo's shorter side, randomly flipped, resized to 224 px
and saved as a JPEG (quality 90) in DIR/train/<class>/ and DIR/val/<class>/.

Rows, all on the same folder, same backbone module and weights, same head (one linear layer), AdamW
lr 1e-3, weight decay 0.01, cosine schedule per step, batch 32, no augmentation, seeded:
  naive loop      the source's loop: torchvision ImageFolder with PIL decoding, the frozen backbone's
                  forward on every batch of every epoch (eval mode, no_grad), validation every epoch
  zoo, cold cache zoo train --mode frozen --cache-features with an empty feature cache (computes them)
  zoo, warm cache the same command again: features from the disk cache
  default command zoo train classify --data DIR, no other flag (a subprocess, start-up included), on an
                  empty cache: what a first run costs
Times are wall clock of the whole training (data set-up and validation included; the naive loop's
model building excluded, zoo's included).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "brick", "grass", "gravel")


def make_photo_folder(root: Path, per_class: int, size: int = 224, seed: int = 0) -> Path:
    """DIR/train/<photo>/*.jpg from the left 60% of each photo, DIR/val/<photo>/*.jpg from the right 40%."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    n_val = max(2, round(per_class * 0.25))
    for name in PHOTOS:
        photo = Image.fromarray(np.asarray(getattr(skdata, name)())).convert("RGB")
        w, h = photo.size
        for split, count, (x0, x1) in (("train", per_class - n_val, (0, int(0.6 * w))), ("val", n_val, (int(0.6 * w), w))):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                side = int(rng.uniform(0.3, 0.8) * min(h, x1 - x0))
                x, y = int(rng.integers(x0, x1 - side + 1)), int(rng.integers(0, h - side + 1))
                crop = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)
                if rng.random() < 0.5:
                    crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
                crop.save(folder / f"{i:03d}.jpg", quality=90)
    return root


def naive_loop(data: Path, backbone_name: str, epochs: int, batch_size: int, seed: int) -> tuple[float, float, int]:
    """The source material's loop, on the same backbone module zoo uses. Returns (seconds, val accuracy,
    backbone forwards)."""
    from torchvision import datasets
    from torchvision import transforms as T

    from zoo_core.registry.plugins import get_zoo

    torch.manual_seed(seed)
    backbone = get_zoo().backbones.create(backbone_name, pretrained=True).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    dc = backbone.data_config
    tf = T.Compose([T.Resize(int(dc.input_size[1] / dc.crop_pct), interpolation=T.InterpolationMode(dc.interpolation)),
                    T.CenterCrop(dc.input_size[1:]), T.ToTensor(), T.Normalize(dc.mean, dc.std)])
    t = time.perf_counter()
    train_set, val_set = datasets.ImageFolder(data / "train", tf), datasets.ImageFolder(data / "val", tf)
    g = torch.Generator().manual_seed(seed)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=g, drop_last=True)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=batch_size)
    head = torch.nn.Linear(backbone.num_features, len(train_set.classes))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    total = epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    acc, forwards = 0.0, 0
    for epoch in range(epochs):
        head.train()
        for x, y in train_loader:
            with torch.no_grad():
                f = backbone(x)  # the frozen backbone, again, every batch of every epoch
            forwards += len(x)
            loss = torch.nn.functional.cross_entropy(head(f), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        head.eval()
        correct = n = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += (head(backbone(x)).argmax(1) == y).sum().item()
                n += len(y)
        forwards += n
        acc = correct / n
        print(f"  naive loop epoch {epoch + 1}: val accuracy {acc:.3f} ({time.perf_counter() - t:.1f}s)", flush=True)
    return time.perf_counter() - t, acc, forwards


def zoo_run(data: Path, out: Path, backbone: str, epochs: int, batch_size: int, seed: int) -> tuple[float, float, str]:
    from zoo_core import train

    t = time.perf_counter()
    result = train("classify", data=str(data), out=str(out), backbone=backbone, head="linear", mode="frozen",
                   cache_features=True, epochs=epochs, batch_size=batch_size, lr=1e-3, seed=seed, quiet=True)
    seconds = time.perf_counter() - t
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    counts = next(line for line in (out / "train.log").read_text().splitlines() if line.startswith("features:"))
    return seconds, rows[-1]["val_accuracy"], counts.split(" (")[0]


def default_command(data: Path, out: Path, extra: tuple[str, ...] = ()) -> tuple[float, float, str]:
    """`zoo train classify --data DIR`, nothing else, on an empty cache (a first run); the recipe it
    chose, from its log."""
    t = time.perf_counter()
    env = {**os.environ, "ZOO_CACHE": str(out.parent / f"cache-{out.name}")}
    r = subprocess.run([sys.executable, "-m", "zoo_core.cli", "train", "classify", "--data", str(data), "--out", str(out),
                        *extra], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    if r.returncode != 0:
        return seconds, float("nan"), "failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:100]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    log = (out / "train.log").read_text().splitlines()
    choice = next((line for line in log if line.startswith("CPU:")), "")
    model = next((line.split(" + ")[0].removeprefix("model: ") for line in log if line.startswith("model:")), "")
    return seconds, rows[-1]["val_accuracy"], f"{model}; {choice.split(';')[0] or 'task recipe'}"


def plot(rows, path: str, title: str) -> None:
    """Wall clock per run as bars, the validation accuracy written on each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r[2] == r[2]]  # a failed run (no accuracy) has no bar
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(rows) + 1.4))
    names = [r[0] for r in rows][::-1]
    seconds = [r[1] for r in rows][::-1]
    bars = ax.barh(names, seconds, color=["#c44" if "naive" in n else "#48c" for n in names])
    for bar, (_, s, acc, _) in zip(bars, rows[::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {s:.0f} s, {rows[0][1] / s:.1f}x, acc {acc:.3f}",
                va="center", fontsize=9)
    ax.set_xlabel("wall clock, seconds (lower is better)")
    ax.set_xlim(0, max(seconds) * 1.6)
    fig.suptitle(f"frozen-backbone transfer: {title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--per-class", type=int, default=40, help="images per class (8 classes), a quarter for validation")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's; set in the "
                    "subprocess of the default command too, through OMP_NUM_THREADS)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", metavar="PNG", help="also draw the table as bars (docs/cache_transfer.png)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    machine = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["ZOO_CACHE"] = str(tmp / "zoo-cache")  # an empty cache: the cold run computes every feature
        data = make_photo_folder(tmp / "photos", args.per_class)
        n = sum(1 for _ in data.rglob("*.jpg"))
        print(f"{n} photos of {len(PHOTOS)} classes in {data} (224 px JPEG)", flush=True)
        rows = []
        seconds, acc, forwards = naive_loop(data, args.backbone, args.epochs, args.batch_size, args.seed)
        rows.append(("naive loop (backbone every batch, PIL)", seconds, acc, f"{forwards:,} backbone forwards"))
        for name in ("zoo, cold cache", "zoo, warm cache"):
            seconds, acc, note = zoo_run(data, tmp / name.replace(", ", "-").replace(" ", "-"), args.backbone, args.epochs,
                                         args.batch_size, args.seed)
            rows.append((name, seconds, acc, note))
        seconds, acc, note = default_command(data, tmp / "default")
        rows.append(("zoo train classify --data DIR", seconds, acc, note))
        if note.startswith("failed") and "download" in note:  # a default backbone whose weights are not installed
            seconds, acc, note = default_command(data, tmp / "default-lite0", ("--backbone", args.backbone))
            rows.append((f"zoo train classify --data DIR --backbone {args.backbone}", seconds, acc, note))
    base = rows[0][1]
    if args.plot:
        plot(rows, args.plot, f"{args.backbone}, {n} images, {args.epochs} epochs, {machine}")
    print(f"\nfrozen-backbone transfer: {args.backbone}, {n} images, {args.epochs} epochs, batch {args.batch_size}, "
          f"on {machine}")
    print(f"| run | seconds | speed-up | val accuracy | notes |\n|---|---|---|---|---|")
    for name, seconds, acc, note in rows:
        print(f"| {name} | {seconds:.1f} | {base / seconds:.1f}x | {acc:.3f} | {note} |")


if __name__ == "__main__":
    main()
