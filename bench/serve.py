"""zoo serve under load: N concurrent clients for T seconds, with and without request batching.

    python bench/serve.py                         # trains a small resnet18 run (random weights, 128 px) first
    python bench/serve.py --run runs/classify-001 --clients 1,8,16 --seconds 10

Each configuration starts its own `zoo serve RUN --port 0` (a subprocess, like a user would), warms it
up with one request, then N client threads (one keep-alive connection each) POST the same 320x240 JPEG
as fast as answers come for T seconds. The baseline is --max-batch 1 (every request predicted alone)
measured in the same run; the table gives throughput, latency percentiles, errors, the mean batch the
server formed and the server's resident memory (RSS) after warm-up and at the end."""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import make_folder  # noqa: E402
from zoo_core.serve.client import multipart, request  # noqa: E402

MODES = {"no batching (--max-batch 1)": ["--max-batch", "1", "--batch-wait-ms", "0"],
         "batching (--max-batch 16, 5 ms)": ["--max-batch", "16", "--batch-wait-ms", "5"]}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(run: str, flags: list[str], threads: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "zoo_core.cli", "serve", run, "--port", "0", "--device", "cpu", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)})
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise SystemExit(f"zoo serve did not start: {line}")
    return proc, line.split(" on ")[1].split()[0]


def load(url: str, body: bytes, content_type: str, clients: int, seconds: float) -> tuple[list[float], int, float]:
    """Latencies (s) of the answered requests, the error count, and the wall-clock time taken."""
    import http.client
    from urllib.parse import urlsplit

    host = urlsplit(url)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client():
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
        mine, bad = [], 0
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                answer = request(url + "/predict", "POST", body, {"Content-Type": content_type}, connection=conn)
                ok = answer.status == 200
            except Exception:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
            if ok:
                mine.append(time.perf_counter() - t)
            else:
                bad += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return latencies, errors[0], time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="A run directory or hf-hub:ID (default: train a small one first).")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--clients", default="1,8", help="Concurrent clients, comma-separated (one table row each).")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="The server's torch threads (OMP_NUM_THREADS). 1 by default: on a shared, oversubscribed "
                         "machine OpenMP's spinning threads make 2 threads ~10x slower than 1.")
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]

    buffer = io.BytesIO()
    Image.effect_noise((320, 240), 60).convert("RGB").save(buffer, format="JPEG", quality=90)
    body, content_type = multipart([("photo.jpg", buffer.getvalue())])

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            from zoo_core import train

            print(f"training a {args.backbone} run (random weights, {args.image_size} px, 1 epoch) to serve...", file=sys.stderr)
            data = make_folder(Path(tmp) / "data", 16, size=160)
            run = str(train("classify", data=str(data), out=str(Path(tmp) / "run"), backbone=args.backbone, pretrained=False,
                            image_size=args.image_size, epochs=1, batch_size=8, workers=0, quiet=True, device="cpu").run_dir)
        rows = []
        for n in clients:
            for mode, flags in MODES.items():
                proc, url = start_server(run, flags, args.torch_threads)
                try:
                    request(url + "/predict", "POST", body, {"Content-Type": content_type})  # warm-up
                    rss_start = rss_mb(proc.pid)
                    latencies, errors, wall = load(url, body, content_type, n, args.seconds)
                    rss_end = rss_mb(proc.pid)
                    mean_batch = request(url + "/model").json()["batching"]["mean_batch"]
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                rows.append({"mode": mode, "clients": n, "rps": len(latencies) / wall, "p50": 1000 * percentile(latencies, 50),
                             "p99": 1000 * percentile(latencies, 99), "errors": errors, "batch": mean_batch,
                             "rss0": rss_start, "rss1": rss_end})
                print(f"  {mode}, {n} clients: {rows[-1]['rps']:.1f} req/s", file=sys.stderr)

    import torch

    print(f"\nzoo serve, classify {args.backbone} at {args.image_size} px, one 320x240 JPEG per request, "
          f"{args.seconds:g} s per row; CPU, {os.cpu_count()} cores, server torch threads {args.torch_threads}, "
          f"torch {torch.__version__}\n")
    print("| batching | clients | req/s | vs no batching | p50 ms | p99 ms | errors | mean batch | RSS start MB | RSS end MB |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    base = {r["clients"]: r["rps"] for r in rows if r["mode"].startswith("no batching")}
    for r in rows:
        print(f"| {r['mode']} | {r['clients']} | {r['rps']:.1f} | {r['rps'] / base[r['clients']]:.2f}x | {r['p50']:.0f} | "
              f"{r['p99']:.0f} | {r['errors']} | {r['batch']:.1f} | {r['rss0']:.0f} | {r['rss1']:.0f} |")


if __name__ == "__main__":
    main()
