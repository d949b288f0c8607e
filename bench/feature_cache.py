"""Frozen-backbone training with --cache-features against running the backbone every epoch.

    python bench/feature_cache.py                  # resnet18 at 224 px, 160 images, 5 epochs

Both runs train the same head on the same generated JPEG folder with augmentation off; the table
reports wall-clock time of the whole run and the ratio to the uncached baseline."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import make_folder  # noqa: E402
from zoo_core import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_folder(Path(tmp) / "data", args.images)
        for name, cache in (("backbone every epoch", False), ("--cache-features", True)):
            t = time.perf_counter()
            result = train("classify", data=str(data), out=str(Path(tmp) / f"run{int(cache)}"), backbone=args.backbone,
                           pretrained=False, mode="frozen", augment="none", cache_features=cache,
                           image_size=args.image_size, epochs=args.epochs, quiet=True)
            rows.append((name, time.perf_counter() - t, result.best["val_accuracy"]))
    print(f"\nfrozen {args.backbone} at {args.image_size}px, {args.images} images, {args.epochs} epochs, on {device}")
    print(f"{'configuration':<24} {'seconds':>8} {'speed-up':>9} {'val acc':>8}")
    for name, seconds, acc in rows:
        print(f"{name:<24} {seconds:>8.1f} {rows[0][1] / seconds:>8.2f}x {acc:>8.3f}")


if __name__ == "__main__":
    main()
