"""Magnitude pruning of a trained run, then a short fine-tuning through the normal trainer.

    zoo compress RUN --sparsity 0.5      ->  a new run directory, the same format as any run

The smallest weights of every convolution and linear layer (one global threshold across layers, so
layers with many redundant weights give more) are set to zero. Fine-tuning then starts from the pruned
weights in `zoo_core.trainer.train` itself (its `model_init`); the pruned weights stay exactly zero
because their gradients are masked: with a zero gradient from the first step, AdamW's and SGD's updates
(weight decay included) leave a zero weight at zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ZooError

PRUNABLE = (nn.Conv2d, nn.Linear)


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(f"{name}.weight", m.weight) for name, m in model.named_modules() if isinstance(m, PRUNABLE)]


@torch.no_grad()
def magnitude_masks(model: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """{weight name: mask} keeping the largest |w| of all prunable weights together, `sparsity` of them zero."""
    weights = prunable_weights(model)
    if not weights:
        raise ZooError("the model has no convolution or linear layer to prune")
    magnitudes = torch.cat([w.detach().abs().flatten().float() for _, w in weights])
    k = int(sparsity * magnitudes.numel())
    if k == 0:
        return {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights}
    threshold = magnitudes.kthvalue(k).values
    return {name: w.detach().abs() > threshold for name, w in weights}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor], keep_zero: bool = False) -> None:
    """Zero the pruned weights; with keep_zero, also mask their gradients so training keeps them zero."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        p = params[name]
        mask = mask.to(p.device, p.dtype)
        p.mul_(mask)
        if keep_zero:
            p.register_hook(lambda grad, m=mask: grad * m)


def sparsity_of(model: nn.Module) -> tuple[float, int, int]:
    """(share of zero weights among prunable ones, zero weights, all prunable weights)."""
    weights = [w for _, w in prunable_weights(model)]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / max(1, total), zeros, total


def compress(run_dir: str | Path, sparsity: float, out: str | Path | None = None, epochs: int = 3,
             lr: float | None = None, quiet: bool = True) -> dict[str, Any]:
    """Prune a run to `sparsity` (0..1), fine-tune for `epochs` (0: none) at `lr` (default: the run's lr / 10),
    evaluating before, after pruning and after fine-tuning. Returns the facts; the new run is in facts["run_dir"]."""
    from .api import load_run
    from .artifacts import write_json
    from .rundir import next_run_dir
    from .trainer import train

    if not 0 < sparsity < 1:
        raise ZooError(f"--sparsity {sparsity}: give the share of weights to remove, between 0 and 1 (e.g. 0.5)")
    run = load_run(run_dir, device="cpu")
    task = run.task.name
    out = Path(out) if out else next_run_dir(task)
    before, _ = run.evaluate(workers=0)
    masks = magnitude_masks(run.model, sparsity)
    apply_masks(run.model, masks)
    pruned, _ = run.evaluate(workers=0)
    state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}

    def start_from_pruned(model: nn.Module) -> None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ZooError(f"{run_dir}: the pruned weights do not fit the rebuilt model")
        apply_masks(model, masks, keep_zero=True)

    cfg = dict(run.config["train"])
    if epochs > 0:
        settings = {**{k: v for k, v in cfg.items() if k not in ("out", "weights", "resume")},
                    "epochs": epochs, "lr": lr if lr is not None else cfg["lr"] / 10, "mode": "finetune",
                    "pretrained": False, "cache_features": False, "warmup_epochs": 0, "patience": 0, "out": str(out)}
        train(task, quiet=quiet, model_init=start_from_pruned, **settings)
        tuned_run = load_run(out, device="cpu")
        tuned, _ = tuned_run.evaluate(workers=0)
        final_sparsity = sparsity_of(tuned_run.model)
    else:
        from .artifacts import save_weights

        out.mkdir(parents=True, exist_ok=True)
        import shutil

        shutil.copy(Path(run_dir) / "config.json", out / "config.json")
        save_weights(run.model, out / "best.safetensors", {"task": task})
        tuned, final_sparsity = pruned, sparsity_of(run.model)
    facts = {"source": str(run_dir), "run_dir": str(out), "sparsity": sparsity, "fine_tune_epochs": epochs,
             "zero_weights": final_sparsity[1], "prunable_weights": final_sparsity[2],
             "scores": {"original": before, "pruned": pruned, "fine_tuned": tuned}}
    write_json(out / "compress.json", facts)
    return facts
