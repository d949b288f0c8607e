"""The training state: the model, its loss, optimizers, schedules and gradient scaler, and the run's
progress (epochs done, the best epoch, epochs without improvement, the metrics rows, what the metrics
learned at the best epoch). It is what a checkpoint holds, and what --resume restores."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base.errors import ZooError
from ..model.model import ZooModel
from . import full_batch
from .rundir import STATE_FILE, weights_epoch


def make_optimizer(groups: list[dict[str, Any]], cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """Frozen parameters get no gradient, so the optimizer leaves them alone until they are unfrozen."""
    if cfg["optimizer"] == "lbfgs":  # a linear head on cached features, full batch (full_batch.py)
        return full_batch.make_lbfgs(groups, cfg["weight_decay"])
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"], nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"])


def make_schedule(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], steps_per_epoch: int):
    """A per-step learning-rate schedule over the whole run, with optional linear warm-up."""
    if isinstance(optimizer, torch.optim.LBFGS):  # its line search chooses every step
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
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


@dataclass
class TrainingState:
    model: ZooModel
    loss_fn: Any
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    schedules: dict[str, Any] = field(default_factory=dict)
    scaler: Any = None
    epoch: int = 0  # epochs done: where the loop starts
    best: dict[str, Any] = field(default_factory=dict)  # {"epoch": ..., <primary metric>: ...}
    bad_epochs: int = 0  # epochs since the best one
    rows: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl
    learned: dict[str, Any] = field(default_factory=dict)  # what the metrics fitted on validation at the best epoch
    finished: bool = False  # the resumed run had said it was done

    def restore_weights(self, checkpoint: dict[str, Any], saved: dict[str, Any], cfg: dict[str, Any],
                        flag_layer: dict[str, Any], run_dir: Path, device) -> None:
        """The model and the progress from a checkpoint (first: cached features are computed with them)."""
        try:
            self.model.load_state_dict({k: v.to(device) for k, v in checkpoint["model"].items()})
        except RuntimeError as e:
            raise ZooError(f"--resume {run_dir}: {STATE_FILE} does not fit the network config.json describes "
                           f"({str(e).splitlines()[0][:150]}); one of them was changed: start a new run with --out NEW_DIR") from None
        self.epoch, self.best, self.bad_epochs = checkpoint["epoch"], checkpoint["best"], checkpoint["bad_epochs"]
        self.rows = checkpoint["metrics"]
        self.learned = json.loads(checkpoint.get("learned", "{}"))
        if cfg["mode"] == "staged" and self.epoch >= cfg["freeze_epochs"]:
            self.model.set_backbone_trainable(True)
        # A run killed after its last checkpoint but before it said so only has its files republished.
        self.finished = saved.get("status") in ("completed", "stopped early")
        if self.epoch >= cfg["epochs"] and (self.finished or "epochs" in flag_layer):
            raise ZooError(f"--resume {run_dir}: already trained {self.epoch} epochs; pass --epochs N (N > {self.epoch}) "
                           "to train longer")
        best_epoch = self.best.get("epoch") if self.best else None
        if best_epoch is not None and best_epoch < self.epoch and weights_epoch(run_dir / "best.safetensors") != best_epoch:
            found = weights_epoch(run_dir / "best.safetensors")
            raise ZooError(f"--resume {run_dir}: best.safetensors {'is missing or unreadable' if found is None else f'holds epoch {found}'}"
                           f", but the checkpoint's best epoch is {best_epoch}: restore it, or start a new run with --out NEW_DIR")

    def make_optimizers(self, task, cfg: dict[str, Any], steps_per_epoch: int, machine) -> None:
        groups = task.optimizer_groups(self.model, self.loss_fn, cfg)
        self.optimizers = {name: make_optimizer(g, cfg) for name, g in groups.items()}
        self.schedules = {name: make_schedule(opt, cfg, steps_per_epoch) for name, opt in self.optimizers.items()}
        self.scaler = machine.grad_scaler()

    def restore_optimizers(self, checkpoint: dict[str, Any], run_dir: Path) -> None:
        try:
            for name, opt in self.optimizers.items():
                opt.load_state_dict(checkpoint["optimizers"][name])
                self.schedules[name].load_state_dict(checkpoint["schedules"][name])
            self.scaler.load_state_dict(checkpoint["scaler"])
            if isinstance(self.loss_fn, nn.Module) and checkpoint.get("loss"):  # a loss's learned parameters (CosFace's)
                self.loss_fn.load_state_dict(checkpoint["loss"])
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
            raise ZooError(f"--resume {run_dir}: the optimizer state in {STATE_FILE} does not fit this run "
                           f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                           "start a new run with --out NEW_DIR") from None

    def checkpoint(self, epochs_done: int) -> dict[str, Any]:
        """What last.state.pt holds after `epochs_done` epochs (the format tag is the run writer's)."""
        return {"epoch": epochs_done, "best": json.dumps(self.best), "bad_epochs": self.bad_epochs,
                "metrics": json.dumps(self.rows), "learned": json.dumps(self.learned),
                "model": self.model.state_dict(), "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
                "schedules": {n: s.state_dict() for n, s in self.schedules.items()}, "scaler": self.scaler.state_dict(),
                "loss": self.loss_fn.state_dict() if isinstance(self.loss_fn, nn.Module) else {}}

    def record(self, row: dict[str, Any], primary: str, mode: str, learned_info) -> bool:
        """An epoch's metrics row; whether it is the best so far by the task's primary metric."""
        value = row[primary]
        improved = not self.best or (value > self.best[primary] if mode == "max" else value < self.best[primary])
        if improved:
            self.best, self.bad_epochs, self.learned = {"epoch": row["epoch"], primary: value}, 0, learned_info()
        else:
            self.bad_epochs += 1
        self.rows.append(row)
        return improved

    def lr(self) -> float:
        """The first optimizer's first group's learning rate: the one the log and the curves show."""
        return next(iter(self.optimizers.values())).param_groups[0]["lr"]
