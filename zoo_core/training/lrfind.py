"""`zoo lr-find`: the learning-rate range test. Train on the run's own config for a few hundred steps
(fewer on small data) while the learning rate grows exponentially from tiny to huge, plot the loss
against it, and suggest where the smoothed loss falls fastest: a learning rate still safely below the
one where training blows up.

It uses the trainer's own set-up (`setup.prepare`: config -> data -> model -> loss -> loaders ->
optimizers) and its training step (`step.train_step`), so it works for every task; with several optimizers (a GAN's
two) they are swept together, each group keeping its ratio to --lr (the backbone's backbone_lr_mult).
Nothing is saved but the plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..base.errors import ZooError


@dataclass
class LRFindResult:
    lrs: list[float]  # the --lr value of every step taken
    losses: list[float]  # the loss of that step
    smoothed: list[float]  # its exponential moving average (bias corrected)
    suggestion: float  # the --lr at the steepest descent of the smoothed loss
    plot: Path
    stopped: str  # why the sweep ended: "end of the range" or "the loss diverged"


def default_steps(batches_per_epoch: int) -> int:
    """A few hundred steps, fewer for small data (three passes over it, at least 30)."""
    return int(min(200, max(30, 3 * batches_per_epoch)))


def smooth(losses: list[float], beta: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction (the first values are not pulled towards 0)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def steepest(lrs: list[float], smoothed: list[float]) -> float:
    """The learning rate where the smoothed loss falls fastest per decade of lr, looked for before the
    loss's minimum (past it the loss rises) and after the first few noisy steps."""
    n = len(lrs)
    if n < 3:
        return lrs[0]
    lowest = int(np.argmin(smoothed))
    skip = max(1, n // 10)
    window = slice(skip, max(lowest, skip + 2))
    slope = np.gradient(np.asarray(smoothed), np.log10(np.asarray(lrs)))
    part = slope[window]
    return float(lrs[window.start + int(np.argmin(part))]) if len(part) else float(lrs[lowest])


def lr_find(task_name: str, *, config: str | Path | None = None, start_lr: float = 1e-7, end_lr: float = 10.0,
            steps: int | None = None, plot: str | Path | None = None, quiet: bool = False,
            **settings: Any) -> LRFindResult:
    """The range test for `task_name` with the same settings `train` takes (data, backbone, mode, ...)."""
    from tqdm import tqdm

    from ..base import distributed
    from .rundir import RunLog
    from .setup import prepare
    from .step import train_step

    if distributed.under_launcher():
        raise ZooError("zoo lr-find runs in one process: start it without torchrun")
    if not 0 < start_lr < end_lr:
        raise ZooError(f"--start-lr must be > 0 and below --end-lr, got {start_lr:g} and {end_lr:g}")
    if steps is not None and steps < 3:
        raise ZooError(f"--steps must be >= 3, got {steps}")
    log = RunLog(quiet=quiet)
    # the sweep is of a learning rate: a stochastic optimizer's (the CPU recipe's full-batch L-BFGS has none)
    settings = {"optimizer": "adamw", **{k: v for k, v in settings.items() if v is not None}}
    s = prepare(task_name, config=config, resume=None, settings=settings, log=log, run_dir_needed=False)
    cfg, task, model, machine, state = s.cfg, s.task, s.model, s.machine, s.state
    steps = steps or default_steps(len(s.data.train_loader))
    plot = Path(plot) if plot else Path("runs") / f"lr-find-{s.task_name}.png"
    # every group keeps its ratio to --lr (the backbone at backbone_lr_mult x the head)
    ratios = {name: [g["lr"] / cfg["lr"] for g in opt.param_groups] for name, opt in state.optimizers.items()}
    frozen = " (backbone frozen: the first phase of --mode staged)" if cfg["mode"] == "staged" else ""
    log(f"zoo lr-find {s.task_name}: {len(s.data.train_set)} training images, {steps} steps of batch {cfg['batch_size']}, "
        f"lr {start_lr:g} -> {end_lr:g}; mode {cfg['mode']}{frozen}; {machine.describe()}")

    lrs, losses, smoothed = [], [], []
    stopped = "end of the range"
    model.train()
    batches = iter(s.data.train_loader)
    for k in tqdm(range(steps), desc="lr-find", unit="step", disable=None if not quiet else True, leave=False):
        lr = start_lr * (end_lr / start_lr) ** (k / (steps - 1))
        for name, opt in state.optimizers.items():
            for group, ratio in zip(opt.param_groups, ratios[name]):
                group["lr"] = lr * ratio
        batch = next(batches, None)
        if batch is None:  # another pass over the data
            batches = iter(s.data.train_loader)
            batch = next(batches)
        batch = batch.to(machine.device, machine.channels_last)
        # the training step itself, each optimizer at the swept rate (no schedule, no clipping, no accumulation)
        outs = train_step(task, model, batch, state.loss_fn, state.optimizers, state.scaler, machine, s.data_config)
        total = sum(float(out.loss.detach()) for out in outs.values())
        lrs.append(lr)
        losses.append(total)
        smoothed = smooth(losses)
        if not math.isfinite(total) or (k >= 5 and smoothed[-1] > 4 * min(smoothed)):
            stopped = "the loss diverged"  # past here the picture only shows the explosion
            break
    good = [i for i, v in enumerate(losses) if math.isfinite(v)]
    if len(good) < 3:
        raise ZooError(f"the loss was not finite from lr {start_lr:g} on; lower --start-lr")
    lrs, losses = [lrs[i] for i in good], [losses[i] for i in good]
    smoothed = smooth(losses)
    suggestion = steepest(lrs, smoothed)
    _plot(lrs, losses, smoothed, suggestion, plot, s.task_name)
    log(f"{len(lrs)} steps ({stopped}); plot {plot}")
    return LRFindResult(lrs, losses, smoothed, suggestion, plot, stopped)


def _plot(lrs: list[float], losses: list[float], smoothed: list[float], suggestion: float, path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..base import artifacts

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    ax.plot(lrs, losses, color="#9ecae1", linewidth=1, label="loss per step")
    ax.plot(lrs, smoothed, color="#08519c", linewidth=2, label="smoothed")
    ax.axvline(suggestion, color="#d62728", linestyle="--", linewidth=1.2, label=f"suggested --lr {suggestion:.2g}")
    ax.set_xscale("log")
    low, high = min(min(smoothed), min(losses)), max(smoothed[: max(3, len(smoothed) // 2)])
    ax.set_ylim(low - 0.1 * (high - low + 1e-9), max(high, smoothed[0]) + 0.2 * (high - low + 1e-9))
    ax.set_xlabel("learning rate (--lr)")
    ax.set_ylabel("training loss")
    ax.set_title(f"zoo lr-find {task}: steepest descent at {suggestion:.2g}")
    ax.legend(loc="upper left")
    ax.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        artifacts.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    except OSError as e:
        raise ZooError(f"--plot {path}: cannot write ({e.strerror or e})") from None
    finally:
        plt.close(fig)
