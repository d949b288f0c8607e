"""What a run tells as it goes: the epoch's line in the log, the task's report of the best epoch (drawn
now or at the end), TensorBoard's events (--tensorboard), and the progress bar."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..base.errors import ZooError


def fmt(record: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in record.items()
                     if k not in ("epoch", "lr", "seconds", "backbone_frozen") and isinstance(v, (int, float)))


def epoch_line(record: dict[str, Any], cfg: dict[str, Any], epoch: int, start_epoch: int, elapsed: float,
               improved: bool) -> str:
    """The log's line for an epoch: its numbers, its time, the time left (within --budget), * when best."""
    left = elapsed / (epoch + 1 - start_epoch) * (cfg["epochs"] - epoch - 1)
    if cfg["budget"]:
        left = max(0.0, min(left, cfg["budget"] - elapsed))
    return (f"epoch {epoch + 1}/{cfg['epochs']}  {fmt(record)}  {record['seconds']:.1f}s"
            f" (~{left:.0f}s left){'  *' if improved else ''}")


def progress_bar(total: int, shown: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="batch", disable=None if shown else True, dynamic_ncols=True, leave=False)


class BestReport:
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


class TensorBoardLog:
    """`--tensorboard`: the run's numbers and pictures as TensorBoard events in RUN/tensorboard (rank 0
    only). Tags: step/loss and step/lr every step; train/<name> and val/<name> every epoch (each train_
    and val_ value of metrics.jsonl), epoch/lr; report/<picture> for the PNGs the task's report writes at
    a best epoch (a confusion matrix, predicted boxes). `tensorboard --logdir runs/` shows every run."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ZooError("--tensorboard needs the tensorboard package: pip install 'zoo-core[tensorboard]'") from None
        # purge_step: a resumed run drops what a killed one logged after its last checkpoint
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge_step)

    def epoch(self, epoch: int, steps_per_epoch: int, losses: list[float], lrs: list[float],
              record: dict[str, Any], pictures: list[str]) -> None:
        first = epoch * steps_per_epoch
        for i, (loss, lr) in enumerate(zip(losses, lrs)):
            self.writer.add_scalar("step/loss", loss, first + i)
            self.writer.add_scalar("step/lr", lr, first + i)
        step = epoch + 1  # epochs are counted from 1, as in metrics.jsonl
        for key, value in record.items():
            split, _, name = key.partition("_")
            if split in ("train", "val") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{split}/{name}", value, step)
        self.writer.add_scalar("epoch/lr", record["lr"], step)
        self.pictures(step, pictures)

    def pictures(self, step: int, pictures: list[str]) -> None:
        for path in pictures:
            if str(path).lower().endswith(".png"):
                import numpy as np
                from PIL import Image

                with Image.open(path) as image:
                    self.writer.add_image(f"report/{Path(path).stem}", np.asarray(image.convert("RGB")), step,
                                          dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
