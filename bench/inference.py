"""Inference speed on the CPU: PyTorch eager vs TorchScript vs ONNX Runtime vs ONNX Runtime int8, and zoo's
own predict path (decoding and preprocessing included) with --runtime torch and --runtime onnx.

    python bench/inference.py [--models resnet18 efficientnet_lite0] [--seconds 2] [--rounds 5]

Each model gets a 1000-class linear head and classify's deployment wrapper (softmax), so every engine runs
the same network zoo exports. Batch-1 latency (median ms) and batch-32 throughput (images/s) at 224x224.
The engines are timed in turns, round after round, and each engine's median over the rounds is kept: on a
shared machine the load drifts, and interleaving makes the ratios to eager fair even when the absolute
numbers are not. resnet18 has random weights (the Hub is unreachable; speed does not depend on them),
efficientnet_lite0 its real ImageNet weights from its plugin.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from zoo_core import Predictor, get_zoo
from zoo_core.prediction.export import export, onnx_session, run_onnx
from zoo_core.model.model import ZooModel

warnings.filterwarnings("ignore")


def build(name: str, runtime: str = "torch") -> Predictor:
    zoo = get_zoo()
    backbone = zoo.backbones.create(name, pretrained=name == "efficientnet_lite0", image_size=224)
    head = backbone.pretrained_head.module if backbone.pretrained_head else nn.Linear(backbone.num_features, 1000)
    task = zoo.tasks.create("classify")
    info = {"classes": [f"class {i}" for i in range(1000)], "num_outputs": 1000}
    return Predictor(ZooModel(backbone, head).eval(), task, info, backbone.data_config, device="cpu", runtime=runtime)


def photos(folder: Path, n: int) -> list[Path]:
    """n real JPEG photos (scikit-image's cat and coffee, 451x300 and 600x400) to decode and resize."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    sources = [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())]
    paths = []
    for i in range(n):
        path = folder / f"{i}.jpg"
        sources[i % 2].save(path, quality=90)
        paths.append(path)
    return paths


def timed(fn, seconds: float) -> list[float]:
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "efficientnet_lite0"])
    parser.add_argument("--seconds", type=float, default=1.5, help="per engine, per round, per batch size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=32, help="photos for the predict-path rows")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    os.environ.setdefault("ZOO_CACHE", str(tmp / "cache"))
    files = photos(tmp / "photos", args.images)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)

    rows = []
    for name in args.models:
        predictor = build(name)
        deployed, _ = predictor.task.deploy(predictor.model, predictor.info)
        deployed.eval()
        onnx_path, _ = export(predictor, "onnx", tmp / f"{name}.onnx")
        int8_path, int8_facts = export(predictor, "onnx-int8", tmp / f"{name}.int8.onnx")
        ts_path, _ = export(predictor, "torchscript", tmp / f"{name}.pt")
        scripted = torch.jit.load(str(ts_path), map_location="cpu")
        fp32, int8 = onnx_session(onnx_path), onnx_session(int8_path)
        onnx_predictor = build(name, runtime="onnx")
        x1, x32 = torch.randn(1, 3, 224, 224), torch.randn(32, 3, 224, 224)

        def eager(x):
            with torch.inference_mode():
                deployed(x)

        def script(x):
            with torch.inference_mode():
                scripted(x)

        engines = {"PyTorch eager": eager, "TorchScript": script,
                   "ONNX Runtime": lambda x: run_onnx(fp32, x), "ONNX Runtime int8 (static QDQ)": lambda x: run_onnx(int8, x)}
        paths = {"zoo predict --runtime torch": predictor, "zoo predict --runtime onnx": onnx_predictor}
        latency = {k: [] for k in [*engines, *paths]}
        throughput = {k: [] for k in engines}
        for r in range(args.rounds):
            for label, fn in engines.items():
                latency[label].append(statistics.median(timed(lambda: fn(x1), args.seconds)) * 1000)
                throughput[label].append(32 / statistics.median(timed(lambda: fn(x32), args.seconds)))
            for label, p in paths.items():  # decode + fit + normalise + model, batch 1, as `zoo predict` runs
                t = time.perf_counter()
                n = sum(1 for _ in p.predict_stream(files, batch_size=1))
                latency[label].append((time.perf_counter() - t) / n * 1000)
            print(f"{name}: round {r + 1}/{args.rounds} done", flush=True)
        lat = {k: statistics.median(v) for k, v in latency.items()}
        thr = {k: statistics.median(v) for k, v in throughput.items()}
        for label in [*engines, *paths]:
            base = lat["PyTorch eager"] if label in engines else lat["zoo predict --runtime torch"]
            rows.append((name, label, lat[label], base / lat[label], thr.get(label), thr.get(label) and thr[label] / thr["PyTorch eager"]))
        size = (int8_facts["bytes"], int8_facts["fp32_bytes"])
        print(f"{name}: onnx {size[1] / 1e6:.1f} MB, int8 {size[0] / 1e6:.1f} MB", flush=True)

    print(f"\nload average {os.getloadavg()[0]:.1f} at the end (2-core VM, shared: ratios are within one run)\n")
    print("| model | engine | batch-1 latency (ms) | vs eager | batch-32 throughput (img/s) | vs eager |")
    print("|---|---|---|---|---|---|")
    for name, label, ms, ratio, ips, iratio in rows:
        vs = "vs zoo predict --runtime torch" if label.startswith("zoo") else ""
        print(f"| {name} | {label} | {ms:.1f} | {ratio:.2f}x{(' ' + vs) if vs else ''} | "
              f"{f'{ips:.0f}' if ips else '—'} | {f'{iratio:.2f}x' if iratio else '—'} |")


if __name__ == "__main__":
    main()
