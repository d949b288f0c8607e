"""One training step, used by `fit` and `zoo lr-find` alike, and the same step without gradients over a
validation loader (`evaluate`), with the loss bookkeeping both share."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import nn

from ..base.device import Machine
from ..base.distributed import SINGLE, Dist
from ..base.errors import ZooError
from ..contract.components import Batch, Metrics, StepOutput, Task, _apply, detach, run_step
from . import full_batch


def train_step(task: Task, net: nn.Module, batch: Batch, loss_fn, optimizers: dict[str, torch.optim.Optimizer],
               scaler, machine: Machine, data_config, *, accum_steps: int = 1, boundary: bool = True,
               clip_grad: float = 0.0, schedules: dict[str, Any] | None = None,
               dist: Dist = SINGLE) -> dict[str, StepOutput]:
    """Each named optimizer takes its step on the batch (one, unless the task has several, a GAN's two):
    the task's step under autocast, its loss scaled for mixed precision and gradient accumulation, and at
    an accumulation boundary clipping, the optimizer's step and its schedule's. Returns each optimizer's
    step output (the metrics read the last one's: out_last)."""
    outs = {}
    for name, opt in optimizers.items():
        if isinstance(opt, torch.optim.LBFGS):  # the full batch; it evaluates the loss itself (full_batch.py)
            outs[name] = full_batch.step(opt, net, lambda: run_step(task, net, batch, loss_fn, name, data_config))
            continue
        # between accumulation boundaries, processes keep their gradients to themselves
        with net.no_sync() if dist.active and not boundary else contextlib.nullcontext():
            with machine.autocast():
                outs[name] = out = run_step(task, net, batch, loss_fn, name, data_config)
            scaler.scale(out.loss / accum_steps).backward()
        if boundary:
            if clip_grad > 0:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip_grad)
            scaler.step(opt)
            opt.zero_grad(set_to_none=True)
            if schedules is not None:
                schedules[name].step()
    if boundary:
        scaler.update()
    return outs


class LossMeter:
    """Sample-weighted means over an epoch of the loss, each optimizer's loss when there are several
    (loss_<optimizer>), and the named parts a loss returns (loss_<part>). Each batch weighs as many samples
    as its loss covers (StepOutput.count, default the batch); a term no sample covered is left out. The
    sums stay tensors on the device: reading a GPU number waits for the GPU, so that happens once an epoch
    (and when the progress bar is redrawn), not every step."""

    def __init__(self, optimizers: tuple[str, ...]):
        self.optimizers = optimizers
        self.sums: dict[str, torch.Tensor] = {}
        self.weights: dict[str, float] = {}  # samples behind each sum
        self.n = 0

    def add(self, optimizer: str, out, batch_size: int) -> None:
        weight = batch_size if getattr(out, "count", None) is None else out.count
        terms = {f"loss_{optimizer}" if len(self.optimizers) > 1 else "loss": out.loss,
                 **{f"loss_{part}": value for part, value in out.parts.items()}}
        for key, value in terms.items():
            value = value.detach().float() * weight
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.weights[key] = self.weights.get(key, 0) + weight

    def count(self, batch_size: int) -> None:
        self.n += batch_size

    def running_loss(self) -> float:
        """The mean loss so far (one number read from the device)."""
        keys = [f"loss_{name}" if len(self.optimizers) > 1 else "loss" for name in self.optimizers]
        return sum(float(self.sums[k]) / max(1, self.weights[k]) for k in keys if k in self.sums)

    def reduce(self, dist: Dist) -> None:
        """Sums and counts over every process (one collective): the means of the whole global epoch."""
        if dist.active:
            keys = list(self.sums)
            values = dist.all_sum([self.sums[k] for k in keys] + [torch.tensor(float(self.weights[k])) for k in keys]
                                  + [torch.tensor(float(self.n))])
            self.sums = dict(zip(keys, values[:len(keys)]))
            self.weights = {k: float(w) for k, w in zip(keys, values[len(keys):2 * len(keys)])}
            self.n = int(round(float(values[-1])))

    def means(self) -> dict[str, float]:
        keys = [k for k in self.sums if self.weights[k] > 0]
        values = torch.stack([self.sums[k] for k in keys]).tolist() if keys else []
        out = {k: v / self.weights[k] for k, v in zip(keys, values)}
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
            mine = (len(batch), {name: (o.loss.detach().float().cpu(), {k: v.detach().float().cpu() for k, v in o.parts.items()},
                                        o.count) for name, o in outs.items()},
                    _to(detach(out_last(outs).outputs), cpu), _to(batch.targets, cpu))
        gathered = dist.gather(mine)
        if dist.main:
            for item in gathered:
                if item is None:
                    continue
                n, losses, outputs, targets = item
                for name, (loss, parts, count) in losses.items():
                    meter.add(name, StepOutput(loss, parts, count=count), n)
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


def non_finite(record: dict[str, Any], model: nn.Module) -> str:
    """What is not finite after an epoch (validation losses and metrics, then the weights), or ''."""
    for key, value in record.items():
        if key.startswith("val_") and isinstance(value, float) and not math.isfinite(value):
            return f"{key} is {value}"
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            return f"weights '{name}' hold non-finite values"
    return ""


# ------------------------------------------------------------------------------------------ pieces

class Diverged(ZooError):
    """The training loss became non-finite."""


def check_finite_loss(value: float, epoch: int, kept: int) -> None:
    if not math.isfinite(value):
        raise Diverged(f"training diverged: the loss became {value} in epoch {epoch + 1}; the checkpoint "
                        f"of epoch {kept} is kept; lower --lr or use --clip-grad 1.0")


def mean_over_processes(scores: dict[str, float], dist: Dist) -> dict[str, float]:
    """Training metrics with several processes: the mean of each process's (their shares of the samples
    are equal; exact for means such as accuracy; for ratios such as mIoU, close to the single-process value).
    Validation metrics are exact (see evaluate)."""
    if not dist.active or not scores:
        return scores
    keys = list(scores)  # the same order in every process, and the task's own
    sums = dist.all_sum([torch.tensor(float(scores[k])) for k in keys])
    return {k: float(v) / dist.world for k, v in zip(keys, sums)}


