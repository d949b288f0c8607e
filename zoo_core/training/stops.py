"""When a run stops before its last epoch, each rule a function the loop asks after every epoch: patience
(--patience epochs without the task's primary metric improving) and the time budget (--budget seconds:
no epoch is started that would pass it). Each returns (status, why) to stop, or None."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base.distributed import Dist


def out_of_patience(cfg: dict[str, Any], bad_epochs: int, primary: str) -> tuple[str, str] | None:
    if cfg["patience"] and bad_epochs >= cfg["patience"]:
        return "stopped early", f"early stop: {primary} has not improved for {bad_epochs} epochs"
    return None


def out_of_budget(cfg: dict[str, Any], epoch: int, last_epoch: int, elapsed: float, seconds: float, dist: Dist,
                  run_dir: Path | None) -> tuple[str, str] | None:
    """Stop when the next epoch, taking as long as this one, would pass --budget. Rank 0's clock decides
    for every process (every process asks, in the same epochs)."""
    if cfg["budget"] and epoch + 1 < last_epoch and dist.broadcast(elapsed + seconds > cfg["budget"]):
        return "stopped by --budget", (f"--budget {cfg['budget']:g}s: stopping after epoch {epoch + 1} ({elapsed:.1f}s "
                                       f"used, an epoch takes ~{seconds:.1f}s); go on with: zoo train --resume {run_dir}")
    return None


def stopped_before(cfg: dict[str, Any], resumed: bool, finished: bool, bad_epochs: int) -> bool:
    """A resumed run that had already run out of patience when it was killed (before saying so)."""
    return resumed and not finished and bool(cfg["patience"]) and bad_epochs >= cfg["patience"]
