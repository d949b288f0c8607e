"""Image-folder epoch throughput: the decoded-image cache (first against later epochs), zoo's loader
against a plain torchvision ImageFolder loader, and the JPEG decoders.

    python bench/image_folder.py                   # 400 real-photo JPEGs at 320 px, 3 epochs
    python bench/image_folder.py --images 800 --size 400 --epochs 3

The folder: crops of scikit-image's real photos (bench/transfer.py's generator), saved as JPEG.
Every loader runs the same training transform for a 224 px model (random resized crop, scale 0.25-1,
horizontal flip, to float, ImageNet normalisation), batch 32, in the main process (workers 0), so
the numbers compare decoding and augmentation per core, not process counts.

Tables: (1) decoders, images per second over every file, and whether each gives PIL's pixels;
(2) epochs: img/s of each epoch, and each against the plain ImageFolder loader's same epoch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import make_photo_folder  # noqa: E402


def decoders(files: list[Path]) -> list[tuple[str, float, str]]:
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

    from zoo_core.data.decoded import decode
    from zoo_core.data.images import load_image

    warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec
    ways = {
        "PIL (zoo's load_image)": lambda f: np.asarray(load_image(f, 3)),
        "torchvision decode_jpeg": lambda f: decode_jpeg(read_file(str(f)), mode=ImageReadMode.RGB).permute(1, 2, 0).numpy(),
        "torchvision decode_image": lambda f: decode_image(read_file(str(f)), mode=ImageReadMode.RGB).permute(1, 2, 0).numpy(),
        "zoo_core.data.decoded.decode (what the cache uses)": lambda f: decode(f, 3),
    }
    reference = [ways["PIL (zoo's load_image)"](f) for f in files]
    rows = []
    for name, fn in ways.items():
        best = float("inf")
        for _ in range(2):  # the better of two passes: the files are in the page cache for both
            t = time.perf_counter()
            out = [fn(f) for f in files]
            best = min(best, time.perf_counter() - t)
        same = sum(np.array_equal(a, b) for a, b in zip(out, reference))
        rows.append((name, len(files) / best, f"{same}/{len(files)} identical to PIL"))
    return rows


def plain_imagefolder(root: Path, batch_size: int):
    from torchvision import datasets
    from torchvision import transforms as T

    tf = T.Compose([T.RandomResizedCrop(224, scale=(0.25, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    return torch.utils.data.DataLoader(datasets.ImageFolder(root, tf), batch_size=batch_size, shuffle=True, num_workers=0)


def zoo_loader(root: Path, batch_size: int, image_cache: str):
    """zoo's own path: the image-folder dataset, the classify task's transforms, SampleDataset (+ cache)."""
    from zoo_core.contract.components import DataConfig
    from zoo_core.registry.plugins import get_zoo
    from zoo_core.base.settings import SETTINGS
    from zoo_core.training.data_plan import load_data

    zoo = get_zoo()
    task = zoo.tasks.create("classify")
    cfg = {s.name: s.default for s in SETTINGS}
    cfg.update(dataset="image-folder", data=str(root), dataset_options={}, val_fraction=0.01, image_cache=image_cache)
    data = load_data(zoo, task, cfg, DataConfig(input_size=(3, 224, 224)), lambda m: None)
    return torch.utils.data.DataLoader(data.train, batch_size=batch_size, shuffle=True, num_workers=0,
                                       collate_fn=task.collate)


def epochs(loader, n: int) -> list[float]:
    rates = []
    for _ in range(n):
        t = time.perf_counter()
        images = sum(len(b) if not isinstance(b, (list, tuple)) else len(b[0]) for b in loader)
        rates.append(images / (time.perf_counter() - t))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--size", type=int, default=320, help="side of the stored JPEGs")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (resizing runs in torch)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ZOO_CACHE"] = str(Path(tmp) / "zoo-cache")
        root = make_photo_folder(Path(tmp) / "photos", max(2, args.images // 8), size=args.size) / "train"
        files = sorted(root.rglob("*.jpg"))
        print(f"{len(files)} JPEGs of {args.size} px in {root}, {args.threads} torch thread(s)", flush=True)

        rows = decoders(files)
        print("\ndecoding every file once (RGB uint8), best of two passes")
        print("| decoder | img/s | vs PIL | pixels |\n|---|---|---|---|")
        for name, rate, same in rows:
            print(f"| {name} | {rate:.0f} | {rate / rows[0][1]:.2f}x | {same} |")

        runs = [("torchvision ImageFolder (PIL, every epoch)", plain_imagefolder(root, args.batch_size)),
                ("zoo loader, image_cache off", zoo_loader(root, args.batch_size, "off")),
                ("zoo loader, decoded-image cache (memory)", zoo_loader(root, args.batch_size, "auto")),
                ("zoo loader, decoded-image cache (disk)", zoo_loader(root, args.batch_size, "disk"))]
        results = [(name, epochs(loader, args.epochs)) for name, loader in runs]
    base = results[0][1]
    print(f"\ntraining-transform epochs (224 px random resized crop + flip), batch {args.batch_size}, workers 0")
    head = " | ".join(f"epoch {i + 1} img/s | vs ImageFolder" for i in range(args.epochs))
    print(f"| loader | {head} |\n|---|" + "---|---|" * args.epochs)
    for name, rates in results:
        cells = " | ".join(f"{r:.0f} | {r / b:.2f}x" for r, b in zip(rates, base))
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
