"""Pruning a trained run, then a short fine-tuning through the normal trainer.

    zoo compress RUN --sparsity 0.5                   ->  a new run directory, the same format as any run
    zoo compress RUN --sparsity 0.3 --prune channels ->  whole channels removed: a smaller, faster network

Magnitude pruning: the smallest weights of every convolution and linear layer (one global threshold across
layers, so layers with many redundant weights give more) are set to zero. Fine-tuning then starts from the
pruned weights in `zoo_core.training.trainer.train` itself (its `model_init`); the pruned weights stay exactly zero
because their gradients are masked: with a zero gradient from the first step, AdamW's and SGD's updates
(weight decay included) leave a zero weight at zero. Zeros do not make dense kernels faster.
After either kind of pruning, BatchNorm statistics are re-estimated on training images before anything
is measured or fine-tuned (recalibrate_batchnorm).

Channel (structured) pruning: the output channels of least L2 norm are removed from every convolution and
linear layer of the backbone, with Torch-Pruning (an optional extra, `pip install 'zoo-core[prune]'`),
whose dependency graph also removes the matching input channels downstream, BatchNorm entries, residual
additions and depthwise groups. The head keeps its outputs (the classes, the boxes). The network is then
no longer the one config.json's options build, so the run records what changed (`model.pruned`: per
module the attributes and tensor shapes that differ) and `build_model` reshapes the network it builds
before the weights are loaded: load_run, zoo eval, export, predict, push and serve rebuild it unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..base.errors import ZooError

PRUNABLE = (nn.Conv2d, nn.Linear)
BATCHNORM_IMAGES = 256  # training images BatchNorm statistics are re-estimated on after pruning


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


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _tensors(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output] if output.is_floating_point() else []
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for o in output for t in _tensors(o)]
    return []


def prune_channels(model: nn.Module, share: float, example: torch.Tensor) -> None:
    """Remove `share` of the output channels of every prunable layer in the model's backbone (least L2
    norm first, per layer, with whatever depends on them), in place. The head's own outputs are kept."""
    try:
        import torch_pruning as tp
    except ImportError:
        raise ZooError("--prune channels needs Torch-Pruning: pip install 'zoo-core[prune]' (or pip install torch-pruning)") from None
    head = getattr(model, "head", None)
    ignored = [m for m in head.modules() if isinstance(m, PRUNABLE)] if head is not None else []
    was_training = model.training
    model.eval()
    pruner = tp.pruner.MetaPruner(
        model, example, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=share,
        # channel counts stay multiples of 8: SIMD kernels (ONNX Runtime's, oneDNN's) run odd widths slower
        ignored_layers=ignored, round_to=8,
        # heads may return dicts and tuples (detect, multitask): every float output is traced
        output_transform=lambda out: sum(t.float().sum() for t in _tensors(out)))
    pruner.step()
    model.train(was_training)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches) -> int:
    """Re-estimate every BatchNorm's running mean and variance on `batches` (the model otherwise in eval
    mode): pruning changes what each layer receives, and statistics from before it make the pruned
    network look far worse than it is (and give fine-tuning a worse start). Returns the images seen."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over all batches, not an exponential one
        m.train()
    seen = 0
    for x in batches:
        model(x)
        seen += len(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return seen


def _shape_attributes(module: nn.Module) -> dict[str, Any]:
    """A module's plain size attributes (in_channels, out_features, groups, num_features, ...)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(module).items()
            if not k.startswith("_") and (isinstance(v, int) and not isinstance(v, bool) or
                                          isinstance(v, tuple) and all(isinstance(x, int) for x in v))}


def pruned_structure(reference: nn.Module, pruned: nn.Module) -> dict[str, dict[str, Any]]:
    """{module name: {"attributes": {...}, "tensors": {name: shape}}} for every module of `pruned` that
    differs from `reference` (the network the config builds): what apply_structure needs to rebuild it."""
    reference_modules = dict(reference.named_modules())
    structure: dict[str, dict[str, Any]] = {}
    for name, module in pruned.named_modules():
        ref = reference_modules.get(name)
        if ref is None:
            raise ZooError(f"pruning added a module ({name}); this network cannot be recorded")
        old, new = _shape_attributes(ref), _shape_attributes(module)
        attributes = {k: v for k, v in new.items() if old.get(k) != v}
        own = {**dict(module.named_parameters(recurse=False)), **dict(module.named_buffers(recurse=False))}
        ref_own = {**dict(ref.named_parameters(recurse=False)), **dict(ref.named_buffers(recurse=False))}
        tensors = {k: list(t.shape) for k, t in own.items()
                   if t is not None and (k not in ref_own or ref_own[k] is None or ref_own[k].shape != t.shape)}
        if attributes or tensors:
            structure[name] = {"attributes": attributes, "tensors": tensors}
    return structure


def apply_structure(model: nn.Module, structure: dict[str, dict[str, Any]]) -> None:
    """Reshape a freshly built network as a pruned run recorded it (pruned_structure): size attributes
    set, parameters and buffers replaced by uninitialised tensors of the recorded shapes, to be filled by
    the run's weights."""
    modules = dict(model.named_modules())
    for name, change in structure.items():
        module = modules.get(name)
        if module is None:
            raise ZooError(f"model.pruned names a module the network does not have ({name})")
        for key, value in change.get("attributes", {}).items():
            setattr(module, key, tuple(value) if isinstance(value, list) else value)
        for key, shape in change.get("tensors", {}).items():
            current = getattr(module, key)
            if key in module._parameters:
                module._parameters[key] = nn.Parameter(torch.empty(shape, dtype=current.dtype),
                                                       requires_grad=current.requires_grad)
            else:
                module._buffers[key] = torch.empty(shape, dtype=current.dtype)
    model.pruned = structure  # the trainer writes it into the run's config.json (model.pruned)
