"""What a network is made of: a layer table with output shapes and trainable/frozen parameter counts
(torchsummary's, Keras' model.summary()), and the feature maps of chosen layers for one image
(the textbook's "visualising intermediate activations"). Used by `zoo inspect`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base.errors import ZooError, did_you_mean
from ..contract.components import DataConfig


@dataclass
class Row:
    name: str  # module path as in named_modules(), e.g. backbone.model.conv_stem
    type: str
    level: int  # depth in the table; the child of a single-child wrapper shares the wrapper's level
    output: Any  # shape of the first call's output ([1, C, H, W]; a list or dict of them), None if never called
    params: int  # in the module's subtree
    trainable: int
    call: int | None = None  # order of the first call during the pass: shallow to deep

    @property
    def is_map(self) -> bool:
        """Output is one (B, C, H, W) tensor: a feature map that can be drawn."""
        return _is_map(self.output)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Summary:
    rows: list[Row]
    total: int  # shared parameters counted once
    trainable: int
    input_size: tuple[int, ...]  # C, H, W
    param_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def frozen(self) -> int:
        return self.total - self.trainable

    @property
    def param_mb(self) -> float:
        return self.param_bytes / 1024 ** 2

    def to_dict(self) -> dict[str, Any]:
        return {"input_size": list(self.input_size), "total": self.total, "trainable": self.trainable,
                "frozen": self.frozen, "param_mb": round(self.param_mb, 4), "rows": [r.to_dict() for r in self.rows]}


# ------------------------------------------------------------------------------------------- walking

def _is_map(shape: Any) -> bool:
    return isinstance(shape, list) and len(shape) == 4 and all(isinstance(v, int) for v in shape)


def _shape(out: Any) -> Any:
    """A JSON-able description of a module's output: tensors by their shape, containers element-wise."""
    if isinstance(out, torch.Tensor):
        return list(out.shape)
    if isinstance(out, (tuple, list)):
        return [_shape(o) for o in out]
    if isinstance(out, dict):
        return {str(k): _shape(v) for k, v in out.items()}
    return type(out).__name__


def _counts(params: Iterator[nn.Parameter]) -> tuple[int, int, int]:
    """(total, trainable, bytes); lazy parameters that never saw an input have no size yet."""
    total = trainable = size = 0
    for p in params:
        if isinstance(p, nn.parameter.UninitializedParameter):
            continue
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
        size += p.numel() * p.element_size()
    return total, trainable, size


def _is_wrapper(module: nn.Module) -> bool:
    """A container that only holds one module (TimmBackbone.model, a one-block Sequential)."""
    return len(list(module.children())) == 1 and not any(True for _ in module.parameters(recurse=False))


def _levels(model: nn.Module) -> dict[str, int]:
    """Table depth of each module. The child of a wrapper shares the wrapper's level, so that siblings
    line up (EfficientNet's one-block stage 0 beside its two-block stage 1) and a run's backbone.model.*
    lines up with a bare backbone's model.*."""
    modules = dict(model.named_modules())
    levels = {"": 0}
    for name in modules:
        if name:
            parent = name.rpartition(".")[0]
            levels[name] = levels[parent] + (0 if parent and _is_wrapper(modules[parent]) else 1)
    return levels


def _device_of(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _run(model: nn.Module, x: torch.Tensor, hook: Callable[[str], Callable], names: list[str]) -> None:
    """One forward pass in eval mode without gradients, `hook(name)` on each named module. Every
    module's train/eval flag is put back afterwards: a ZooModel with a frozen backbone trains with the
    backbone in eval mode, so a single model.train(was) would not restore it."""
    modules = dict(model.named_modules())
    modes = {m: m.training for m in model.modules()}
    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    except (RuntimeError, ValueError, TypeError, AssertionError) as e:  # e.g. an input size the net cannot take
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ZooError(f"the forward pass on an input of {list(x.shape)} failed ({first}); try another --image-size") from None
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training


# ------------------------------------------------------------------------------------------- summary

def summarise(model: nn.Module, input_size: tuple[int, ...], depth: int = 3) -> Summary:
    """Rows for every module down to `depth` levels, with the shape of its output on one zero image
    of `input_size` (C, H, W), and the parameters (all, trainable) in its subtree."""
    seen: dict[str, tuple[int, Any]] = {}

    def hook(name: str) -> Callable:
        def record(module, args, output):
            if name not in seen:  # a module called twice (shared, or in a loop) shows its first call
                seen[name] = (len(seen), _shape(output))
        return record

    names = [n for n, _ in model.named_modules()]
    _run(model, torch.zeros(1, *input_size, device=_device_of(model)), hook, names)
    # counted after the pass: lazy layers have their size only now
    levels = _levels(model)
    rows = []
    for name, module in model.named_modules():
        if name and levels[name] <= depth:
            total, trainable, _ = _counts(module.parameters())
            call, output = seen.get(name, (None, None))
            rows.append(Row(name, type(module).__name__, levels[name], output, total, trainable, call))
    total, trainable, size = _counts(model.parameters())  # parameters() yields a shared one once
    return Summary(rows, total, trainable, tuple(input_size), size)


def format_shape(shape: Any) -> str:
    if shape is None:
        return "-"
    if isinstance(shape, dict):
        return ", ".join(f"{k}: {format_shape(v)}" for k, v in shape.items())
    if isinstance(shape, list) and all(isinstance(v, int) for v in shape):
        return f"[{', '.join(map(str, shape))}]"
    if isinstance(shape, list):
        return ", ".join(format_shape(v) for v in shape)
    return str(shape)


def format_table(summary: Summary, max_shape: int = 44) -> str:
    """torchsummary's table: layer, type, output shape, parameters, trainable ones; totals below."""
    head = ("Layer", "Type", "Output shape", "Params", "Trainable")
    shown = {r.name for r in summary.rows}
    body = []
    for r in summary.rows:
        shape = format_shape(r.output)
        shape = shape if len(shape) <= max_shape else shape[:max_shape - 1] + "…"
        parts = r.name.split(".")
        indent = sum(".".join(parts[:i]) in shown for i in range(1, len(parts)))  # rows above it in the tree
        body.append(("  " * indent + r.name, r.type, shape, f"{r.params:,}", f"{r.trainable:,}"))
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        left = "  ".join(c.ljust(w) for c, w in zip(cells[:3], widths))
        right = "  ".join(c.rjust(w) for c, w in zip(cells[3:], widths[3:]))
        return f"{left}  {right}"

    rule = "=" * len(line(head))
    footer = [
        f"Total params: {summary.total:,}",
        f"Trainable params: {summary.trainable:,}",
        f"Frozen params: {summary.frozen:,}",
        f"Input shape: {tuple(summary.input_size)}",
        f"Params size (MB): {summary.param_mb:.2f}",
    ]
    return "\n".join([line(head), rule, *map(line, body), rule, *footer])


# -------------------------------------------------------------------------------------- feature maps

def default_layers(summary: Summary, k: int = 4) -> list[str]:
    """Up to k layers of the table that give feature maps larger than 1x1, shallow to deep: the first,
    the last, and between them the last layer at each other resolution (a stage's output), evenly spread.

    Only the deepest rows shown count, so a container and its last child (the same tensor) are never
    both picked."""
    shown = [r.name for r in summary.rows]
    leaves = [r for r in summary.rows if r.is_map and r.call is not None and r.output[2] * r.output[3] > 1
              and not any(n.startswith(r.name + ".") for n in shown)]  # a 1x1 map (pooled) shows nothing
    maps = sorted(leaves, key=lambda r: r.call)
    if len(maps) <= k:
        return [r.name for r in maps]
    first, last = maps[0], maps[-1]
    def size(r: Row) -> tuple[int, ...]:
        return tuple(r.output[2:])

    stage_ends = [r for r, nxt in pairwise(maps) if size(r) != size(nxt)]
    middle = [r for r in stage_ends if size(r) not in (size(first), size(last))]
    picks = [first, last, *_evenly(middle, k - 2)]
    if len(picks) < k:  # fewer resolutions than slots: fill evenly from the rest
        picks += _evenly([r for r in maps if r not in picks], k - len(picks))
    return [r.name for r in sorted(picks, key=lambda r: r.call)]


def _evenly(items: list, n: int) -> list:
    if len(items) <= n:
        return list(items)
    if n == 1:
        return [items[len(items) // 2]]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def find_layer(model: nn.Module, name: str, examples: list[str] | None = None) -> str:
    """The module called `name`, or the one module whose path ends in '.' + name (blocks.2 finds
    backbone.model.blocks.2)."""
    names = [n for n, _ in model.named_modules() if n]
    if name in names:
        return name
    hits = [n for n in names if n.endswith("." + name)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        more = f", ... ({len(hits)} in all)" if len(hits) > 4 else ""
        raise ZooError(f"layer '{name}' is ambiguous: it ends {', '.join(hits[:4])}{more}; give more of its path")
    hint = did_you_mean(name, names)
    if not hint:
        shown = _evenly(examples or names, 4)
        hint = f"; layers are named like {', '.join(shown)} (zoo inspect TARGET lists them)"
    raise ZooError(f"no layer '{name}'{hint}")


def capture(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """The first output of each named module for the batch x, as (C, H, W) float tensors on the CPU.
    A layer that is not called, or whose output is not a feature map, is a ZooError."""
    kept: dict[str, Any] = {}

    def hook(name: str) -> Callable:
        def keep(module, args, output):
            if name not in kept:
                kept[name] = output.detach()[0].float().cpu() if isinstance(output, torch.Tensor) and output.dim() == 4 \
                    else _shape(output)
        return keep

    _run(model, x.to(_device_of(model)), hook, names)
    for name in names:
        if name not in kept:
            raise ZooError(f"layer '{name}' is not called in the forward pass: it has no feature map to draw")
        if not isinstance(kept[name], torch.Tensor):
            raise ZooError(f"layer '{name}' gives {format_shape(kept[name])}, not a feature map (B, C, H, W)")
    return {n: kept[n] for n in names}


def feature_maps(model: nn.Module, data_config: DataConfig, image: str | Path,
                 layers: list[str], fit: str = "crop") -> tuple[Any, dict[str, torch.Tensor]]:
    """(the image as the model sees it, fitted to its input as at prediction, as an H x W [x 3] array in
    0..1; {layer: its (C, H, W) feature map}) for one image file."""
    from ..data.images import open_image
    from ..data.transforms import Preprocess

    x = Preprocess(data_config, fit)({"image": open_image(image, data_config.channels)})["image"]
    maps = capture(model, x.unsqueeze(0), layers)
    mean = torch.tensor(data_config.mean).view(-1, 1, 1)
    std = torch.tensor(data_config.std).view(-1, 1, 1)
    shown = (x * std + mean).clamp(0, 1)  # undo the normalisation, keep the resize and crop
    return (shown[0] if shown.shape[0] == 1 else shown.permute(1, 2, 0)).numpy(), maps
