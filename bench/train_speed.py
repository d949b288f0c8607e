"""Training throughput under zoo's speed settings, against plain fp32 in the same run.

    python bench/train_speed.py                     # on a GPU: resnet18 at 224 px
    python bench/train_speed.py --image-size 64 --images 256   # a quick look on a CPU

Two tables, each with the ratio to the first configuration (plain fp32):
- model step: forward, backward and optimizer step of zoo's model on a batch already on the device,
  timed the way the trainer runs it (autocast, grad scaler, channels_last): what the settings buy;
- end to end: the real trainer (`zoo_core.train`) on a generated folder of JPEGs, images per second of
  the last epoch, data loading and validation included: what a user gets."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from zoo_core import train  # noqa: E402
from zoo_core.base.config import DEFAULTS  # noqa: E402
from zoo_core.base.device import Machine  # noqa: E402
from zoo_core.model.model import ZooModel  # noqa: E402
from zoo_core.registry.plugins import get_zoo  # noqa: E402
from zoo_core.training.state import make_optimizer  # noqa: E402


def step_throughput(backbone: str, size: int, batch: int, amp: bool, channels_last: bool, amp_dtype: str = "auto",
                    steps: int = 20) -> float:
    """Images per second of training steps on a fixed batch that is already on the device."""
    machine = Machine.from_config({**DEFAULTS, "amp": amp, "amp_dtype": amp_dtype, "channels_last": channels_last})
    device = machine.device
    net = get_zoo().backbones.create(backbone, pretrained=False, image_size=size)
    model = machine.prepare(ZooModel(net, nn.Linear(net.num_features, 4)))
    x = torch.randn(batch, *net.data_config.input_size, device=device)
    y = torch.randint(0, 4, (batch,), device=device)
    if machine.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    scaler = machine.grad_scaler()
    optimizer = make_optimizer([{"params": list(model.parameters())}], DEFAULTS)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        with machine.autocast():
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


def make_folder(root: Path, images: int, size: int = 256) -> Path:
    rng = np.random.default_rng(0)
    for i in range(images):
        cls = f"class{i % 4}"
        (root / cls).mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        arr = (arr * (0.4 + 0.2 * (i % 4))).astype(np.uint8)  # each class its own brightness: learnable
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
    steps = [(name, step_throughput(args.backbone, args.image_size, args.batch_size, **settings)) for name, settings in configs]
    print(f"\nmodel step only (batch on the device), {args.backbone} at {args.image_size}px, batch {args.batch_size}, on {device}")
    print(f"{'configuration':<38} {'img/s':>9} {'vs fp32':>8}")
    for name, ips in steps:
        print(f"{name:<38} {ips:>9.1f} {ips / steps[0][1]:>7.2f}x")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_folder(Path(tmp) / "data", args.images)
        rows = []
        for name, settings in configs:
            result = train("classify", data=str(data), out=str(Path(tmp) / name.replace(" ", "_")),
                           backbone=args.backbone, pretrained=False, mode="finetune", image_size=args.image_size,
                           batch_size=args.batch_size, epochs=args.epochs, workers=args.workers, quiet=True, **settings)
            last = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()][-1]
            rows.append((name, args.images / last["seconds"], last["val_loss"]))
    print(f"\nend to end (zoo_core.train on JPEGs), {args.backbone} at {args.image_size}px, batch {args.batch_size}, "
          f"{args.images} images, on {device}")
    print(f"{'configuration':<38} {'img/s':>9} {'vs fp32':>8} {'val loss':>9}")
    for name, ips, loss in rows:
        print(f"{name:<38} {ips:>9.1f} {ips / rows[0][1]:>7.2f}x {loss:>9.4f}")


if __name__ == "__main__":
    main()
