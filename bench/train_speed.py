"""Training throughput of the real trainer under its speed settings, against fp32 in the same run.

    python bench/train_speed.py                     # on a GPU: resnet18 at 224 px
    python bench/train_speed.py --image-size 64 --images 256   # a quick look on a CPU

Each configuration trains the same generated image folder for --epochs epochs; the table reports
images per second of the last epoch (train + validation, data loading included) and the ratio
to the first configuration (plain fp32)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from zoo_core import train  # noqa: E402


def make_folder(root: Path, images: int, size: int = 256) -> Path:
    rng = np.random.default_rng(0)
    for i in range(images):
        cls = f"class{i % 4}"
        (root / cls).mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        arr[..., i % 3] //= 2
        Image.fromarray(arr).save(root / cls / f"{i}.jpg", quality=90)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=-1)
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    configs = [("fp32", dict(amp=False, channels_last=False))]
    if cuda:
        configs += [("fp32 + channels_last", dict(amp=False, channels_last=True)),
                    ("bf16 AMP", dict(amp=True, amp_dtype="bfloat16", channels_last=False)),
                    ("bf16 AMP + channels_last (default)", dict(amp=True, amp_dtype="bfloat16", channels_last=True)),
                    ("fp16 AMP + scaler + channels_last", dict(amp=True, amp_dtype="float16", channels_last=True))]
    device = torch.cuda.get_device_name() if cuda else "CPU"
    with tempfile.TemporaryDirectory() as tmp:
        data = make_folder(Path(tmp) / "data", args.images)
        rows = []
        for name, settings in configs:
            result = train("classify", data=str(data), out=str(Path(tmp) / name.replace(" ", "_")),
                           backbone=args.backbone, pretrained=False, mode="finetune", image_size=args.image_size,
                           batch_size=args.batch_size, epochs=args.epochs, workers=args.workers, quiet=True, **settings)
            last = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()][-1]
            rows.append((name, args.images / last["seconds"], last["val_loss"]))
    print(f"\ntraining throughput, {args.backbone} at {args.image_size}px, batch {args.batch_size}, "
          f"{args.images} images, on {device}")
    print(f"{'configuration':<38} {'img/s':>9} {'vs fp32':>8} {'val loss':>9}")
    for name, ips, loss in rows:
        print(f"{name:<38} {ips:>9.1f} {ips / rows[0][1]:>7.2f}x {loss:>9.4f}")


if __name__ == "__main__":
    main()
