"""The run directory while a run trains: one object owns its commit/publish protocol, the signals held
around a commit, and the crash test points (artifacts.kill_point) the fault suite kills at.

The protocol. The checkpoint (last.state.pt) is the one truth: written whole and renamed into place
(commit), with Ctrl-C and SIGTERM held until both the file and what the run believes it holds say the
same epoch. Everything else (last/best weights, metrics, config.json) is derived from it (publish); a
kill between those files leaves them stale, and --resume republishes them from the checkpoint. Only
rank 0 writes; the other processes of a multi-process run go through the same calls, which do nothing.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from ..base import artifacts
from ..base.errors import ZooError
from ..model.model import model_config
from .rundir import (
    CHECKPOINT_FORMAT,
    LOSS_WEIGHTS,
    RUN_FILES,
    STATE_FILE,
    model_digest,
    plot_curves,
    remove_stale_temp_files,
    write_config,
    write_metrics,
)

if TYPE_CHECKING:
    from .setup import Setup


def resolved_options(component, given: dict[str, Any]) -> dict[str, Any]:
    """A component's options as built: its factory's JSON-able defaults, overridden by those given."""
    accepted = component.options() or {}
    defaults = {k: v for k, v in accepted.items()
                if v is not inspect.Parameter.empty and (v is None or isinstance(v, (bool, int, float, str)))}
    return {**defaults, **given}


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during training; the run directory holds a resumable checkpoint."""

    def __init__(self, run_dir: Path, by: str = "Ctrl-C", exit_code: int = 130):
        super().__init__(f"interrupted ({by}); resume with: zoo train --resume {run_dir}")
        self.run_dir, self.exit_code = run_dir, exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, `kill`, a closing container), handled like Ctrl-C."""


def raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def signals_held():
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
        # Restored with both signals blocked: a Ctrl-C raising between the two restores would otherwise
        # leave SIGTERM held for the rest of the process (a later `kill` lost in `pending`).
        blocked = hasattr(signal, "pthread_sigmask")
        if blocked:
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, previous)
        try:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if pending:  # delivered now, as it would have been (a handler of ours raises; the default ends the process)
        sig = pending[0]
        handler = previous[sig]
        if callable(handler):
            handler(sig, None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), sig)


def _escape(text: str) -> str:
    """One line per entry in skipped.txt, whatever a file name holds (tabs, newlines)."""
    return str(text).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


class RunWriter:
    """The run directory of one training run (see the module's docstring)."""

    def __init__(self, s: Setup):
        self.s, self.dir, self.writes = s, s.run_dir, s.dist.main
        state = s.state
        # what the checkpoint on disk holds
        self.committed = {"epoch": state.epoch, "best": dict(state.best), "learned": dict(state.learned)}

    # --- opening: the directory, the log, what was skipped, and the first commit
    def open(self, log) -> None:
        s = self.s
        try:
            if self.writes:
                self.dir.mkdir(parents=True, exist_ok=True)
                if not s.resumed:  # a fresh start, or a restart of a run killed before its first checkpoint
                    remove_stale_temp_files(self.dir)
                    for name in RUN_FILES - {"train.log"}:
                        (self.dir / name).unlink(missing_ok=True)
        except OSError as e:
            raise ZooError(f"--out {self.dir}: cannot create the run directory ({e.strerror or e})") from None
        if self.writes:
            log.attach(self.dir / "train.log")
            if s.data.data.skipped:
                artifacts.write_text(self.dir / "skipped.txt",
                                     "".join(f"{_escape(p)}\t{_escape(r)}\n" for p, r in s.data.data.skipped))

    def start(self) -> None:
        """config.json first, so --resume knows the run whatever instant a kill comes at; then the starting
        weights, so a run killed in its first epoch resumes from them exactly. On --resume, publishing
        repairs whatever a kill left stale."""
        try:
            if not self.s.resumed:
                self.save_config("running")
                self.commit(0)
            self.publish("running")
        except OSError as e:
            raise ZooError(f"{self.dir}: cannot write the run's files ({e.strerror or e}); nothing was trained yet") from None

    # --- the protocol
    def model_section(self) -> dict[str, Any]:
        s = self.s
        section = model_config(s.cfg, s.task, s.backbone, {**s.info, **self.committed["learned"]})
        # the head as built, defaults included: a later change of a default cannot silently rebuild another one
        section["head_options"] = resolved_options(s.zoo.heads.get(s.cfg["head"]), s.cfg["head_options"])
        if getattr(s.state.model, "pruned", None):  # zoo compress --prune channels: shapes config.json alone would not build
            section["pruned"] = s.state.model.pruned
        return section

    def save_config(self, status: str) -> None:
        if not self.writes:
            return
        s = self.s
        write_config(self.dir, {
            "task": s.task_name, "status": status, "best": self.committed["best"], "epochs_done": self.committed["epoch"],
            "primary_metric": s.task.primary_metric, "primary_mode": s.task.primary_mode,
            "model": self.model_section(),
            "train": dict(s.cfg),
            "data": {"dataset": s.cfg["dataset"], "source": s.cfg["data"], "train": len(s.data.train_set),
                     "val": len(s.data.val_set), "skipped": len(s.data.data.skipped)},
            "processes": s.dist.world,
            "plugins": {p.name: p.version for p in s.zoo.plugins if not p.error},
        })

    def commit(self, epochs_done: int) -> None:
        """The checkpoint: one file, renamed into place whole. A signal waits until both the file and
        `committed` say the same epoch."""
        state = self.s.state
        with signals_held():
            if self.writes:
                artifacts.save_state(self.dir / STATE_FILE, {"format": CHECKPOINT_FORMAT, **state.checkpoint(epochs_done)})
            self.committed.update(epoch=epochs_done, best=dict(state.best), learned=dict(state.learned))

    def publish(self, status: str) -> None:
        """The files derived from the checkpoint; a kill between them is repaired by --resume."""
        if not self.writes:
            return
        model, loss_fn, epochs_done = self.s.state.model, self.s.state.loss_fn, self.committed["epoch"]
        metadata = {"task": self.s.task_name, "epoch": str(epochs_done), "model_digest": model_digest(self.model_section())}
        trained_loss = isinstance(loss_fn, nn.Module) and bool(loss_fn.state_dict())  # CosFace's class weights
        artifacts.save_weights(model, self.dir / "last.safetensors", metadata)
        if trained_loss:
            artifacts.save_weights(loss_fn, self.dir / LOSS_WEIGHTS["last"], metadata)
        artifacts.kill_point(f"published-last@{epochs_done}")
        if self.committed["best"] and self.committed["best"]["epoch"] == epochs_done:
            artifacts.save_weights(model, self.dir / "best.safetensors", metadata)
            if trained_loss:
                artifacts.save_weights(loss_fn, self.dir / LOSS_WEIGHTS["best"], metadata)
            artifacts.kill_point(f"published-best@{epochs_done}")
        write_metrics(self.dir, self.s.state.rows)
        artifacts.kill_point(f"published-metrics@{epochs_done}")
        self.save_config(status)

    def checkpoint(self, epochs_done: int) -> None:
        """The end of an epoch: commit, then publish."""
        artifacts.kill_point(f"commit@{epochs_done}")
        self.commit(epochs_done)
        artifacts.kill_point(f"publish@{epochs_done}")
        self.publish("running")

    @staticmethod
    def kill_point(name: str) -> None:
        artifacts.kill_point(name)

    # --- how a run ends
    def interrupted(self, e: KeyboardInterrupt, epoch: int, log) -> Interrupted:
        """Ctrl-C or SIGTERM: the end of the last finished epoch is checkpointed, and resuming from it
        repeats the run exactly."""
        by = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
        if self.writes:  # stopped between a checkpoint and its derived files: the metrics agree with the checkpoint
            try:    # (the weights files are repaired by --resume, which republishes them from it)
                write_metrics(self.dir, [r for r in self.s.state.rows if r["epoch"] <= self.committed["epoch"]])
            except Exception:
                pass
        self.try_save_config("interrupted")
        log(f"interrupted ({by}) in epoch {epoch + 1}; resume with: zoo train --resume {self.dir}")
        return Interrupted(self.dir, by, 143 if by == "SIGTERM" else 130)

    def cannot_write(self, e: OSError) -> ZooError:
        """A full disk, a file size limit, a directory gone or read-only."""
        self.try_save_config("failed")
        return ZooError(f"{self.dir}: cannot write ({e.strerror or e}); the checkpoint of epoch {self.committed['epoch']} "
                        f"is intact: fix that, then resume with: zoo train --resume {self.dir}")

    def try_save_config(self, status: str) -> None:
        """Record how the run ended when the disk still allows it; the checkpoint is what matters."""
        try:
            self.save_config(status)
        except Exception:
            pass

    def plot_curves(self) -> None:
        try:
            if self.writes:
                plot_curves(self.dir)
        except Exception:  # a picture is not worth masking the real outcome (a full disk, say)
            pass

    def finish(self, status: str) -> None:
        try:
            self.save_config(status)
        except OSError as e:
            raise ZooError(f"{self.dir}/config.json: cannot write ({e.strerror or e}); the training itself finished "
                           "and its checkpoint is intact") from None

