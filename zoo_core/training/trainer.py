"""The trainer: `fit`, read top to bottom.

    prepare (config -> model -> data -> optimizers) -> epochs (train, validate, checkpoint, stop?) -> plots

Transfer modes: 'frozen' trains the head only; 'finetune' trains everything (the backbone at
lr * backbone_lr_mult); 'staged' trains the head with the backbone frozen for `freeze_epochs`,
then unfreezes it at the lower learning rate — unfreezing at once would let the random head's
large gradients wreck the pretrained filters.

What a step is belongs to the task (Task.step: forward and loss, several named losses, several
optimizers) and step.py runs it; the set-up is setup.py's (configuration, the data plan, the training
state); the run directory's protocol (commit, publish, signals, crash points) is run_writer.py's; the
stop rules and the reporting are stops.py's and reporting.py's; the device and precision, Machine's.
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..base import distributed
from ..base.errors import ZooError
from ..contract.components import detach
from ..model.backbones import count_parameters
from .rundir import RunLog
from .reporting import BestReport, TensorBoardLog, epoch_line, progress_bar
from .run_writer import Interrupted, RunWriter, raise_terminated
from .setup import Setup, prepare
from .step import (
    Diverged,
    LossMeter,
    check_finite_loss,
    evaluate,
    mean_over_processes,
    non_finite,
    out_last,
    train_step,
)
from .stops import out_of_budget, out_of_patience, stopped_before

__all__ = ["Interrupted", "TrainResult", "evaluate", "fit", "train"]


@dataclass
class TrainResult:
    run_dir: Path
    best: dict[str, Any]  # {"epoch": ..., "<metric>": ...}
    status: str  # completed | stopped early | interrupted
    seconds: float


def _epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch; the modulo keeps any allowed --seed inside what torch accepts. Each process
    of a multi-process run draws its own augmentation and dropout (rank 0 the single-process ones)."""
    return (seed * 1000 + epoch + rank * 2**40) % 2**63


def train(task_name: str, *, config: str | Path | None = None, resume: str | Path | None = None,
          quiet: bool = False, progress: bool = True, model_init=None, **settings: Any) -> TrainResult:
    """Train `task_name` (a registered task). `settings` are the same names as the CLI flags
    (epochs=5, backbone="resnet18", head_options={"dropout": 0.3}, ...). Returns where the run is.
    `model_init(model)`, Python only, prepares the built model before training (zoo compress: start from
    pruned weights and keep them pruned).
    SIGTERM (a scheduler, `kill`, a closing container) ends it like Ctrl-C: Interrupted, resumable.
    Started by torchrun (several processes, see distributed.py), it is one of them."""
    main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread
    previous = signal.signal(signal.SIGTERM, raise_terminated) if main_thread else None
    # `zoo`'s start-up handler (console.py: leaves at once, while imports are running) hands Ctrl-C to the
    # trainer: a KeyboardInterrupt from here on, checkpointed and resumable.
    previous_int = signal.getsignal(signal.SIGINT) if main_thread else None
    start_up = getattr(previous_int, "zoo_start_up", False)
    if start_up:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        t_start = time.time()
        log = RunLog(quiet=quiet or distributed.is_worker())  # one process speaks for all
        s = prepare(task_name, config=config, resume=resume, settings=settings, log=log, model_init=model_init)
        return fit(s, log, t_start, progress=progress and not quiet)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if start_up:
            signal.signal(signal.SIGINT, previous_int)
        gc.unfreeze()  # the next run in this process starts with the collector seeing everything again
        if main_thread:
            distributed.shutdown()  # a process leaving with the process group open can abort in gloo


def fit(s: Setup, log, t_start: float, progress: bool = True) -> TrainResult:
    """The epochs of a prepared run: train, validate, checkpoint, report, stop; then the curves."""
    # Everything built so far (the libraries, the data, the model) lives for the whole run: out of the
    # garbage collector's sight, its passes stay short (they made a small model's epochs a quarter slower).
    gc.collect()
    gc.freeze()
    task, cfg, machine, dist, plan, state = s.task, s.cfg, s.machine, s.dist, s.data, s.state
    model, train_metrics, val_metrics, start_epoch = state.model, s.train_metrics, s.val_metrics, state.epoch
    primary, writes = task.primary_metric, dist.main  # only rank 0 touches the run directory
    files = RunWriter(s)
    files.open(log)
    total, trainable = count_parameters(model)
    processes = f"; {dist.world} processes (DDP), {cfg['batch_size'] // dist.world} images of each batch each" if dist.active else ""
    log(f"zoo train {s.task_name}: {plan.data.description or cfg['dataset']} — {len(plan.train_set)} train / "
        f"{len(plan.val_set)} val")
    for note in s.notes:
        log(note)
    log(f"model: {cfg['backbone']} ({s.backbone.pretrained_source}) + {cfg['head']} head, {total:,} parameters, "
        f"{trainable:,} trainable; mode {cfg['mode']}; {machine.describe()}{processes}"
        f"{'; compiled' if cfg['compile'] else ''}; run dir {s.run_dir}")
    files.start()

    board = (TensorBoardLog(s.run_dir, purge_step=start_epoch * len(plan.train_loader) if s.resumed else None)
             if cfg["tensorboard"] and writes else None)
    bar = progress_bar((cfg["epochs"] - start_epoch) * len(plan.train_loader), progress and writes)
    epoch, status, last_epoch = start_epoch, "completed", cfg["epochs"]
    if stopped_before(cfg, s.resumed, state.finished, state.bad_epochs):
        status, last_epoch = "stopped early", start_epoch  # it had stopped early when it was killed
    find_unused = len(state.optimizers) > 1  # each optimizer's step uses only its own parameters
    report = BestReport(s.run_dir)
    try:
        for epoch in range(start_epoch, last_epoch):
            t_epoch = time.time()
            if cfg["mode"] == "staged" and epoch == cfg["freeze_epochs"]:
                plan.unfreeze(model, epoch, log)
            net = dist.wrap(model, machine.device, find_unused)  # the model itself, or DDP around it
            # Seeding per epoch (shuffle order, augmentation, dropout) lets a resumed run continue as the
            # uninterrupted one would. The shuffle is the same in every process, the rest their own.
            torch.manual_seed(_epoch_seed(cfg["seed"], epoch, dist.rank))
            plan.train_loader.zoo_generator.manual_seed(_epoch_seed(cfg["seed"], epoch))

            # --- train: each named optimizer takes its step on each batch (one, unless the task has several)
            net.train()
            train_metrics.reset()
            meter = LossMeter(tuple(state.optimizers))
            step_losses, step_lrs = [], []  # for TensorBoard, read once at the end of the epoch
            next_redraw = 0.0
            for opt in state.optimizers.values():
                opt.zero_grad(set_to_none=True)
            for i, batch in enumerate(plan.train_loader):
                batch = batch.to(machine.device, machine.channels_last)
                boundary = (i + 1) % cfg["accum_steps"] == 0 or i + 1 == len(plan.train_loader)
                outs = train_step(task, net, batch, state.loss_fn, state.optimizers, state.scaler, machine, s.data_config,
                                  accum_steps=cfg["accum_steps"], boundary=boundary, clip_grad=cfg["clip_grad"],
                                  schedules=state.schedules, dist=dist)
                for name, out in outs.items():
                    meter.add(name, out, len(batch))
                out = out_last(outs)
                meter.count(len(batch))
                train_metrics.update(detach(out.outputs), batch.targets)
                if board is not None:
                    step_losses.append(out.loss.detach())
                    step_lrs.append(state.lr())
                if i == 0:
                    files.kill_point(f"batch@{epoch + 1}")
                bar.update(1)
                # Reading the loss waits for the device: only when the bar is redrawn (a few times a second),
                # which is also when a diverged loss is noticed (and at the end of the epoch, for every process).
                if not dist.active and time.monotonic() >= next_redraw:
                    next_redraw = time.monotonic() + 0.5
                    running = meter.running_loss()
                    check_finite_loss(running, epoch, files.committed["epoch"])
                    if not bar.disable:
                        bar.set_postfix_str(f"epoch {epoch + 1}/{cfg['epochs']} loss {running:.4f}", refresh=False)
            meter.reduce(dist)
            train_losses = meter.means()
            check_finite_loss(train_losses.get("loss", 0.0), epoch, files.committed["epoch"])
            train_scores = mean_over_processes(train_metrics.compute(), dist)

            # --- validate (rank 0 computes the metrics; every process then takes its record)
            val_losses, val_scores = evaluate(task, model, plan.val_loader, state.loss_fn, val_metrics, machine,
                                              tuple(state.optimizers), dist, s.data_config)
            record = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in train_losses.items()},
                      **{f"train_{k}": v for k, v in train_scores.items()},
                      **{f"val_{k}": v for k, v in val_losses.items()}, **{f"val_{k}": v for k, v in val_scores.items()},
                      "lr": state.lr(), "backbone_frozen": model.backbone_frozen, "seconds": round(time.time() - t_epoch, 3)}
            record = dist.broadcast(record)

            # --- checkpoint: best by the task's primary metric, last always
            if primary not in record:
                raise ZooError(f"task '{s.task_name}' ranks runs by '{primary}', which its metrics do not give "
                               f"(they give: {', '.join(k for k in record if k.startswith('val_'))})")
            problem = non_finite(record, model)  # diverged weights are never saved, let alone as the best ones
            if problem:
                status = "diverged"
                raise ZooError(f"training diverged in epoch {epoch + 1}: {problem}; the checkpoint of epoch "
                               f"{files.committed['epoch']} is kept; lower --lr or use --clip-grad 1.0")
            improved = state.record(record, primary, task.primary_mode, val_metrics.learned_info)
            files.checkpoint(epoch + 1)

            # --- report: the best epoch's pictures, TensorBoard, the log line
            reported = []
            if improved and writes:
                # The report (a confusion matrix, pictures of predictions) is of the best epoch. Drawing it can
                # cost more than a small model's epoch, so while it would pass 5% of the run it is drawn at the
                # end: its metrics are kept aside and validation gets fresh ones.
                report.pending, val_metrics = val_metrics, s.new_metrics()
                if report.seconds <= 0.05 * (time.time() - t_start):
                    reported = report.write()
            if board is not None:
                board.epoch(epoch, len(plan.train_loader), torch.stack(step_losses).tolist() if step_losses else [],
                            step_lrs, record, reported)
            elapsed = time.time() - t_start
            log(epoch_line(record, cfg, epoch, start_epoch, elapsed, improved))

            # --- stop?
            stop = (out_of_patience(cfg, state.bad_epochs, primary)
                    or out_of_budget(cfg, epoch, last_epoch, elapsed, record["seconds"], dist, s.run_dir))
            if stop:
                status, why = stop
                log(why)
                break
        pictures = report.write()
        if board is not None and pictures:
            board.pictures(files.committed["best"]["epoch"], pictures)
    except KeyboardInterrupt as e:
        bar.close()
        report.write(quietly=True)
        raise files.interrupted(e, epoch, log) from None
    except OSError as e:  # a full disk, a file size limit, a directory gone or read-only
        bar.close()
        report.write(quietly=True)
        raise files.cannot_write(e) from None
    except BaseException as e:
        bar.close()
        status = "diverged" if isinstance(e, Diverged) else status
        report.write(quietly=True)
        files.try_save_config(status if status == "diverged" else "failed")
        raise
    finally:
        bar.close()
        if board is not None:
            board.close()
        files.plot_curves()

    files.finish(status)
    dist.barrier()  # every process leaves together, after rank 0's last write
    return TrainResult(s.run_dir, files.committed["best"], status, time.time() - t_start)
