"""`zoo compress`: prune a trained run (model.pruning), then fine-tune it briefly through the normal
trainer, evaluating before, after pruning and after fine-tuning. The pruning itself, and how a pruned
network is rebuilt, are model.pruning's (see its docstring)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base.artifacts import save_weights, write_json
from ..base.errors import ZooError
from ..model.model import build_model
from ..model.pruning import (
    BATCHNORM_IMAGES,
    apply_masks,
    apply_structure,
    magnitude_masks,
    parameter_count,
    prune_channels,
    pruned_structure,
    recalibrate_batchnorm,
    sparsity_of,
)
from ..prediction.export import calibration_batches, example_input
from ..prediction.predictor import load_run
from ..registry.plugins import get_zoo
from ..training.rundir import model_digest, next_run_dir
from ..training.trainer import train


def compress(run_dir: str | Path, sparsity: float, out: str | Path | None = None, epochs: int = 3,
             lr: float | None = None, quiet: bool = True, prune: str = "weights") -> dict[str, Any]:
    """Prune a run to `sparsity` (0..1): prune="weights" sets that share of the weights to zero,
    prune="channels" removes that share of the channels of each backbone layer. Then, fine-tune for `epochs` (0: none) at `lr` (default: the
    run's lr / 10), evaluating before, after pruning and after fine-tuning. Returns the facts; the new
    run is in facts["run_dir"]."""
    if prune not in ("weights", "channels"):
        raise ZooError(f"--prune {prune}: use weights (zero the smallest weights) or channels (remove whole channels)")
    if not 0 < sparsity < 1:
        raise ZooError(f"--sparsity {sparsity}: give the share of {prune} to remove, between 0 and 1 (e.g. 0.5)")
    run = load_run(run_dir, device="cpu")
    task = run.task.name
    broken = next((name for name, t in run.model.state_dict().items()
                   if t.is_floating_point() and not bool(torch.isfinite(t).all())), None)
    if broken is not None:  # checked before a run directory is made: pruning NaN weights can only diverge
        raise ZooError(f"{run_dir}: its weights are not finite ({broken} holds NaN or inf); nothing to compress: "
                       "retrain it (a lower --lr, or --clip-grad)")
    out = Path(out) if out else next_run_dir(task)
    before, _ = run.evaluate(workers=0)
    parameters_before = parameter_count(run.model)
    masks: dict[str, torch.Tensor] = {}
    structure = dict(run.config["model"].get("pruned") or {})
    if prune == "channels":
        reference = build_model(get_zoo(), {k: v for k, v in run.config["model"].items() if k != "pruned"})
        prune_channels(run.model, sparsity, example_input(run.data_config, 2))
        structure = pruned_structure(reference, run.model)
    else:
        masks = magnitude_masks(run.model, sparsity)
        apply_masks(run.model, masks)
    batches = calibration_batches(run)
    if batches is not None:
        recalibrate_batchnorm(run.model, batches(BATCHNORM_IMAGES))
    pruned, _ = run.evaluate(workers=0)
    state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}

    def start_from_pruned(model: nn.Module) -> None:
        if structure:
            apply_structure(model, structure)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ZooError(f"{run_dir}: the pruned weights do not fit the rebuilt model")
        if masks:
            apply_masks(model, masks, keep_zero=True)

    cfg = dict(run.config["train"])
    if epochs > 0:
        settings = {**{k: v for k, v in cfg.items() if k not in ("out", "weights", "resume")},
                    # pruning damaged the backbone most: it learns at the full fine-tuning rate, not a fraction
                    "epochs": epochs, "lr": lr if lr is not None else cfg["lr"] / 10, "mode": "finetune",
                    "backbone_lr_mult": 1.0,
                    "pretrained": False, "cache_features": False, "warmup_epochs": 0, "patience": 0, "out": str(out)}
        # start_from_pruned leaves model.pruned set: the trainer records the shapes in config.json from the
        # first checkpoint on, so an interrupted fine-tuning resumes like any run (zoo train --resume OUT)
        train(task, quiet=quiet, model_init=start_from_pruned, **settings)
        tuned_run = load_run(out, device="cpu")
        tuned, _ = tuned_run.evaluate(workers=0)
        final_model = tuned_run.model
    else:
        out.mkdir(parents=True, exist_ok=True)
        config = json.loads((Path(run_dir) / "config.json").read_text())
        if structure:
            config["model"]["pruned"] = structure
        write_json(out / "config.json", config)
        save_weights(run.model, out / "best.safetensors", {"task": task, "model_digest": model_digest(config["model"])})
        tuned, final_model = pruned, run.model
    final_sparsity = sparsity_of(final_model)
    facts = {"source": str(run_dir), "run_dir": str(out), "sparsity": sparsity, "prune": prune,
             "fine_tune_epochs": epochs, "zero_weights": final_sparsity[1], "prunable_weights": final_sparsity[2],
             "parameters": {"original": parameters_before, "pruned": parameter_count(final_model)},
             "scores": {"original": before, "pruned": pruned, "fine_tuned": tuned}}
    write_json(out / "compress.json", facts)
    return facts
