"""Run configuration: built-in defaults < task recipe < dataset recipe < --config TOML < flags."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from .errors import ZooError, did_you_mean

# Every hyper-parameter zoo knows, with its default. Component options live in *_options tables.
DEFAULTS: dict[str, Any] = {
    # what to train
    "data": None,              # a path: folder, CSV, ... (None: the task's embedded dataset)
    "dataset": None,           # dataset component (None: inferred from `data`)
    "backbone": "resnet18",
    "head": "linear",
    "loss": "cross-entropy",
    "pretrained": True,
    "weights": None,           # local backbone weights (.safetensors or .pth)
    "image_size": None,        # override the backbone's input size
    "augment": "standard",     # standard | light | none
    "val_fraction": 0.2,
    "cache_features": False,   # frozen mode: run the backbone once per image, then train the head on its features
    # transfer learning
    "mode": "staged",          # frozen | finetune | staged
    "freeze_epochs": 2,        # staged: epochs with the backbone frozen before unfreezing
    "backbone_lr_mult": 0.1,   # backbone learning rate = lr * this once unfrozen
    # optimisation
    "epochs": 10,
    "batch_size": 32,
    "lr": 1e-3,
    "weight_decay": 0.01,
    "optimizer": "adamw",      # adamw | sgd
    "momentum": 0.9,
    "schedule": "cosine",      # cosine | step | onecycle | constant
    "warmup_epochs": 0.0,
    "step_size": 7,            # step schedule: epochs between decays
    "gamma": 0.1,              # step schedule: decay factor
    "clip_grad": 0.0,          # max gradient norm; 0 = off
    "accum_steps": 1,          # gradient accumulation
    "patience": 0,             # early stopping: epochs without improvement; 0 = off
    # machinery
    "seed": 0,
    "device": "auto",          # auto | cpu | cuda | cuda:1 | mps
    "amp": True,               # mixed precision on CUDA
    "amp_dtype": "auto",       # auto (bfloat16 where supported, else float16 + grad scaler) | bfloat16 | float16
    "channels_last": True,     # on CUDA
    "workers": -1,             # data-loading processes; -1 = auto
    "out": None,               # run directory (default runs/<task>-NNN)
    "dataset_options": {},
    "backbone_options": {},
    "head_options": {},
    "loss_options": {},
}

CHOICES = {
    "mode": ("frozen", "finetune", "staged"),
    "optimizer": ("adamw", "sgd"),
    "schedule": ("cosine", "step", "onecycle", "constant"),
    "augment": ("standard", "light", "none"),
    "amp_dtype": ("auto", "bfloat16", "float16"),
}
COMPONENT_TABLES = ("dataset", "backbone", "head", "loss")
NULLABLE = {k for k, v in DEFAULTS.items() if v is None}


def _coerce(key: str, value: Any, where: str) -> Any:
    default = DEFAULTS[key]
    try:
        if key.endswith("_options"):
            if not isinstance(value, dict):
                raise TypeError
            return dict(value)
        if value is None or (key in NULLABLE and value in ("", "none", "None")):
            if key in NULLABLE:
                return None
            raise TypeError
        if key in NULLABLE:
            return int(value) if key == "image_size" else str(value)
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes", "on"):
                    return True
                if value.lower() in ("false", "0", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
        value = str(value)
    except (TypeError, ValueError):
        kind = "a table" if key.endswith("_options") else type(default).__name__ if default is not None else "a value"
        raise ZooError(f"{where}: '{key}' must be {kind}, got {value!r}") from None
    if key in CHOICES and value not in CHOICES[key]:
        raise ZooError(f"{where}: '{key}' must be one of {', '.join(CHOICES[key])}, got '{value}'")
    return value


def normalise(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate a partial config (from a TOML file, a recipe or flags); component tables are flattened:
    [head] name = "mlp", dropout = 0.3  ->  head = "mlp", head_options = {dropout = 0.3}."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = key.replace("-", "_")
        if key in COMPONENT_TABLES and isinstance(value, dict):
            value = dict(value)
            if "name" in value:
                out[key] = _coerce(key, value.pop("name"), where)
            out.setdefault(f"{key}_options", {}).update(value)
            continue
        if key not in DEFAULTS:
            raise ZooError(f"{where}: unknown setting '{key}'{did_you_mean(key, DEFAULTS)}")
        value = _coerce(key, value, where)
        if key.endswith("_options"):
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return out


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win; option tables merge key by key, except that changing a component drops the
    options given for the previous one (an MLP's `hidden` means nothing to a linear head)."""
    cfg = copy.deepcopy(DEFAULTS)
    for layer in layers:
        for key, value in layer.items():
            if key in COMPONENT_TABLES and value != cfg.get(key) and f"{key}_options" not in layer:
                cfg[f"{key}_options"] = {}
            if key.endswith("_options"):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
    return cfg


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ZooError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ZooError(f"{path}: not valid TOML ({e})") from None
    return normalise(raw, str(path))


def parse_set(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """--set key=value (value in TOML syntax, bare words as strings): 'epochs=5', 'head.dropout=0.3'."""
    raw: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ZooError(f"--set {item!r}: expected key=value, e.g. --set head.dropout=0.3")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        component, dot, option = key.partition(".")
        if dot:
            if component not in COMPONENT_TABLES:
                raise ZooError(f"--set {item!r}: '{component}' is not one of {', '.join(COMPONENT_TABLES)}")
            raw.setdefault(component, {})[option] = value
        else:
            raw[key] = value
    return normalise(raw, "--set")
