"""The trainer: one function, read top to bottom.

    config -> data -> backbone + head -> optimizer + schedule -> epochs (train, validate, checkpoint) -> plots

Transfer modes: 'frozen' trains the head only; 'finetune' trains everything (the backbone at
lr * backbone_lr_mult); 'staged' trains the head with the backbone frozen for `freeze_epochs`,
then unfreezes it at the lower learning rate — unfreezing at once would let the random head's
large gradients wreck the pretrained filters.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import artifacts
from .backbones import count_parameters, load_weights_into, read_state_dict
from .components import DataSplits, Task
from .config import load_toml, merge, normalise
from .errors import ZooError
from .model import ZooModel, build_model, model_config
from .plugins import get_zoo

RUN_FORMAT = "zoo-run/1"


@dataclass
class TrainResult:
    run_dir: Path
    best: dict[str, Any]  # {"epoch": ..., "<metric>": ...}
    status: str  # completed | stopped early | interrupted
    seconds: float


class Interrupted(Exception):
    """Ctrl-C during training; the run directory holds a resumable checkpoint."""

    def __init__(self, run_dir: Path):
        super().__init__(f"interrupted; resume with: zoo train --resume {run_dir}")
        self.run_dir = run_dir


# ------------------------------------------------------------------------------------------ pieces

def pick_device(name: str) -> torch.device:
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ZooError(f"--device '{name}': use auto, cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ZooError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ZooError(f"--device {name}: MPS is not available on this machine; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _amp_dtype(name: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def to_device(obj: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move a batch (tensors nested in lists/tuples/dicts: labels, boxes, masks...) to `device`."""
    if isinstance(obj, torch.Tensor):
        if channels_last and obj.dim() == 4:
            return obj.to(device, non_blocking=True, memory_format=torch.channels_last)
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def to_float32(obj: Any) -> Any:
    """Outputs for metrics: detached from the graph, and float32 again if computed under autocast."""
    if isinstance(obj, torch.Tensor):
        obj = obj.detach()
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: to_float32(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_float32(v) for v in obj)
    return obj


def make_optimizer(model: ZooModel, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """Two parameter groups: the head at lr, the backbone at lr * backbone_lr_mult.
    Frozen parameters get no gradient, so the optimizer leaves them alone until they are unfrozen."""
    groups = [
        {"params": list(model.head.parameters()), "lr": cfg["lr"], "name": "head"},
        {"params": list(model.backbone.parameters()), "lr": cfg["lr"] * cfg["backbone_lr_mult"], "name": "backbone"},
    ]
    groups = [g for g in groups if g["params"]]
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"], nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"])


def make_schedule(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], steps_per_epoch: int):
    """A per-step learning-rate schedule over the whole run, with optional linear warm-up."""
    total = max(1, cfg["epochs"] * steps_per_epoch)
    if cfg["schedule"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total + 1)
    warmup = int(cfg["warmup_epochs"] * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg["schedule"] == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if cfg["schedule"] == "step":
            return cfg["gamma"] ** ((step // steps_per_epoch) // cfg["step_size"])
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def next_run_dir(task: str, root: Path = Path("runs")) -> Path:
    """runs/<task>-001, -002, ...: short to type, sorted by age."""
    existing = root.iterdir() if root.is_dir() else []
    taken = [int(m.group(1)) for p in existing if (m := re.fullmatch(rf"{re.escape(task)}-(\d+)", p.name))]
    return root / f"{task}-{max(taken, default=0) + 1:03d}"


class RunLog:
    """Lines to stderr (above the progress bar) and to the run's train.log."""

    def __init__(self, path: Path | None = None, quiet: bool = False):
        self.path, self.quiet = path, quiet
        self._buffer: list[str] = []

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            from tqdm import tqdm
            tqdm.write(msg, file=sys.stderr)
        if self.path is None:
            self._buffer.append(msg)
        else:
            with open(self.path, "a") as f:
                f.write(msg + "\n")

    def attach(self, path: Path) -> None:
        self.path = path
        with open(path, "a") as f:
            f.writelines(m + "\n" for m in self._buffer)
        self._buffer = []


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """metrics.jsonl gets one line per epoch; metrics.csv is rewritten from it (columns can grow)."""
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    rows = read_metrics(run_dir)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    artifacts.write_text(run_dir / "metrics.csv", buf.getvalue())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _fmt(record: dict[str, Any]) -> str:
    parts = []
    for k, v in record.items():
        if k in ("epoch", "lr", "seconds", "backbone_frozen") or not isinstance(v, (int, float)):
            continue
        parts.append(f"{k} {v:.4f}")
    return "  ".join(parts)


def _resolve(task_name: str, task: Task, zoo, file_layer: dict, flag_layer: dict) -> dict[str, Any]:
    """Layer the configuration; the dataset (hence its recipe) is known only once data is known."""
    # The task's "dataset" is its embedded default, used only when no --data is given.
    task_layer = normalise({k: v for k, v in task.defaults.items() if k != "dataset"}, f"task '{task_name}' defaults")
    pre = merge(task_layer, file_layer, flag_layer)
    dataset = pre["dataset"] or infer_dataset(task, zoo, pre["data"])
    component = zoo.datasets.get(dataset)
    recipe = normalise(component.extra.get("recipe", {}), f"dataset '{dataset}' recipe")
    chosen = flag_layer.get("backbone") or file_layer.get("backbone")
    if "backbone" in recipe and chosen and chosen != recipe["backbone"]:
        # A recipe is tuned for its own backbone (digits: a small CNN from scratch, lr 3e-3, no pretraining);
        # with another backbone only its facts about the data still hold, the task's defaults do the rest.
        recipe = {k: v for k, v in recipe.items() if k in DATA_SETTINGS}
    cfg = merge(task_layer, recipe, file_layer, flag_layer)
    cfg["dataset"] = dataset
    return cfg


# Recipe settings about the data rather than the model (digits must not be flipped, whatever the backbone).
DATA_SETTINGS = {"augment", "val_fraction", "dataset_options"}


def infer_dataset(task: Task, zoo, data: str | None) -> str:
    if data is None:
        if task.defaults.get("dataset"):
            return task.defaults["dataset"]
        raise ZooError(f"task '{task.name}' has no embedded dataset: give --data PATH")
    if not Path(data).exists():
        raise ZooError(f"--data {data}: no such file or directory")
    for name in task.formats:
        matches = zoo.datasets.get(name).extra.get("matches")
        if matches and matches(data):
            return name
    raise ZooError(f"--data {data}: not a format task '{task.name}' reads ({', '.join(task.formats)}); "
                   "pick one with --dataset NAME")


def build_data(zoo, cfg: dict[str, Any], data_config, log, reference_info=None):
    kwargs = dict(data_config=data_config, seed=cfg["seed"], val_fraction=cfg["val_fraction"],
                  augment=cfg["augment"], **cfg["dataset_options"])
    if reference_info is not None:
        kwargs["reference_info"] = reference_info
    data = zoo.datasets.create(cfg["dataset"], cfg["data"], **kwargs)
    if data.skipped:
        log(f"skipped {len(data.skipped)} unreadable file(s) (listed with reasons in the run's skipped.txt): "
            + ", ".join(Path(p).name for p, _ in data.skipped[:10]) + (" ..." if len(data.skipped) > 10 else ""))
    return data


def data_loader(dataset, cfg, device, data, shuffle: bool) -> torch.utils.data.DataLoader:
    workers = cfg["workers"]
    if workers < 0:  # JPEG decoding feeds a GPU only with several processes; on a CPU they compete with training
        workers = 0 if data.in_memory else max(1, min(8 if device.type == "cuda" else 4, (os.cpu_count() or 2) - 1))
    g = torch.Generator()
    g.manual_seed(cfg["seed"])
    return torch.utils.data.DataLoader(
        dataset, batch_size=cfg["batch_size"], shuffle=shuffle, num_workers=workers,
        collate_fn=data.collate, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        worker_init_fn=_seed_worker, generator=g,
        # A last batch of one breaks BatchNorm in training; dropping a few samples an epoch is harmless.
        drop_last=shuffle and len(dataset) > cfg["batch_size"])


# ---------------------------------------------------------------------------------------- the loop

def train(task_name: str, *, config: str | Path | None = None, resume: str | Path | None = None,
          quiet: bool = False, progress: bool = True, **settings: Any) -> TrainResult:
    """Train `task_name` (a registered task). `settings` are the same names as the CLI flags
    (epochs=5, backbone="resnet18", head_options={"dropout": 0.3}, ...). Returns where the run is."""
    t_start = time.time()
    zoo = get_zoo()
    log = RunLog(quiet=quiet)
    flag_layer = normalise({k: v for k, v in settings.items() if v is not None}, "flags")

    # --- configuration: fresh, or the saved one of the run to resume (flags may extend epochs)
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file():
            raise ZooError(f"--resume {run_dir}: not a zoo run directory (no config.json)")
        saved = json.loads((run_dir / "config.json").read_text())
        if not (run_dir / "last.state.pt").is_file():
            raise ZooError(f"--resume {run_dir}: no last checkpoint to resume from")
        task_name = saved["task"]
        cfg = merge(normalise(saved["train"], f"{run_dir}/config.json"), flag_layer)
    task: Task = zoo.tasks.create(task_name)
    if resume is None:
        file_layer = load_toml(config) if config else {}
        cfg = _resolve(task_name, task, zoo, file_layer, flag_layer)
        run_dir = Path(cfg["out"]) if cfg["out"] else next_run_dir(task_name)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ZooError(f"--out {run_dir}: directory exists and is not empty; pick another or resume it with --resume")

    if cfg["cache_features"]:
        if cfg["mode"] != "frozen":
            raise ZooError("--cache-features needs --mode frozen: features can be computed once only if the backbone never changes")
        cfg["augment"] = "none"  # each image's features are computed once, so there is no augmentation

    seed_everything(cfg["seed"])
    device = pick_device(cfg["device"])

    # --- model: backbone (pretrained, from a file, or random) + the task's head
    pretrained = cfg["pretrained"] and not cfg["weights"] and resume is None
    backbone = zoo.backbones.create(cfg["backbone"], pretrained=pretrained, image_size=cfg["image_size"],
                                    **cfg["backbone_options"])
    if cfg["weights"] and resume is None:
        loaded, expected = load_weights_into(backbone, read_state_dict(cfg["weights"]), cfg["weights"])
        log(f"loaded {loaded}/{expected} backbone tensors from {cfg['weights']}")
        backbone.pretrained_source = f"file:{cfg['weights']}"

    # --- data: the backbone's data config decides size and normalisation
    data = build_data(zoo, cfg, backbone.data_config, log)
    if len(data.train) == 0 or len(data.val) == 0:
        raise ZooError(f"{cfg['data'] or cfg['dataset']}: need images for both training and validation "
                       f"(got {len(data.train)} and {len(data.val)})")
    info = task.outputs_info(dict(data.info), cfg)
    head = zoo.heads.create(cfg["head"], backbone, info, **cfg["head_options"])
    model = ZooModel(backbone, head)
    if resume is not None:
        model.backbone.pretrained_source = saved["model"].get("pretrained_source", "none")
    loss_fn = zoo.losses.create(cfg["loss"], info, **cfg["loss_options"])
    train_metrics, val_metrics = task.metrics(info), task.metrics(info)
    primary, mode = task.primary_metric, task.primary_mode

    channels_last = cfg["channels_last"] and device.type == "cuda"
    model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)
    use_amp = cfg["amp"] and device.type == "cuda"
    amp_dtype = _amp_dtype(cfg["amp_dtype"]) if use_amp else torch.float16  # unused when AMP is off
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    # frozen/staged start with the backbone frozen; resuming picks the state back up below
    model.set_backbone_trainable(cfg["mode"] == "finetune")
    optimizer = make_optimizer(model, cfg)
    # What each step runs: the whole model, or with cached features only the head.
    forward: nn.Module = model
    train_set, val_set = data.train, data.val
    if cfg["cache_features"]:
        if model.wants_map:
            raise ZooError(f"--cache-features stores pooled features; head '{cfg['head']}' needs feature maps")
        train_set, val_set = (precompute_features(model.backbone, data_loader(d, cfg, device, data, shuffle=False),
                                                  device, use_amp, amp_dtype, channels_last) for d in (data.train, data.val))
        forward = model.head
        data = DataSplits(train_set, val_set, data.info, data.collate, in_memory=True, skipped=data.skipped,
                          description=data.description + ", backbone features cached")
    train_loader = data_loader(train_set, cfg, device, data, shuffle=True)
    val_loader = data_loader(val_set, cfg, device, data, shuffle=False)
    steps_per_epoch = math.ceil(len(train_loader) / cfg["accum_steps"])
    schedule = make_schedule(optimizer, cfg, steps_per_epoch)

    start_epoch, best, bad_epochs = 0, {}, 0
    if resume is not None:
        artifacts.load_weights(model, run_dir / "last.safetensors")
        state = artifacts.load_state(run_dir / "last.state.pt")
        start_epoch, best, bad_epochs = state["epoch"], json.loads(state["best"]), state["bad_epochs"]
        if cfg["mode"] == "staged" and start_epoch >= cfg["freeze_epochs"]:
            model.set_backbone_trainable(True)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        if start_epoch >= cfg["epochs"]:
            raise ZooError(f"--resume {run_dir}: already trained {start_epoch} epochs; pass --epochs N (N > {start_epoch}) to train longer")

    run_dir.mkdir(parents=True, exist_ok=True)
    log.attach(run_dir / "train.log")
    if data.skipped:
        artifacts.write_text(run_dir / "skipped.txt", "".join(f"{p}\t{r}\n" for p, r in data.skipped))
    total, trainable = count_parameters(model)
    log(f"zoo train {task_name}: {data.description or cfg['dataset']} — {len(data.train)} train / {len(data.val)} val")
    log(f"model: {cfg['backbone']} ({backbone.pretrained_source}) + {cfg['head']} head, {total:,} parameters, "
        f"{trainable:,} trainable; mode {cfg['mode']}; device {device}"
        + (f", AMP {str(amp_dtype).split('.')[-1]}" if use_amp else "") + f"; run dir {run_dir}")

    def save_config(status: str) -> None:
        artifacts.write_json(run_dir / "config.json", {
            "format": RUN_FORMAT, "task": task_name, "status": status, "best": best,
            "primary_metric": primary, "primary_mode": mode,
            "model": model_config(cfg, task_name, backbone, info),
            "train": dict(cfg),
            "data": {"dataset": cfg["dataset"], "source": cfg["data"], "train": len(data.train),
                     "val": len(data.val), "skipped": len(data.skipped)},
            "plugins": {p.name: p.version for p in zoo.plugins if not p.error},
        })

    def save_checkpoint(name: str, next_epoch: int) -> None:
        artifacts.save_weights(model, run_dir / f"{name}.safetensors", {"task": task_name, "epoch": str(next_epoch)})
        if name == "last":
            artifacts.save_state(run_dir / "last.state.pt", {
                "epoch": next_epoch, "best": json.dumps(best), "bad_epochs": bad_epochs,
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "scaler": scaler.state_dict()})

    save_config("running")
    from tqdm import tqdm

    bar = tqdm(total=(cfg["epochs"] - start_epoch) * len(train_loader), unit="batch",
               disable=None if progress and not quiet else True, dynamic_ncols=True, leave=False)
    epoch, status = start_epoch, "completed"
    try:
        for epoch in range(start_epoch, cfg["epochs"]):
            t_epoch = time.time()
            if cfg["mode"] == "staged" and epoch == cfg["freeze_epochs"]:
                model.set_backbone_trainable(True)
                log(f"epoch {epoch + 1}: backbone unfrozen (lr x{cfg['backbone_lr_mult']})")
            # Seeding per epoch (shuffle order, augmentation, dropout) lets a resumed run continue as the
            # uninterrupted one would.
            torch.manual_seed(cfg["seed"] * 1000 + epoch)
            train_loader.generator.manual_seed(cfg["seed"] * 1000 + epoch)

            # --- train
            model.train()
            train_metrics.reset()
            loss_sum, n_seen = 0.0, 0
            optimizer.zero_grad(set_to_none=True)
            for i, (x, y) in enumerate(train_loader):
                x, y = to_device(x, device, channels_last), to_device(y, device)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    out = forward(x)
                    loss = loss_fn(out, y)
                if not torch.isfinite(loss):
                    raise ZooError(f"loss became {loss.item()} at epoch {epoch + 1}; lower --lr or use --clip-grad 1.0")
                scaler.scale(loss / cfg["accum_steps"]).backward()
                if (i + 1) % cfg["accum_steps"] == 0 or i + 1 == len(train_loader):
                    if cfg["clip_grad"] > 0:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(model.parameters(), cfg["clip_grad"])
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    schedule.step()
                batch = x.shape[0]
                loss_sum += loss.item() * batch
                n_seen += batch
                train_metrics.update(to_float32(out), y)
                bar.update(1)
                bar.set_postfix_str(f"epoch {epoch + 1}/{cfg['epochs']} loss {loss_sum / n_seen:.4f}")

            # --- validate
            val_loss, val_scores = evaluate(forward, val_loader, loss_fn, val_metrics, device, use_amp, amp_dtype, channels_last)
            record = {"epoch": epoch + 1, "train_loss": loss_sum / max(1, n_seen),
                      **{f"train_{k}": v for k, v in train_metrics.compute().items()},
                      "val_loss": val_loss, **{f"val_{k}": v for k, v in val_scores.items()},
                      "lr": optimizer.param_groups[0]["lr"], "backbone_frozen": model.backbone_frozen,
                      "seconds": round(time.time() - t_epoch, 3)}

            # --- checkpoint: best by the task's primary metric, last always
            value = record[primary]
            improved = not best or (value > best[primary] if mode == "max" else value < best[primary])
            if improved:
                best, bad_epochs = {"epoch": epoch + 1, primary: value}, 0
                save_checkpoint("best", epoch + 1)
                val_metrics.report(run_dir)
            else:
                bad_epochs += 1
            save_checkpoint("last", epoch + 1)
            append_metrics(run_dir, record)
            save_config("running")
            elapsed = time.time() - t_start
            left = elapsed / (epoch + 1 - start_epoch) * (cfg["epochs"] - epoch - 1)
            log(f"epoch {epoch + 1}/{cfg['epochs']}  {_fmt(record)}  {record['seconds']:.1f}s"
                f" (~{left:.0f}s left){'  *' if improved else ''}")
            if cfg["patience"] and bad_epochs >= cfg["patience"]:
                status = "stopped early"
                log(f"early stop: {primary} has not improved for {bad_epochs} epochs")
                break
    except KeyboardInterrupt:
        bar.close()
        # The end of the last finished epoch is already saved, and resuming from it repeats the run exactly.
        # Only when no epoch has finished yet are the weights saved as they are, to restart epoch 1 from.
        if not (run_dir / "last.state.pt").exists():
            save_checkpoint("last", 0)
        save_config("interrupted")
        log(f"interrupted in epoch {epoch + 1}; resume with: zoo train --resume {run_dir}")
        raise Interrupted(run_dir) from None
    finally:
        bar.close()
        _plot_curves(run_dir)

    save_config(status)
    return TrainResult(run_dir, best, status, time.time() - t_start)


@torch.no_grad()
def evaluate(model, loader, loss_fn, metrics, device, use_amp=False, amp_dtype=torch.float16,
             channels_last=False) -> tuple[float, dict[str, float]]:
    model.eval()
    metrics.reset()
    loss_sum, n = 0.0, 0
    for x, y in loader:
        x, y = to_device(x, device, channels_last), to_device(y, device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            out = model(x)
            loss = loss_fn(out, y)
        loss_sum += loss.item() * x.shape[0]
        n += x.shape[0]
        metrics.update(to_float32(out), y)
    return loss_sum / max(1, n), metrics.compute()


def _unbatch(obj: Any, n: int) -> list[Any]:
    """A collated batch of targets back into n per-sample targets (tensors, dicts, lists, tuples)."""
    if isinstance(obj, torch.Tensor):
        return list(obj.cpu())
    if isinstance(obj, dict):
        parts = {k: _unbatch(v, n) for k, v in obj.items()}
        return [{k: parts[k][i] for k in obj} for i in range(n)]
    if isinstance(obj, (list, tuple)) and len(obj) == n:
        return list(obj)
    raise TypeError(f"cannot split targets of type {type(obj).__name__} into samples")


@torch.no_grad()
def precompute_features(backbone: nn.Module, loader, device, use_amp, amp_dtype, channels_last) -> list[tuple[Any, Any]]:
    """(pooled features, target) per image, computed once: a frozen backbone gives the same features
    every epoch, so the epochs after that cost only the head (the textbook's "features + linear")."""
    from tqdm import tqdm

    backbone.eval()
    samples: list[tuple[Any, Any]] = []
    for x, y in tqdm(loader, desc="caching backbone features", unit="batch", disable=None, leave=False):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            features = backbone(to_device(x, device, channels_last)).float().cpu()
        samples += zip(features, _unbatch(y, len(features)))
    return samples


def _plot_curves(run_dir: Path) -> None:
    rows = read_metrics(run_dir)
    if rows:
        from .plots import plot_curves
        plot_curves(rows, run_dir / "curves.png")


def rebuild(run_dir: str | Path, which: str = "best") -> tuple[ZooModel, dict[str, Any], Task]:
    """The trained model of a run, from its config.json and weights alone."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise ZooError(f"{run_dir}: not a zoo run directory (no config.json)")
    try:
        saved = json.loads(cfg_path.read_text())
        mc = saved["model"]
    except (json.JSONDecodeError, KeyError) as e:
        raise ZooError(f"{cfg_path}: unreadable run config ({e})") from None
    weights = run_dir / f"{which}.safetensors"
    if not weights.is_file():
        raise ZooError(f"{run_dir}: no {which}.safetensors (did training finish an epoch?)")
    zoo = get_zoo()
    task = zoo.tasks.create(saved["task"])
    model = build_model(zoo, mc)
    artifacts.load_weights(model, weights)
    return model.eval(), saved, task
