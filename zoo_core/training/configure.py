"""The configuration of a run: the settings layered (defaults < task < dataset recipe < TOML < flags), or a
resumed run's own with what the flags may still change; the processes it runs in; its run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import distributed
from ..base.config import load_toml, merge, normalise
from ..base.device import Machine
from ..base.distributed import Dist
from ..base.errors import ZooError
from ..contract.components import Task
from ..model.backbones import choose_backbone
from ..model.model import check_compatible
from .features import apply_cpu_recipe, cacheable
from .rundir import next_run_dir, read_checkpoint, read_config, remove_stale_temp_files, started_but_never_checkpointed


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
    if cacheable(task, zoo, cfg["head"]) is None:
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


@dataclass
class RunConfig:
    task: Task
    task_name: str
    cfg: dict[str, Any]
    flag_layer: dict[str, Any]  # what the flags said (a resumed run may extend its epochs)
    run_dir: Path | None
    machine: Machine
    dist: Dist
    notes: list[str]  # what the configuration chose and why, logged once the run starts
    saved: dict[str, Any] | None = None  # a resumed run's config.json
    checkpoint: dict[str, Any] | None = None  # and the checkpoint it continues from (None: it starts over)


def configure(zoo, task_name: str, *, config: str | Path | None, resume: str | Path | None, settings: dict[str, Any],
              run_dir_needed: bool = True) -> RunConfig:
    """The configuration, checked before any data is read; `run_dir_needed=False` (lr-find) chooses no
    run directory."""
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
        why = cacheable(task, zoo, cfg["head"])
        if why is not None:
            raise ZooError(f"--cache-features: {why}, so features cannot be computed once; leave --cache-features out")
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

    return RunConfig(task, task_name, cfg, flag_layer, run_dir, machine, dist, notes, saved, state)
