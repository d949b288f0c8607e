"""The trainer: one function, read top to bottom.

    config -> data -> backbone + head -> optimizers + schedules -> epochs (train, validate, checkpoint) -> plots

Transfer modes: 'frozen' trains the head only; 'finetune' trains everything (the backbone at
lr * backbone_lr_mult); 'staged' trains the head with the backbone frozen for `freeze_epochs`,
then unfreezes it at the lower learning rate — unfreezing at once would let the random head's
large gradients wreck the pretrained filters.

What a step is belongs to the task (Task.step: forward and loss, several named losses, several
optimizers); the run directory's files belong to rundir.py; the device and precision to Machine.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..base import artifacts, distributed
from ..base.config import load_toml, merge, normalise
from ..base.device import Machine
from ..base.distributed import SINGLE, Dist
from ..base.errors import ZooError
from ..contract.components import (
    DataSplits,
    Metrics,
    StepOutput,
    Task,
    _apply,
    detach,
    new_metrics,
    run_step,
)
from ..data.transforms import SampleDataset
from ..model.backbones import (
    choose_backbone,
    count_parameters,
    load_weights_into,
    read_state_dict,
)
from ..model.model import ZooModel, build_head, check_compatible, model_config
from ..registry.plugins import get_zoo
from .cache import DecodedImages, FeatureCollate, apply_cpu_recipe, cache_features
from .loaders import data_loader
from .rundir import (
    CHECKPOINT_FORMAT,
    RUN_FILES,
    STATE_FILE,
    RunLog,
    TensorBoardLog,
    model_digest,
    next_run_dir,
    plot_curves,
    read_checkpoint,
    read_config,
    remove_stale_temp_files,
    started_but_never_checkpointed,
    weights_epoch,
    write_config,
    write_metrics,
)


@dataclass
class TrainResult:
    run_dir: Path
    best: dict[str, Any]  # {"epoch": ..., "<metric>": ...}
    status: str  # completed | stopped early | interrupted
    seconds: float


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during training; the run directory holds a resumable checkpoint."""

    def __init__(self, run_dir: Path, by: str = "Ctrl-C", exit_code: int = 130):
        super().__init__(f"interrupted ({by}); resume with: zoo train --resume {run_dir}")
        self.run_dir, self.exit_code = run_dir, exit_code


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, `kill`, a closing container), handled like Ctrl-C."""


def _raise_terminated(signum, frame):
    raise _Terminated()


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C or SIGTERM arriving inside the block takes effect when it ends. Around the checkpoint: one
    arriving just after the file is renamed into place would otherwise leave the run believing it holds
    the epoch before, and write that into config.json and metrics.jsonl on its way out."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:  # delivered now, as it would have been (a handler of ours raises; the default ends the process)
        sig = pending[0]
        handler = previous[sig]
        if callable(handler):
            handler(sig, None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), sig)


def _epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch; the modulo keeps any allowed --seed inside what torch accepts. Each process
    of a multi-process run draws its own augmentation and dropout (rank 0 the single-process ones)."""
    return (seed * 1000 + epoch + rank * 2**40) % 2**63


def _escape(text: str) -> str:
    """One line per entry in skipped.txt, whatever a file name holds (tabs, newlines)."""
    return str(text).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _non_finite(record: dict[str, Any], model: nn.Module) -> str:
    """What is not finite after an epoch (validation losses and metrics, then the weights), or ''."""
    for key, value in record.items():
        if key.startswith("val_") and isinstance(value, float) and not math.isfinite(value):
            return f"{key} is {value}"
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            return f"weights '{name}' hold non-finite values"
    return ""


# ------------------------------------------------------------------------------------------ pieces

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(groups: list[dict[str, Any]], cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """Frozen parameters get no gradient, so the optimizer leaves them alone until they are unfrozen."""
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


def _fmt(record: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in record.items()
                     if k not in ("epoch", "lr", "seconds", "backbone_frozen") and isinstance(v, (int, float)))


# Recipe settings about the data rather than the model (digits must not be flipped, whatever the backbone).
DATA_SETTINGS = {"augment", "val_fraction", "dataset_options"}


def resolve_config(task: Task, zoo, file_layer: dict, flag_layer: dict, log=None) -> dict[str, Any]:
    """Layer the configuration; the dataset (hence its recipe) is known only once data is known.
    On a CPU, your own data trains frozen on cached features unless a layer above the task's chose
    otherwise (cache.apply_cpu_recipe says so in the log)."""
    # The task's "dataset" is its embedded default, used only when no --data is given; its "backbone" may be
    # a preference list, chosen from (backbones.choose_backbone) only when no other layer names a backbone.
    defaults = {k: v for k, v in task.defaults.items() if k != "dataset"}
    preferences = defaults.pop("backbone") if isinstance(defaults.get("backbone"), (list, tuple)) else None
    task_layer = normalise(defaults, f"task '{task.name}' defaults")
    pre = merge(task_layer, file_layer, flag_layer)
    dataset = pre["dataset"] or infer_dataset(task, zoo, pre["data"])
    recipe = normalise(zoo.datasets.get(dataset).spec.recipe, f"dataset '{dataset}' recipe")
    chosen = flag_layer.get("backbone") or file_layer.get("backbone")
    if "backbone" in recipe and chosen and chosen != recipe["backbone"]:
        # A recipe is tuned for its own backbone (digits: a small CNN from scratch, lr 3e-3, no pretraining);
        # with another backbone only its facts about the data still hold, the task's defaults do the rest.
        recipe = {k: v for k, v in recipe.items() if k in DATA_SETTINGS}
    cfg = merge(task_layer, recipe, file_layer, flag_layer)
    cfg["dataset"] = dataset
    if preferences and not cfg["backbone"]:
        cfg["backbone"], why = choose_backbone(zoo, list(preferences), cfg["pretrained"] and not cfg["weights"])
        if log is not None:
            log(why)
    apply_cpu_recipe(cfg, set(recipe) | set(file_layer) | set(flag_layer), log)
    for key in ("backbone", "head", "loss"):
        if not cfg[key]:
            raise ZooError(f"task '{task.name}' names no default {key}: pass --{key} NAME (zoo list shows them)")
    return cfg


def infer_dataset(task: Task, zoo, data: str | None) -> str:
    """The task's embedded dataset without --data; else the first dataset for the task's output kind
    that says it can read the path (registration order: built-ins, then plugins by name)."""
    if data is None:
        if task.defaults.get("dataset"):
            return task.defaults["dataset"]
        raise ZooError(f"task '{task.name}' has no embedded dataset: give --data PATH")
    if not Path(data).exists():
        raise ZooError(f"--data {data}: no such file or directory")
    readers = [c for c in zoo.datasets.matching(task.output) if c.spec.matches is not None]
    for c in readers:
        if c.spec.matches(data):
            return c.name
    raise ZooError(f"--data {data}: not a format task '{task.name}' reads ({', '.join(c.name for c in readers) or 'none'}); "
                   "pick one with --dataset NAME")


def load_data(zoo, task: Task, cfg: dict[str, Any], data_config, log, reference_info=None) -> DataSplits:
    """The dataset's raw splits, wrapped so each sample is loaded and goes through the task's transforms."""
    kwargs = dict(data_config=data_config, seed=cfg["seed"], val_fraction=cfg["val_fraction"], **cfg["dataset_options"])
    if reference_info is not None:
        kwargs["reference_info"] = reference_info
    data = zoo.datasets.create(cfg["dataset"], cfg["data"], **kwargs)
    if not isinstance(data, DataSplits):
        raise TypeError(f"dataset '{cfg['dataset']}' returned {type(data).__name__}, not DataSplits")
    if data.skipped:
        log(f"skipped {len(data.skipped)} unreadable file(s) (listed with reasons in the run's skipped.txt): "
            + ", ".join(Path(p).name for p, _ in data.skipped[:10]) + (" ..." if len(data.skipped) > 10 else ""))
    train_tf, eval_tf = task.transforms(data_config, cfg["augment"])
    channels = data_config.channels
    images = DecodedImages.for_run(cfg, data_config)  # image files decoded once, for every epoch (cache.py)
    data.train = SampleDataset(data.train, train_tf, channels, images)
    data.val = SampleDataset(data.val, eval_tf, channels, images)
    return data


class LossMeter:
    """Sample-weighted means over an epoch of the loss, each optimizer's loss when there are several
    (loss_<optimizer>), and the named parts a loss returns (loss_<part>). The sums stay tensors on the
    device: reading a GPU number waits for the GPU, so that happens once an epoch (and when the progress
    bar is redrawn), not every step."""

    def __init__(self, optimizers: tuple[str, ...]):
        self.optimizers = optimizers
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0

    def add(self, optimizer: str, out, batch_size: int) -> None:
        terms = {f"loss_{optimizer}" if len(self.optimizers) > 1 else "loss": out.loss,
                 **{f"loss_{part}": value for part, value in out.parts.items()}}
        for key, value in terms.items():
            value = value.detach().float() * batch_size
            self.sums[key] = self.sums[key] + value if key in self.sums else value

    def count(self, batch_size: int) -> None:
        self.n += batch_size

    def running_loss(self) -> float:
        """The mean loss so far (one number read from the device)."""
        total = sum(self.sums.get(f"loss_{name}" if len(self.optimizers) > 1 else "loss", torch.zeros(()))
                    for name in self.optimizers)
        return float(total) / max(1, self.n)

    def reduce(self, dist: Dist) -> None:
        """Sums and counts over every process (one collective): the means of the whole global epoch."""
        if dist.active:
            keys = list(self.sums)
            *sums, n = dist.all_sum([self.sums[k] for k in keys] + [torch.tensor(float(self.n))])
            self.sums, self.n = dict(zip(keys, sums)), int(round(float(n)))

    def means(self) -> dict[str, float]:
        values = torch.stack(list(self.sums.values())).tolist() if self.sums else []
        out = {k: v / max(1, self.n) for k, v in zip(self.sums, values)}
        if len(self.optimizers) > 1:
            out = {"loss": sum(out.get(f"loss_{name}", 0.0) for name in self.optimizers), **out}
        return out


@torch.no_grad()
def evaluate(task: Task, model: nn.Module, loader, loss_fn, metrics: Metrics, machine: Machine,
             optimizers: tuple[str, ...] = ("main",), dist: Dist = SINGLE,
             data_config=None) -> tuple[dict[str, float], dict[str, float]]:
    """The same step as training, without gradients: (mean losses, task metrics).

    With several processes, each evaluates every N-th batch and rank 0 gathers them in rounds of N and
    updates the metrics with them in the single-process order: a task's Metrics may hold any state
    (a confusion matrix, COCO's matched boxes), and this way they see exactly one process's batches.
    Only rank 0's result is meaningful (the trainer broadcasts it)."""
    model.eval()
    metrics.reset()
    meter = LossMeter(optimizers)
    if not dist.active:
        for batch in loader:
            batch = batch.to(machine.device, machine.channels_last)
            for name in optimizers:
                with machine.autocast():
                    out = run_step(task, model, batch, loss_fn, name, data_config)
                meter.add(name, out, len(batch))
            meter.count(len(batch))
            metrics.update(detach(out.outputs), batch.targets)
        return meter.means(), metrics.compute()
    batches = iter(loader)
    cpu = torch.device("cpu")
    for _ in range(loader.batch_sampler.rounds()):
        batch, mine = next(batches, None), None
        if batch is not None:
            batch = batch.to(machine.device, machine.channels_last)
            outs = {}
            for name in optimizers:
                with machine.autocast():
                    outs[name] = run_step(task, model, batch, loss_fn, name, data_config)
            mine = (len(batch), {name: (o.loss.detach().float().cpu(), {k: v.detach().float().cpu() for k, v in o.parts.items()})
                                 for name, o in outs.items()},
                    _to(detach(out_last(outs).outputs), cpu), _to(batch.targets, cpu))
        gathered = dist.gather(mine)
        if dist.main:
            for item in gathered:
                if item is None:
                    continue
                n, losses, outputs, targets = item
                for name, (loss, parts) in losses.items():
                    meter.add(name, StepOutput(loss, parts), n)
                meter.count(n)
                metrics.update(_to(outputs, machine.device), _to(targets, machine.device))
    if not dist.main:
        return {}, {}
    return meter.means(), metrics.compute()


def out_last(outs: dict) -> Any:
    """The step output the metrics read: the last optimizer's, as in a single process."""
    return outs[list(outs)[-1]]


def _to(obj: Any, device: torch.device) -> Any:
    return _apply(obj, lambda t: t.to(device))


def transformed_once(dataset, limit_gb: float):
    """The dataset's samples, transformed now and kept as a list, when they fit in `limit_gb`; else as it is."""
    if len(dataset) == 0:
        return dataset
    first = dataset[0]
    size = sum(t.numel() * t.element_size() for t in _tensors(first))
    if size * len(dataset) > limit_gb * 2**30:
        return dataset
    return [first] + [dataset[i] for i in range(1, len(dataset))]


def _tensors(obj: Any) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    _apply(obj, lambda t: found.append(t) or t)
    return found


def check_forward(model: ZooModel, cfg: dict[str, Any]) -> None:
    """One forward pass of a blank pair of images: an option a component takes without checking (timm
    passes **options on) fails here as one line naming it, not in the middle of the first epoch."""
    c, h, w = model.backbone.data_config.input_size
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(2, c, h, w))
    except (TypeError, ValueError, RuntimeError, AssertionError) as e:
        given = ", ".join(f"{kind}.{k}={v!r}" for kind in ("backbone", "head") for k, v in cfg[f"{kind}_options"].items())
        raise ZooError(f"the model fails with the options given ({given}): {str(e).splitlines()[0][:150] if str(e) else type(e).__name__}") from None
    finally:
        model.train()


# ---------------------------------------------------------------------------------------- the loop

def train(task_name: str, *, config: str | Path | None = None, resume: str | Path | None = None,
          quiet: bool = False, progress: bool = True, model_init=None, **settings: Any) -> TrainResult:
    """Train `task_name` (a registered task). `settings` are the same names as the CLI flags
    (epochs=5, backbone="resnet18", head_options={"dropout": 0.3}, ...). Returns where the run is.
    `model_init(model)`, Python only, prepares the built model before training (zoo compress: start from
    pruned weights and keep them pruned).
    SIGTERM (a scheduler, `kill`, a closing container) ends it like Ctrl-C: Interrupted, resumable.
    Started by torchrun (several processes, see distributed.py), it is one of them."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        try:
            return _train(task_name, config=config, resume=resume, quiet=quiet, progress=progress,
                          model_init=model_init, **settings)
        finally:
            gc.unfreeze()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _train(task_name, config=config, resume=resume, quiet=quiet, progress=progress, model_init=model_init,
                      **settings)
    finally:
        signal.signal(signal.SIGTERM, previous)
        gc.unfreeze()  # the next run in this process starts with the collector seeing everything again
        distributed.shutdown()  # a process leaving with the process group open can abort in gloo


@dataclass
class Setup:
    """What a run starts from, built by `prepare` for `zoo train` and `zoo lr-find` alike:
    config -> data -> model -> loss -> loaders -> optimizers, and on --resume the checkpoint's state."""

    zoo: Any
    task: Task
    task_name: str
    cfg: dict[str, Any]
    flag_layer: dict[str, Any]
    run_dir: Path | None
    machine: Machine
    dist: Dist
    backbone: Any
    model: ZooModel
    info: dict[str, Any]
    data: DataSplits
    loss_fn: Any
    train_metrics: Metrics
    val_metrics: Metrics
    train_set: Any
    val_set: Any
    train_loader: Any
    val_loader: Any
    optimizers: dict[str, torch.optim.Optimizer]
    schedules: dict[str, Any]
    scaler: Any
    state: dict[str, Any] | None = None  # the checkpoint resumed from
    saved: dict[str, Any] | None = None  # its config.json
    start_epoch: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    bad_epochs: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    learned: dict[str, Any] = field(default_factory=dict)  # what the metrics fitted on validation at the best epoch
    finished: bool = False  # the resumed run had said it was done
    notes: list[str] = field(default_factory=list)  # what the configuration chose and why, for the log
    image_splits: DataSplits | None = None  # staged on cached features: the images once the backbone unfreezes


def prepare(task_name: str, *, config: str | Path | None, resume: str | Path | None, settings: dict[str, Any], log,
            model_init=None, run_dir_needed: bool = True) -> Setup:
    """Everything before the first epoch; `run_dir_needed=False` (lr-find) skips choosing a run directory."""
    zoo = get_zoo()
    flag_layer = normalise({k: v for k, v in settings.items() if v is not None}, "flags")

    # --- configuration: fresh, or the saved one of the run to resume (flags may extend epochs)
    state = saved = run_dir = None  # the checkpoint to continue from
    if resume is not None:
        run_dir = Path(resume)
        if not run_dir.is_dir():
            raise ZooError(f"--resume {run_dir}: no such run directory")
        saved = read_config(run_dir, "--resume")
        if task_name and task_name != saved["model"]["task"]:
            raise ZooError(f"--resume {run_dir}: that run trains task '{saved['model']['task']}', not '{task_name}'; "
                           "leave the task out: zoo train --resume RUN")
        if config:
            raise ZooError(f"--resume {run_dir}: a run continues with its own saved config; --config applies to new runs only")
        if flag_layer.get("out") and Path(flag_layer["out"]).resolve() != run_dir.resolve():
            raise ZooError(f"--resume {run_dir}: a run continues in its own directory, --out cannot move it "
                           "(copy the directory and resume the copy)")
        changed = [k for k in ("backbone", "head", "loss", "dataset", "data", "image_size", "pretrained", "weights",
                               "backbone_options", "head_options", "loss_options", "dataset_options")
                   if k in flag_layer and flag_layer[k] != saved["train"].get(k)]
        if changed:
            raise ZooError(f"--resume {run_dir}: cannot change {', '.join(changed)} of a run; start a new run instead")
        task_name = saved["model"]["task"]
        cfg = merge(normalise(saved["train"], f"{run_dir}/config.json"), flag_layer)
        cfg["out"] = str(run_dir)
    task: Task = zoo.tasks.create(task_name)
    notes: list[str] = []  # what the configuration chose and why: logged once the run starts (a bad input stays one line)
    if resume is None:
        cfg = resolve_config(task, zoo, load_toml(config) if config else {}, flag_layer, notes.append)
    check_compatible(zoo, task, cfg["head"], cfg["loss"], cfg["dataset"])
    for kind in ("dataset", "head", "loss"):  # a mistyped option is an error before any data is read
        zoo.registries[kind].get(cfg[kind]).check_options(cfg[f"{kind}_options"])
    if cfg["cache_features"]:
        if cfg["mode"] == "finetune":
            raise ZooError("--cache-features needs --mode frozen or staged: features can be computed once only while "
                           "the backbone is frozen")
        if cfg["mode"] == "frozen":
            cfg["augment"] = "none"  # each image's features are computed once, so there is no augmentation

    # --- the processes: one, or this one of several started by torchrun
    machine = Machine.from_config(cfg, local_rank=distributed.local_rank())
    dist = distributed.setup(machine.device)
    # Every process resolved the configuration itself; rank 0's is the run's (a default backbone chosen by
    # probing the Hub, say, could differ between processes that asked a moment apart).
    cfg = dist.broadcast(cfg)
    if cfg["batch_size"] % dist.world:
        raise ZooError(f"--batch-size {cfg['batch_size']} is the global batch, shared by {dist.world} processes: "
                       f"use a multiple of {dist.world}")
    if resume is not None:  # only rank 0 writes, removes or repairs files
        if dist.main:
            remove_stale_temp_files(run_dir)
        dist.barrier()
        state = read_checkpoint(run_dir)
    elif run_dir_needed:
        if dist.main:  # one name for all processes: the others would each pick the next free one
            run_dir = Path(cfg["out"]) if cfg["out"] else next_run_dir(task_name)
            if run_dir.exists() and not run_dir.is_dir():
                raise ZooError(f"--out {run_dir}: a file, not a directory; pick another path")
            if run_dir.is_dir() and any(run_dir.iterdir()) and not started_but_never_checkpointed(run_dir):
                go_on = f", or go on with that run: zoo train --resume {run_dir}" if (run_dir / "config.json").is_file() else ""
                raise ZooError(f"--out {run_dir}: exists and is not an empty directory; pick another --out{go_on}")
        run_dir = dist.broadcast(run_dir)

    seed_everything(cfg["seed"])

    # --- model: backbone (pretrained, from a file, or random) + the task's head
    # A run resumed before its first checkpoint starts over exactly as it first started.
    pretrained = cfg["pretrained"] and not cfg["weights"] and state is None
    backbone = zoo.backbones.create(cfg["backbone"], pretrained=pretrained, image_size=cfg["image_size"],
                                    **cfg["backbone_options"])
    if cfg["weights"] and state is None:
        loaded, expected = load_weights_into(backbone, read_state_dict(cfg["weights"]), cfg["weights"])
        log(f"loaded {loaded}/{expected} backbone tensors from {cfg['weights']}")
        backbone.pretrained_source = f"file:{cfg['weights']}"

    # --- data: the backbone's data config decides size and normalisation, the task the transforms
    data = load_data(zoo, task, cfg, backbone.data_config, log)
    if len(data.train) == 0 or len(data.val) == 0:
        raise ZooError(f"{cfg['data'] or cfg['dataset']}: need images for both training and validation "
                       f"(got {len(data.train)} and {len(data.val)}); add images, or change --val-fraction "
                       f"(now {cfg['val_fraction']:g})")
    info = task.outputs_info(dict(data.info), cfg)
    head, head_input = build_head(zoo, cfg["head"], backbone, info, cfg["head_options"])
    model = ZooModel(backbone, head, head_input)
    if model_init is not None:
        model_init(model)
    if state is not None:
        model.backbone.pretrained_source = saved["model"].get("pretrained_source", "none")
        if saved["model"].get("pruned"):  # a channel-pruned run's fine-tuning, resumed: its weights' shapes first
            from ..model.pruning import apply_structure

            apply_structure(model, saved["model"]["pruned"])
    if cfg["backbone_options"] or cfg["head_options"]:
        check_forward(model, cfg)
    loss_fn = zoo.losses.create(cfg["loss"], info=info, **cfg["loss_options"])
    train_metrics, val_metrics = new_metrics(task, info, backbone.data_config), new_metrics(task, info, backbone.data_config)
    machine.prepare(model)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(machine.device)

    # frozen/staged start with the backbone frozen; resuming picks the state back up below
    model.set_backbone_trainable(cfg["mode"] == "finetune")
    # `learned`: what the metrics fitted on validation at the best epoch (decision thresholds), saved with the model
    start_epoch, best, bad_epochs, rows, learned, finished = 0, {}, 0, [], {}, False
    if state is not None:  # the weights first: cached features are computed with them
        try:
            model.load_state_dict({k: v.to(machine.device) for k, v in state["model"].items()})
        except RuntimeError as e:
            raise ZooError(f"--resume {run_dir}: {STATE_FILE} does not fit the network config.json describes "
                           f"({str(e).splitlines()[0][:150]}); one of them was changed: start a new run with --out NEW_DIR") from None
        start_epoch, best, bad_epochs, rows = state["epoch"], state["best"], state["bad_epochs"], state["metrics"]
        learned = json.loads(state.get("learned", "{}"))
        if cfg["mode"] == "staged" and start_epoch >= cfg["freeze_epochs"]:
            model.set_backbone_trainable(True)
        # A run killed after its last checkpoint but before it said so only has its files republished.
        finished = saved.get("status") in ("completed", "stopped early")
        if start_epoch >= cfg["epochs"] and (finished or "epochs" in flag_layer):
            raise ZooError(f"--resume {run_dir}: already trained {start_epoch} epochs; pass --epochs N (N > {start_epoch}) to train longer")
        if best and best["epoch"] < start_epoch and weights_epoch(run_dir / "best.safetensors") != best["epoch"]:
            found = weights_epoch(run_dir / "best.safetensors")
            raise ZooError(f"--resume {run_dir}: best.safetensors {'is missing or unreadable' if found is None else f'holds epoch {found}'}"
                           f", but the checkpoint's best epoch is {best['epoch']}: restore it, or start a new run with --out NEW_DIR")
    collate = task.collate
    train_set, val_set = data.train, data.val
    image_splits = data  # staged with cached features: the images the full model trains on once it unfreezes
    if cfg["cache_features"] and not (cfg["mode"] == "staged" and start_epoch >= cfg["freeze_epochs"]):
        train_set, val_set, data = cache_features(model, task, data, cfg, machine, log, dist)
        collate = FeatureCollate(task)
    # Data held in memory through a deterministic transform gives the same tensors every epoch: transform it
    # once (validation always: the eval transform; training without augmentation, whose transform is the eval one).
    # At most a quarter of cache_limit_gb each: float tensors at the input size can outweigh the images.
    if data.in_memory and isinstance(val_set, SampleDataset):
        val_set = transformed_once(val_set, cfg["cache_limit_gb"] / 4)
        if cfg["augment"] == "none":
            train_set = transformed_once(train_set, cfg["cache_limit_gb"] / 4)
    if cfg["compile"]:  # compiled in place: the state dict, checkpoints and exports stay those of the model
        model.compile()
    train_loader = data_loader(train_set, cfg, machine, data, collate, shuffle=True, dist=dist)
    val_loader = data_loader(val_set, cfg, machine, data, collate, shuffle=False, dist=dist)
    steps_per_epoch = math.ceil(len(train_loader) / cfg["accum_steps"])
    optimizers = {name: make_optimizer(groups, cfg) for name, groups in task.optimizer_groups(model, loss_fn, cfg).items()}
    schedules = {name: make_schedule(opt, cfg, steps_per_epoch) for name, opt in optimizers.items()}
    scaler = machine.grad_scaler()

    if state is not None:
        try:
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
                schedules[name].load_state_dict(state["schedules"][name])
            scaler.load_state_dict(state["scaler"])
            if isinstance(loss_fn, nn.Module) and state.get("loss"):  # a loss's learned parameters (CosFace's weights)
                loss_fn.load_state_dict(state["loss"])
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
            raise ZooError(f"--resume {run_dir}: the optimizer state in {STATE_FILE} does not fit this run "
                           f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                           "start a new run with --out NEW_DIR") from None
    return Setup(zoo, task, task_name, cfg, flag_layer, run_dir, machine, dist, backbone, model, info, data, loss_fn,
                 train_metrics, val_metrics, train_set, val_set, train_loader, val_loader, optimizers, schedules, scaler,
                 state, saved, start_epoch, best, bad_epochs, rows, learned, finished, notes, image_splits)


def _train(task_name: str, *, config: str | Path | None, resume: str | Path | None, quiet: bool, progress: bool,
           model_init=None, **settings: Any) -> TrainResult:
    t_start = time.time()
    log = RunLog(quiet=quiet or distributed.is_worker())  # one process speaks for all
    s = prepare(task_name, config=config, resume=resume, settings=settings, log=log, model_init=model_init)
    # Everything built so far (the libraries, the data, the model) lives for the whole run: out of the
    # garbage collector's sight, its passes stay short (they made a small model's epochs a quarter slower).
    gc.collect()
    gc.freeze()
    zoo, task, task_name, cfg, run_dir, machine, dist = s.zoo, s.task, s.task_name, s.cfg, s.run_dir, s.machine, s.dist
    model, backbone, info, data, loss_fn = s.model, s.backbone, s.info, s.data, s.loss_fn
    data_config = backbone.data_config
    train_metrics, val_metrics, train_set, val_set = s.train_metrics, s.val_metrics, s.train_set, s.val_set
    train_loader, val_loader, optimizers, schedules, scaler = s.train_loader, s.val_loader, s.optimizers, s.schedules, s.scaler
    state, start_epoch, best, bad_epochs, rows, learned = s.state, s.start_epoch, s.best, s.bad_epochs, s.rows, s.learned
    primary, mode = task.primary_metric, task.primary_mode
    writes = dist.main  # only rank 0 touches the run directory

    try:
        if writes:
            run_dir.mkdir(parents=True, exist_ok=True)
            if state is None:  # a fresh start, or a restart of a run killed before its first checkpoint
                remove_stale_temp_files(run_dir)
                for name in RUN_FILES - {"train.log"}:
                    (run_dir / name).unlink(missing_ok=True)
    except OSError as e:
        raise ZooError(f"--out {run_dir}: cannot create the run directory ({e.strerror or e})") from None
    if writes:
        log.attach(run_dir / "train.log")
        if data.skipped:
            artifacts.write_text(run_dir / "skipped.txt", "".join(f"{_escape(p)}\t{_escape(r)}\n" for p, r in data.skipped))
    total, trainable = count_parameters(model)
    processes = f"; {dist.world} processes (DDP), {cfg['batch_size'] // dist.world} images of each batch each" if dist.active else ""
    log(f"zoo train {task_name}: {data.description or cfg['dataset']} — {len(train_set)} train / {len(val_set)} val")
    for note in s.notes:
        log(note)
    log(f"model: {cfg['backbone']} ({backbone.pretrained_source}) + {cfg['head']} head, {total:,} parameters, "
        f"{trainable:,} trainable; mode {cfg['mode']}; {machine.describe()}{processes}"
        f"{'; compiled' if cfg['compile'] else ''}; run dir {run_dir}")

    committed = {"epoch": start_epoch, "best": dict(best), "learned": dict(learned)}  # what the checkpoint on disk holds

    def model_section() -> dict[str, Any]:
        section = model_config(cfg, task, backbone, {**info, **committed["learned"]})
        if getattr(model, "pruned", None):  # zoo compress --prune channels: the shapes config.json alone would not build
            section["pruned"] = model.pruned
        return section

    def save_config(status: str) -> None:
        if not writes:
            return
        write_config(run_dir, {
            "task": task_name, "status": status, "best": committed["best"], "epochs_done": committed["epoch"],
            "primary_metric": primary, "primary_mode": mode,
            "model": model_section(),
            "train": dict(cfg),
            "data": {"dataset": cfg["dataset"], "source": cfg["data"], "train": len(train_set),
                     "val": len(val_set), "skipped": len(data.skipped)},
            "processes": dist.world,
            "plugins": {p.name: p.version for p in zoo.plugins if not p.error},
        })

    def commit(epochs_done: int) -> None:
        """The checkpoint: one file, renamed into place whole (see rundir.py). A signal waits until both the
        file and `committed` say the same epoch."""
        with _signals_held():
            if writes:
                artifacts.save_state(run_dir / STATE_FILE, {
                    "format": CHECKPOINT_FORMAT, "epoch": epochs_done, "best": json.dumps(best),
                    "bad_epochs": bad_epochs, "metrics": json.dumps(rows), "learned": json.dumps(learned),
                    "model": model.state_dict(), "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                    "schedules": {n: s.state_dict() for n, s in schedules.items()}, "scaler": scaler.state_dict(),
                    "loss": loss_fn.state_dict() if isinstance(loss_fn, nn.Module) else {}})
            committed.update(epoch=epochs_done, best=dict(best), learned=dict(learned))

    def publish(status: str) -> None:
        """The files derived from the checkpoint; a kill between them is repaired by --resume."""
        if not writes:
            return
        epochs_done = committed["epoch"]
        metadata = {"task": task_name, "epoch": str(epochs_done), "model_digest": model_digest(model_section())}
        artifacts.save_weights(model, run_dir / "last.safetensors", metadata)
        artifacts.kill_point(f"published-last@{epochs_done}")
        if committed["best"] and committed["best"]["epoch"] == epochs_done:
            artifacts.save_weights(model, run_dir / "best.safetensors", metadata)
            artifacts.kill_point(f"published-best@{epochs_done}")
        write_metrics(run_dir, rows)
        artifacts.kill_point(f"published-metrics@{epochs_done}")
        save_config(status)

    try:
        if state is None:
            save_config("running")  # first, so --resume knows the run whatever instant a kill comes at
            commit(0)  # the starting weights: a run killed in its first epoch resumes from here exactly
        publish("running")  # on --resume, this repairs whatever a kill left stale
    except OSError as e:
        raise ZooError(f"{run_dir}: cannot write the run's files ({e.strerror or e}); nothing was trained yet") from None
    from tqdm import tqdm

    board = (TensorBoardLog(run_dir, purge_step=start_epoch * len(train_loader) if state is not None else None)
             if cfg["tensorboard"] and writes else None)
    bar = tqdm(total=(cfg["epochs"] - start_epoch) * len(train_loader), unit="batch",
               disable=None if progress and not quiet and writes else True, dynamic_ncols=True, leave=False)
    epoch, status = start_epoch, "completed"
    last_epoch = cfg["epochs"]
    if state is not None and not s.finished and cfg["patience"] and bad_epochs >= cfg["patience"]:
        status, last_epoch = "stopped early", start_epoch  # it had stopped early when it was killed
    find_unused = len(optimizers) > 1  # each optimizer's step uses only its own parameters
    report = _BestReport(run_dir)
    try:
        for epoch in range(start_epoch, last_epoch):
            t_epoch = time.time()
            if cfg["mode"] == "staged" and epoch == cfg["freeze_epochs"]:
                model.set_backbone_trainable(True)
                switched = model.inputs_are_features  # the frozen epochs trained on cached features
                if switched:  # from now on, images go through the whole model
                    model.inputs_are_features = False
                    images = s.image_splits
                    train_loader = data_loader(images.train, cfg, machine, images, task.collate, shuffle=True, dist=dist)
                    val_loader = data_loader(images.val, cfg, machine, images, task.collate, shuffle=False, dist=dist)
                log(f"epoch {epoch + 1}: backbone unfrozen (lr x{cfg['backbone_lr_mult']})"
                    + (", images through the whole model from now on" if switched else ""))
            net = dist.wrap(model, machine.device, find_unused)  # the model itself, or DDP around it
            # Seeding per epoch (shuffle order, augmentation, dropout) lets a resumed run continue as the
            # uninterrupted one would. The shuffle is the same in every process, the rest their own.
            torch.manual_seed(_epoch_seed(cfg["seed"], epoch, dist.rank))
            train_loader.zoo_generator.manual_seed(_epoch_seed(cfg["seed"], epoch))

            # --- train: each named optimizer takes its step on each batch (one, unless the task has several)
            net.train()
            train_metrics.reset()
            meter = LossMeter(tuple(optimizers))
            step_losses, step_lrs = [], []  # for TensorBoard, read once at the end of the epoch
            next_redraw = 0.0
            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            for i, batch in enumerate(train_loader):
                batch = batch.to(machine.device, machine.channels_last)
                boundary = (i + 1) % cfg["accum_steps"] == 0 or i + 1 == len(train_loader)
                for name, opt in optimizers.items():
                    # between accumulation boundaries, processes keep their gradients to themselves
                    with net.no_sync() if dist.active and not boundary else contextlib.nullcontext():
                        with machine.autocast():
                            out = run_step(task, net, batch, loss_fn, name, data_config)
                        scaler.scale(out.loss / cfg["accum_steps"]).backward()
                    if boundary:
                        if cfg["clip_grad"] > 0:
                            scaler.unscale_(opt)
                            nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg["clip_grad"])
                        scaler.step(opt)
                        opt.zero_grad(set_to_none=True)
                        schedules[name].step()
                    meter.add(name, out, len(batch))
                if boundary:
                    scaler.update()
                meter.count(len(batch))
                train_metrics.update(detach(out.outputs), batch.targets)
                if board is not None:
                    step_losses.append(out.loss.detach())
                    step_lrs.append(next(iter(optimizers.values())).param_groups[0]["lr"])
                if i == 0:
                    artifacts.kill_point(f"batch@{epoch + 1}")
                bar.update(1)
                # Reading the loss waits for the device: only when the bar is redrawn (a few times a second),
                # which is also when a diverged loss is noticed (and at the end of the epoch, for every process).
                if not dist.active and time.monotonic() >= next_redraw:
                    next_redraw = time.monotonic() + 0.5
                    running = meter.running_loss()
                    _check_finite_loss(running, epoch, committed["epoch"])
                    if not bar.disable:
                        bar.set_postfix_str(f"epoch {epoch + 1}/{cfg['epochs']} loss {running:.4f}", refresh=False)

            meter.reduce(dist)
            train_losses = meter.means()
            _check_finite_loss(train_losses.get("loss", 0.0), epoch, committed["epoch"])
            train_scores = _mean_over_processes(train_metrics.compute(), dist)

            # --- validate (rank 0 computes the metrics; every process then takes its record)
            val_losses, val_scores = evaluate(task, model, val_loader, loss_fn, val_metrics, machine, tuple(optimizers), dist, data_config)
            record = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in train_losses.items()},
                      **{f"train_{k}": v for k, v in train_scores.items()},
                      **{f"val_{k}": v for k, v in val_losses.items()}, **{f"val_{k}": v for k, v in val_scores.items()},
                      "lr": next(iter(optimizers.values())).param_groups[0]["lr"], "backbone_frozen": model.backbone_frozen,
                      "seconds": round(time.time() - t_epoch, 3)}
            record = dist.broadcast(record)

            # --- checkpoint: best by the task's primary metric, last always
            if primary not in record:
                raise ZooError(f"task '{task_name}' ranks runs by '{primary}', which its metrics do not give "
                               f"(they give: {', '.join(k for k in record if k.startswith('val_'))})")
            # Diverged weights are never saved, let alone as the best ones.
            problem = _non_finite(record, model)
            if problem:
                status = "diverged"
                raise ZooError(f"training diverged in epoch {epoch + 1}: {problem}; the checkpoint of epoch "
                               f"{committed['epoch']} is kept; lower --lr or use --clip-grad 1.0")
            value = record[primary]
            improved = not best or (value > best[primary] if mode == "max" else value < best[primary])
            if improved:
                best, bad_epochs, learned = {"epoch": epoch + 1, primary: value}, 0, val_metrics.learned_info()
            else:
                bad_epochs += 1
            rows.append(record)
            artifacts.kill_point(f"commit@{epoch + 1}")
            commit(epoch + 1)
            artifacts.kill_point(f"publish@{epoch + 1}")
            publish("running")
            reported = []
            if improved and writes:
                # The report (a confusion matrix, pictures of predictions) is of the best epoch. Drawing it can
                # cost more than a small model's epoch, so while it would pass 5% of the run it is drawn at the
                # end: its metrics are kept aside and validation gets fresh ones.
                report.pending, val_metrics = val_metrics, new_metrics(task, info, data_config)
                if report.seconds <= 0.05 * (time.time() - t_start):
                    reported = report.write()
            if board is not None:
                board.epoch(epoch, len(train_loader), torch.stack(step_losses).tolist() if step_losses else [], step_lrs,
                            record, reported)
            elapsed = time.time() - t_start
            left = elapsed / (epoch + 1 - start_epoch) * (cfg["epochs"] - epoch - 1)
            if cfg["budget"]:
                left = max(0.0, min(left, cfg["budget"] - elapsed))
            log(f"epoch {epoch + 1}/{cfg['epochs']}  {_fmt(record)}  {record['seconds']:.1f}s"
                f" (~{left:.0f}s left){'  *' if improved else ''}")
            if cfg["patience"] and bad_epochs >= cfg["patience"]:
                status = "stopped early"
                log(f"early stop: {primary} has not improved for {bad_epochs} epochs")
                break
            # --budget: stop when the next epoch, taking as long as this one, would pass it. Rank 0's
            # clock decides for every process.
            if cfg["budget"] and epoch + 1 < last_epoch and dist.broadcast(elapsed + record["seconds"] > cfg["budget"]):
                status = "stopped by --budget"
                log(f"--budget {cfg['budget']:g}s: stopping after epoch {epoch + 1} ({elapsed:.1f}s used, an epoch takes "
                    f"~{record['seconds']:.1f}s); go on with: zoo train --resume {run_dir}")
                break
        pictures = report.write()
        if board is not None and pictures:
            board.pictures(committed["best"]["epoch"], pictures)
    except KeyboardInterrupt as e:
        bar.close()
        report.write(quietly=True)
        # The end of the last finished epoch is checkpointed, and resuming from it repeats the run exactly.
        by = "SIGTERM" if isinstance(e, _Terminated) else "Ctrl-C"
        if writes:  # stopped between a checkpoint and its derived files: the metrics agree with the checkpoint
            try:    # (the weights files are repaired by --resume, which republishes them from it)
                write_metrics(run_dir, [r for r in rows if r["epoch"] <= committed["epoch"]])
            except Exception:
                pass
        _try_save_config(save_config, "interrupted")
        log(f"interrupted ({by}) in epoch {epoch + 1}; resume with: zoo train --resume {run_dir}")
        raise Interrupted(run_dir, by, 143 if by == "SIGTERM" else 130) from None
    except OSError as e:  # a full disk, a file size limit, a directory gone or read-only
        bar.close()
        report.write(quietly=True)
        _try_save_config(save_config, "failed")
        raise ZooError(f"{run_dir}: cannot write ({e.strerror or e}); the checkpoint of epoch {committed['epoch']} is "
                       f"intact: fix that, then resume with: zoo train --resume {run_dir}") from None
    except BaseException as e:
        bar.close()
        if isinstance(e, _Diverged):
            status = "diverged"
        report.write(quietly=True)
        _try_save_config(save_config, status if status == "diverged" else "failed")
        raise
    finally:
        bar.close()
        if board is not None:
            board.close()
        try:
            if writes:
                plot_curves(run_dir)
        except Exception:  # a picture is not worth masking the real outcome (a full disk, say)
            pass

    try:
        save_config(status)
    except OSError as e:
        raise ZooError(f"{run_dir}/config.json: cannot write ({e.strerror or e}); the training itself finished and "
                       "its checkpoint is intact") from None
    dist.barrier()  # every process leaves together, after rank 0's last write
    return TrainResult(run_dir, committed["best"], status, time.time() - t_start)


class _BestReport:
    """The task's report of the best epoch so far, written now or later (see the loop)."""

    def __init__(self, run_dir: Path):
        # `seconds` starts at a guess of one drawing (about a second with matplotlib): a short run draws its
        # report once, at the end; drawing mid-run also leaves garbage that slows a small model's next epochs
        self.run_dir, self.pending, self.seconds = run_dir, None, 1.0

    def write(self, quietly: bool = False) -> list[str]:
        if self.pending is None:
            return []
        t = time.time()
        metrics, self.pending = self.pending, None
        try:
            return list(metrics.report(self.run_dir))
        except Exception:
            if not quietly:
                raise
            return []  # the run is already ending on another error, which matters more
        finally:
            self.seconds += time.time() - t


class _Diverged(ZooError):
    """The training loss became non-finite."""


def _check_finite_loss(value: float, epoch: int, kept: int) -> None:
    if not math.isfinite(value):
        raise _Diverged(f"training diverged: the loss became {value} in epoch {epoch + 1}; the checkpoint "
                        f"of epoch {kept} is kept; lower --lr or use --clip-grad 1.0")


def _mean_over_processes(scores: dict[str, float], dist: Dist) -> dict[str, float]:
    """Training metrics with several processes: the mean of each process's (their shares of the samples
    are equal; exact for means such as accuracy; for ratios such as mIoU, close to the single-process value).
    Validation metrics are exact (see evaluate)."""
    if not dist.active or not scores:
        return scores
    keys = list(scores)  # the same order in every process, and the task's own
    sums = dist.all_sum([torch.tensor(float(scores[k])) for k in keys])
    return {k: float(v) / dist.world for k, v in zip(keys, sums)}


def _try_save_config(save_config, status: str) -> None:
    """Record how the run ended when the disk still allows it; the checkpoint is what matters."""
    try:
        save_config(status)
    except Exception:
        pass
