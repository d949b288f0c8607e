"""A run's thread counts, applied (the decision itself is torch-free: zoo_core/base/cpus.py).

The set-up (setup.py) calls `choose_threads` once the model is built, before any feature is computed, and
`RunThreads.training()` once the loaders are about to run the epochs: computing cached features runs
the backbone (large), training on them only the head (small)."""

from __future__ import annotations

from typing import Any

import torch

from ..base.cpus import Plan, affinity_count, plan_threads, usable_cpus

_applied: list[int] = []  # the counts zoo set in this process, to tell them from the user's own


def counted_flops(fn) -> tuple[Any, float | None]:
    """(what fn() returns, the floating-point operations it took); None when they cannot be counted."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = fn()
        return out, float(counter.get_total_flops())
    except Exception:  # an exotic model: unknown work counts as large
        return None, None


def _user_threads() -> int | None:
    """A count set with torch.set_num_threads before the run: neither torch's default (one per CPU of the
    affinity mask, what OpenMP starts with) nor one zoo set."""
    now = torch.get_num_threads()
    default = affinity_count()
    if default is None or now == default or now in _applied:
        return None
    return now


class RunThreads:
    def __init__(self, plan: Plan):
        self.plan = plan

    def describe(self) -> str:
        return self.plan.describe()

    @staticmethod
    def _set(n: int | None) -> None:
        if n is not None and n != torch.get_num_threads():
            torch.set_num_threads(n)
        if n is not None:
            _applied.append(n)

    def features(self) -> None:
        self._set(self.plan.features if self.plan.features is not None else self.plan.train)

    def training(self) -> None:
        self._set(self.plan.train)


def choose_threads(model, cfg: dict[str, Any], machine, image_workers: int) -> RunThreads:
    """The run's plan, applied at once for what comes first (computing features, or training).
    `image_workers`: the loader processes reading images for this run. The work is counted on one blank
    image (the backbone, then the head on its features) and scaled to the batch."""
    if machine.device.type != "cpu":  # a GPU does the work; the CPU threads only feed it
        return RunThreads(Plan(None, None, f"device {machine.device.type}, torch's defaults"))
    B = cfg["batch_size"]
    image = torch.zeros(1, *model.backbone.data_config.input_size)
    was_training = model.training
    model.eval()
    try:
        features, backbone_flops = counted_flops(lambda: model.features(image))
        _, head_flops = counted_flops(lambda: model.head(features)) if features is not None else (None, None)
    finally:
        model.train(was_training)
    whole = backbone_flops + head_flops if backbone_flops is not None and head_flops is not None else None
    scale = (lambda f: None if f is None else f * B)
    if cfg["cache_features"] and cfg["mode"] in ("frozen", "staged"):
        frozen = cfg["mode"] == "frozen"  # staged: the head epochs are few, the unfrozen ones train everything
        plan = plan_threads(usable_cpus(), train_flops=scale(head_flops if frozen else whole),
                            train_workers=max(0, cfg["workers"]) if frozen else image_workers,
                            feature_flops=scale(backbone_flops) if backbone_flops is not None else float("inf"),
                            feature_workers=image_workers, user_threads=_user_threads())
    else:
        plan = plan_threads(usable_cpus(), train_flops=scale(whole), train_workers=image_workers,
                            user_threads=_user_threads())
    run = RunThreads(plan)
    run.features()
    return run
