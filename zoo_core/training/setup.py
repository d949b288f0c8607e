"""Everything before the first epoch, for `zoo train` and `zoo lr-find` alike, in three parts:
the configuration (configure.py), the model and its training state (state.py), and the data plan
(data_plan.py): config -> model -> data -> loss -> loaders -> optimizers, and on --resume the checkpoint's
state, restored in that order (the weights before the features they compute)."""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..base.config import load_toml
from ..base.device import Machine
from ..base.distributed import Dist
from ..base.errors import ZooError
from ..contract.components import Metrics, Task, new_metrics
from ..model.backbones import load_weights_into, read_state_dict
from ..model.model import ZooModel, build_head
from ..registry.plugins import get_zoo
from . import full_batch
from .configure import configure
from .data_plan import DataPlan, load_data
from .loaders import loader_workers
from .run_threads import choose_threads
from .state import TrainingState


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


@dataclass
class Setup:
    """What a run starts from (see the module's docstring)."""

    zoo: Any
    task: Task
    task_name: str
    cfg: dict[str, Any]
    flag_layer: dict[str, Any]
    run_dir: Path | None
    machine: Machine
    dist: Dist
    backbone: Any
    info: dict[str, Any]
    data: DataPlan
    state: TrainingState
    train_metrics: Metrics
    val_metrics: Metrics
    notes: list[str]  # what the configuration chose and why, for the log
    resumed: bool = False  # from a checkpoint (a run resumed before its first one starts over)

    @property
    def model(self) -> ZooModel:
        return self.state.model

    @property
    def data_config(self):
        return self.backbone.data_config

    def new_metrics(self) -> Metrics:
        return new_metrics(self.task, self.info, self.backbone.data_config)


def prepare(task_name: str, *, config: str | Path | None, resume: str | Path | None, settings: dict[str, Any], log,
            model_init=None, run_dir_needed: bool = True) -> Setup:
    """Everything before the first epoch; `run_dir_needed=False` (lr-find) skips choosing a run directory."""
    zoo = get_zoo()
    c = configure(zoo, task_name, config=config, resume=resume, settings=settings, run_dir_needed=run_dir_needed)
    task, cfg, machine, checkpoint = c.task, c.cfg, c.machine, c.checkpoint
    seed_everything(cfg["seed"])

    # --- model: backbone (pretrained, from a file, or random) + the task's head
    # A run resumed before its first checkpoint starts over exactly as it first started.
    pretrained = cfg["pretrained"] and not cfg["weights"] and checkpoint is None
    backbone = zoo.backbones.create(cfg["backbone"], pretrained=pretrained, image_size=cfg["image_size"],
                                    **cfg["backbone_options"])
    if cfg["weights"] and checkpoint is None:
        loaded, expected = load_weights_into(backbone, read_state_dict(cfg["weights"]), cfg["weights"])
        log(f"loaded {loaded}/{expected} backbone tensors from {cfg['weights']}")
        backbone.pretrained_source = f"file:{cfg['weights']}"

    if getattr(backbone, "feature_info", None):  # what fit "native" pads to a multiple of
        backbone.data_config = dataclasses.replace(backbone.data_config,
                                                   stride=max(lv.stride for lv in backbone.feature_info))
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
    if checkpoint is not None:
        model.backbone.pretrained_source = c.saved["model"].get("pretrained_source", "none")
        if c.saved["model"].get("pruned"):  # a channel-pruned run's fine-tuning, resumed: its weights' shapes first
            from ..model.pruning import apply_structure

            apply_structure(model, c.saved["model"]["pruned"])
    if cfg["backbone_options"] or cfg["head_options"]:
        check_forward(model, cfg)
    chosen = "optimizer" in c.flag_layer or (resume is None and bool(config) and "optimizer" in load_toml(config))
    note = full_batch.resolve_optimizer(cfg, chosen, head, c.dist.world)
    if note:
        c.notes.append(note)
    loss_fn = zoo.losses.create(cfg["loss"], info=info, **cfg["loss_options"])
    train_metrics, val_metrics = (new_metrics(task, info, backbone.data_config),
                                  new_metrics(task, info, backbone.data_config))
    machine.prepare(model)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(machine.device)

    # --- the training state: frozen/staged start with the backbone frozen; resuming picks the state back up
    model.set_backbone_trainable(cfg["mode"] == "finetune")
    state = TrainingState(model, loss_fn)
    if checkpoint is not None:  # the weights first: cached features are computed with them
        state.restore_weights(checkpoint, c.saved, cfg, c.flag_layer, c.run_dir, machine.device)
    # threads: the backbone's count while features are computed (DataPlan), then the training step's
    threads = choose_threads(model, cfg, machine, loader_workers(cfg, machine, data))
    c.notes.append(threads.describe())
    plan = DataPlan(task, cfg, machine, c.dist, data, state.epoch, model, log)
    threads.training()
    if cfg["compile"]:  # compiled in place: the state dict, checkpoints and exports stay those of the model
        model.compile()
    state.make_optimizers(task, cfg, math.ceil(len(plan.train_loader) / cfg["accum_steps"]), machine)
    if checkpoint is not None:
        state.restore_optimizers(checkpoint, c.run_dir)
    return Setup(zoo, task, c.task_name, cfg, c.flag_layer, c.run_dir, machine, c.dist, backbone, info, plan, state,
                 train_metrics, val_metrics, c.notes, checkpoint is not None)
