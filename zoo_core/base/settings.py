"""Every run setting zoo knows, declared once: name, type, default, allowed values or range, and help.

The `zoo train` flags, the TOML checks, `--set` and the README's settings table are all derived from
this list, so a default or a range is changed in one place. Component names default to None: the
task (and its dataset's recipe) fill them in; the core knows no task's components.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    type: type  # bool, int, float or str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    min: float | None = None  # inclusive bounds
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    nullable: bool = False  # None means "let the task or the data decide"
    group: str = "training"
    flag: bool = True  # a --flag of zoo train (False: TOML/--set only)
    short: str = ""  # a one-letter alias ("k" for -k), for options tasks declare
    # A task's predict option that names a file or folder on the machine (an output folder, say): given on
    # the command line, in Python or when `zoo serve` starts, never by a request ("a request brings bytes").
    path: bool = False
    # A task's predict option a request to `zoo serve` may set (?top_k=5). Only bounded ones qualify:
    # choices, or a min and a max for numbers, or a bool; never a path (see request_safe).
    request: bool = False

    def __post_init__(self):
        if self.path and self.request:
            raise ValueError(f"option '{self.name}' names a path, so a request can never set it: drop request=True")

    @property
    def request_safe(self) -> bool:
        """Marked safe for requests, typed and bounded: what `zoo serve` takes from a query string."""
        if not self.request or self.path:
            return False
        if self.type is bool or self.choices:
            return True
        return self.type in (int, float) and self.min is not None and self.max is not None

    @property
    def flag_name(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, where: str) -> Any:
        """The value coerced to this setting's type, or a one-line ZooError naming it."""
        from .errors import ZooError

        label = self.flag_name if where == "flags" else f"{where}: '{self.name}'"
        if value is None or (self.nullable and value in ("", "none", "None")):
            if self.nullable:
                return None
            raise ZooError(f"{label} needs a value ({self.help})")
        try:
            value = coerce(value, self.type)
        except (TypeError, ValueError):
            raise ZooError(f"{label} must be {_type_name(self.type)}, got {value!r}") from None
        if self.path and "\x00" in value:
            raise ZooError(f"{label} must be a path without NUL bytes, got {value!r}")
        if self.choices and value not in self.choices:
            raise ZooError(f"{label} must be one of {', '.join(self.choices)}, got '{value}'")
        if self.type in (int, float):
            if not math.isfinite(value):
                raise ZooError(f"{label} must be a finite number, got {value}")
            low_bad = self.min is not None and (value <= self.min if self.min_exclusive else value < self.min)
            high_bad = self.max is not None and (value >= self.max if self.max_exclusive else value > self.max)
            if low_bad or high_bad:
                raise ZooError(f"{label} must be {self.range_text()}, got {value}")
        return value

    def range_text(self) -> str:
        lo = None if self.min is None else f"{'>' if self.min_exclusive else '>='} {_num(self.min)}"
        hi = None if self.max is None else f"{'<' if self.max_exclusive else '<='} {_num(self.max)}"
        return " and ".join(x for x in (lo, hi) if x) or "any number"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _type_name(t: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(t, t.__name__)


def coerce(value: Any, t: type) -> Any:
    """A TOML, flag or --set value as type `t`: '3' -> 3 for int, 'yes' -> True for bool; 2.5 is no int."""
    if t is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError
    if t is int:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            return int(value)
        return int(value)
    if t is float:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    if t is str:
        if isinstance(value, (dict, list)):
            raise TypeError
        return str(value)
    return value


S = Setting
SETTINGS: tuple[Setting, ...] = (
    # --- what to train
    S("data", str, None, "Your data: a folder, a CSV, or another format the task reads (none: the task's embedded dataset).",
      nullable=True, group="data"),
    S("dataset", str, None, "Dataset component to read --data with (default: inferred from --data).", nullable=True, group="data"),
    S("backbone", str, None, "Backbone: a timm name (resnet18), torchvision:NAME, or a small net (cnn2); default: the task's.",
      nullable=True, group="model"),
    S("head", str, None, "Head component (default: the task's; zoo list shows them).", nullable=True, group="model"),
    S("loss", str, None, "Loss component (default: the task's).", nullable=True, group="model"),
    S("pretrained", bool, True, "Start from pretrained weights (default) or random.", group="model"),
    S("weights", str, None, "Backbone weights file (.safetensors, or a .pth state dict).", nullable=True, group="model"),
    S("image_size", int, None, "Override the backbone's input size (pixels).", nullable=True, min=8, max=4096, group="data"),
    S("augment", str, "standard", "Training augmentation: standard (crops, flips), light (small shifts, no flip) or none.",
      choices=("standard", "light", "none"), group="data"),
    S("val_fraction", float, 0.2, "Share held out for validation when the data has no val split.", min=0.0, max=1.0,
      min_exclusive=True, max_exclusive=True, group="data"),
    S("cache_features", bool, False, "Frozen (and staged, until it unfreezes): backbone features computed once, kept "
      "on disk, the head trained on them.",
      group="data"),
    S("cache_limit_gb", float, 4.0, "Largest feature set --cache-features may hold in memory for a run (GiB).", min=0.0,
      min_exclusive=True, group="data", flag=False),
    # --- transfer learning
    S("mode", str, "staged", "frozen: head only; finetune: everything; staged: head first, then unfreeze.",
      choices=("frozen", "finetune", "staged"), group="transfer"),
    S("freeze_epochs", int, 2, "staged: epochs with the backbone frozen before it is unfrozen.", min=0, group="transfer"),
    S("backbone_lr_mult", float, 0.1, "Backbone learning rate as a fraction of --lr once unfrozen.", min=0.0, group="transfer"),
    # --- optimisation
    S("epochs", int, 10, "Epochs to train.", min=1, max=100_000),
    S("batch_size", int, 32, "Images per batch.", min=1, max=1_000_000),
    S("lr", float, 1e-3, "Learning rate of the head.", min=0.0, min_exclusive=True, max=100.0),
    S("weight_decay", float, 0.01, "Weight decay.", min=0.0),
    S("optimizer", str, "adamw", "adamw, sgd (momentum, Nesterov), or lbfgs (a linear head on cached features fitted "
      "full-batch, L2 = weight decay, no --lr: zoo_core/training/full_batch.py).", choices=("adamw", "sgd", "lbfgs")),
    S("momentum", float, 0.9, "SGD momentum.", min=0.0, max=1.0),
    S("schedule", str, "cosine", "Learning-rate schedule.", choices=("cosine", "step", "onecycle", "constant")),
    S("warmup_epochs", float, 0.0, "Linear warm-up, in epochs.", min=0.0),
    S("step_size", int, 7, "step schedule: epochs between decays.", min=1),
    S("gamma", float, 0.1, "step schedule: decay factor.", min=0.0, min_exclusive=True, max=1.0),
    S("clip_grad", float, 0.0, "Clip gradients to this norm (0: off).", min=0.0),
    S("accum_steps", int, 1, "Accumulate gradients over this many batches.", min=1, max=10_000),
    S("patience", int, 0, "Stop after this many epochs without improvement (0: off).", min=0),
    S("budget", float, 0.0, "Seconds the run may take from its set-up on (not Python's start-up): it stops after the "
      "last epoch that fits, keeping the best one; --resume goes on (0: no limit).", min=0.0),
    # --- machinery
    S("seed", int, 0, "Seed for the split, initialisation, shuffling and augmentation.", min=0, max=2**63 - 1,
      group="machine"),
    S("device", str, "auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.", group="machine"),
    S("amp", bool, True, "Mixed precision on CUDA.", group="machine"),
    S("amp_dtype", str, "auto", "auto: bfloat16 where the GPU supports it, else float16 with a gradient scaler.",
      choices=("auto", "bfloat16", "float16"), group="machine"),
    S("channels_last", bool, True, "channels_last memory format on CUDA and CPU (faster convolutions).", group="machine"),
    S("workers", int, -1, "Data-loading processes (-1: auto).", min=-1, max=256, group="machine"),
    S("out", str, None, "Run directory (default runs/<task>-NNN).", nullable=True, group="machine"),
    # --- caches and the CPU default (zoo_core/training/cache.py, features.py)
    S("cache_disk_gb", float, 10.0, "Largest size of zoo's on-disk cache of features and decoded images ($ZOO_CACHE); "
      "least recently used files are evicted beyond it; 0: nothing on disk.", min=0.0, group="data", flag=False),
    S("image_cache", str, "auto", "Decoded-image cache: auto (memory up to image_cache_gb, then disk), memory, disk or off.",
      choices=("auto", "memory", "disk", "off"), group="data"),
    S("image_cache_gb", float, 2.0, "Memory the decoded-image cache may hold per process (GiB).", min=0.0, group="data",
      flag=False),
    S("cpu_recipe", bool, True, "On a CPU, train --data with a frozen backbone on cached features unless --mode or "
      "--cache-features is given.", group="transfer"),
    # --- speed and training tools (multi-process training is `zoo train --nproc N`, a launch option)
    S("compile", bool, False, "torch.compile the model (a slower first epoch, faster later ones on a GPU).",
      group="machine"),
    S("tensorboard", bool, False, "Also log to TensorBoard (RUN/tensorboard; pip install 'zoo-core[tensorboard]').",
      group="machine"),
)
del S

# What cpu_recipe sets on a CPU (zoo_core/training/features.py: apply_cpu_recipe); the task's epochs stay. The
# optimizer only where no layer chose one, and only for a linear head (zoo_core/training/full_batch.py: else AdamW).
CPU_RECIPE = {"mode": "frozen", "cache_features": True, "optimizer": "lbfgs"}

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
COMPONENTS = ("dataset", "backbone", "head", "loss")  # each has an options table: [head] dropout = 0.3


def markdown_table() -> str:
    """The README's settings table (`python -m zoo_core.base.settings`; a test keeps the README in sync)."""
    lines = ["| setting | flag | default | allowed | what |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        allowed = ", ".join(s.choices) if s.choices else (s.range_text() if s.type in (int, float) else "")
        allowed = allowed.replace(" and ", ", ").replace("any number", "")
        if s.type is bool:
            allowed = "true, false"
        default = "—" if s.default is None else ("true" if s.default is True else "false" if s.default is False else s.default)
        flag = f"`{s.flag_name}`" if s.flag else "`--set`"
        lines.append(f"| `{s.name}` | {flag} | {default} | {allowed} | {s.help.replace('|', '/')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
