"""What int8 and pruning cost and buy on a real-weights model: EfficientNet-Lite0 with its ImageNet weights
(installed offline by zoo-efficientnet-lite), trained by `zoo train classify` on real photos, then
exported to ONNX (float32, int8 static, int8 dynamic) and pruned by `zoo compress` (weights 50% / 80%,
channels 30% / 50%, each fine-tuned by the normal trainer). One table, every row against the float32
ONNX file of the same run, measured in the same process.

    pip install 'zoo-core[onnx,prune]' scikit-image
    python bench/compress.py                    # 10 minutes on the 2-core VM shared with 3 jobs (idle: fewer)
    python bench/compress.py --per-class 15 --finetune-epochs 1 --rounds 2   # a quicker look

The data: crops of 12 real photos that ship with scikit-image and scikit-learn (a cat, a coffee cup, an
astronaut, a rocket, bricks, grass, gravel, the Hubble deep field, a stained tissue, a retina, a Chinese
temple, a flower); the class of a crop is the photo it comes from. Random crops of 1-8% of the photo's
area, so a class is a kind of texture and colour, not one picture (a patch of sky, of skin, of wall). Written as an image folder (DIR/<class>/*.jpg) and trained with `--data DIR`, as a user
trains on their own photos: the backbone frozen, its features cached, a linear head on top (half the
crops held out for validation).

Latency: batch 1 at the model's input size with ONNX Runtime, every file timed in turns over `--rounds`
rounds and each file's median kept (on a shared machine the load drifts; interleaving keeps the ratios
fair). Size: the .onnx file, and gzipped (zeros from magnitude pruning compress; they do not run faster).
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

warnings.filterwarnings("ignore")

# scikit-image's colour photos that ship with it (no download)
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "brick", "grass", "gravel", "hubble_deep_field",
          "immunohistochemistry", "retina")


def write_photo_crops(root: Path, per_class: int, seed: int = 0, size: int = 256) -> Path:
    """root/<photo>/<i>.jpg: `per_class` random crops (1-8% of the area, aspect 3:4..4:3) of each photo."""
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    sources = {name: np.asarray(getattr(skdata, name)()) for name in PHOTOS}
    sample = load_sample_images()
    sources.update({Path(f).stem.replace(".jpg", ""): img for f, img in zip(sample.filenames, sample.images)})
    rng = np.random.default_rng(seed)
    for name, array in sources.items():
        image = Image.fromarray(array).convert("RGB")
        w, h = image.size
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            area = rng.uniform(0.01, 0.08) * w * h
            aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            cw, ch = min(w, int(round((area * aspect) ** 0.5))), min(h, int(round((area / aspect) ** 0.5)))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            image.crop((x, y, x + cw, y + ch)).resize((size, size), Image.BICUBIC).save(root / name / f"{i:03d}.jpg", quality=90)
    return root


def timed_ms(session, x: torch.Tensor, seconds: float) -> float:
    from zoo_core.prediction.export import run_onnx

    run_onnx(session, x)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        run_onnx(session, x)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def gzipped_bytes(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--per-class", type=int, default=30, help="crops per photo (12 photos; half of them for validation)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the linear head on cached features")
    parser.add_argument("--finetune-epochs", type=int, default=1, help="fine-tuning epochs after each pruning")
    parser.add_argument("--weights", nargs="*", type=float, default=[0.5, 0.8], help="magnitude pruning sparsities")
    parser.add_argument("--channels", nargs="*", type=float, default=[0.3, 0.5], help="channel pruning shares")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="per file, per round")
    parser.add_argument("--work", type=Path, help="keep the data and runs here (default: a temporary folder)")
    args = parser.parse_args()

    import zoo_core
    from zoo_core import load_run
    from zoo_core.tools.compress import compress, parameter_count
    from zoo_core.prediction.export import export, onnx_session

    work = args.work or Path(tempfile.mkdtemp(prefix="zoo-bench-compress-"))
    os.environ.setdefault("ZOO_CACHE", str(work / "cache"))
    start = time.time()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f} at start; work in {work}", flush=True)
    data = work / "photo-crops"
    if not data.is_dir():
        write_photo_crops(data, args.per_class)
    run_dir = work / "runs" / "float"
    # half the crops for validation: accuracy in steps of 1/(6 x per-class) (0.6 points at 30 per class),
    # fine enough for the bar (int8 loses at most 1 point). Batch 16: the fine-tuning after pruning
    # (the run's own recipe) gets enough steps to repair the network.
    zoo_core.train("classify", data=str(data), backbone=args.backbone, pretrained=True, mode="frozen",
                   cache_features=True, epochs=args.epochs, lr=1e-2, batch_size=16, augment="none", seed=0,
                   val_fraction=0.5, out=str(run_dir), quiet=True)
    run = load_run(run_dir, device="cpu")
    base_scores, _ = run.evaluate(workers=0)
    print(f"trained {args.backbone} on {base_scores['images']} validation images: accuracy "
          f"{base_scores['accuracy']:.4f} ({time.time() - start:.0f} s)", flush=True)

    rows = []  # (label, params, onnx path, accuracy before fine-tuning or None, accuracy)
    files = work / "files"
    fp32, _ = export(run, "onnx", files / "float32.onnx")
    params = parameter_count(run.model)
    fp32_accuracy = zoo_core.load_exported(fp32).evaluate(workers=0)[0]["accuracy"]
    rows.append(("float32 ONNX (the baseline)", params, fp32, None, fp32_accuracy))
    for mode in ("static", "dynamic"):
        path, facts = export(run, "onnx-int8", files / f"int8-{mode}.onnx", mode=mode)
        calibration = min(256, run.config["data"]["train"])
        label = f"int8 static (QDQ, per-channel, {calibration} training images)" if mode == "static" else "int8 dynamic"
        rows.append((label, params, path, None, facts["scores"]["accuracy"]))
        print(f"{label}: {facts['scores']['accuracy']:.4f} ({time.time() - start:.0f} s)", flush=True)
    for prune, shares in (("weights", args.weights), ("channels", args.channels)):
        for share in shares:
            out = work / "runs" / f"{prune}-{share:g}"
            facts = compress(run_dir, share, out, epochs=args.finetune_epochs, prune=prune)
            pruned = load_run(out, device="cpu")
            path, _ = export(pruned, "onnx", files / f"{prune}-{share:g}.onnx")
            label = f"{prune} {share:.0%} + {args.finetune_epochs} epoch(s) fine-tuning"
            rows.append((label, parameter_count(pruned.model) if prune == "channels" else
                         parameter_count(pruned.model) - facts["zero_weights"], path,
                         facts["scores"]["pruned"]["accuracy"], facts["scores"]["fine_tuned"]["accuracy"]))
            print(f"{label}: {facts['scores']['pruned']['accuracy']:.4f} pruned, "
                  f"{facts['scores']['fine_tuned']['accuracy']:.4f} fine-tuned ({time.time() - start:.0f} s)", flush=True)

    x = torch.randn(1, *run.data_config.input_size, generator=torch.Generator().manual_seed(0))
    sessions = {label: onnx_session(path) for label, _, path, _, _ in rows}
    latency: dict[str, list[float]] = {label: [] for label in sessions}
    for _ in range(args.rounds):
        for label, session in sessions.items():
            latency[label].append(timed_ms(session, x, args.seconds))
    ms = {label: statistics.median(v) for label, v in latency.items()}

    base_label, base_params, base_path, _, base_acc = rows[0]
    base_bytes, base_gz, base_ms = base_path.stat().st_size, gzipped_bytes(base_path), ms[base_label]
    print(f"\n{args.backbone}, ImageNet weights, {base_scores['images']} validation crops of real photos; "
          f"{os.cpu_count()}-CPU machine, load average {os.getloadavg()[0]:.1f} at the end; {time.time() - start:.0f} s in all\n")
    print("| model | non-zero parameters | .onnx MB | gzipped MB | batch-1 latency (ms) | accuracy after pruning | "
          "validation accuracy | change |")
    print("|---|---|---|---|---|---|---|---|")
    for label, n, path, before, acc in rows:
        size, gz, t = path.stat().st_size, gzipped_bytes(path), ms[label]
        print(f"| {label} | {n / 1e6:.2f}M ({n / base_params:.2f}x) | {size / 1e6:.1f} ({size / base_bytes:.2f}x) | "
              f"{gz / 1e6:.1f} ({gz / base_gz:.2f}x) | {t:.2f} ({base_ms / t:.2f}x faster) | "
              f"{'—' if before is None else f'{100 * before:.1f}%'} | {100 * acc:.1f}% | "
              f"{'—' if label == base_label else f'{100 * (acc - base_acc):+.1f} points'} |")


if __name__ == "__main__":
    main()
