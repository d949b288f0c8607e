"""Run configuration: built-in defaults < task recipe < dataset recipe < --config TOML < flags.

A config is a flat dict of the settings in settings.py plus one `<component>_options` table per
component (dataset, backbone, head, loss). Every layer is checked against settings.py on the way in."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import tomllib

from .errors import ZooError, did_you_mean
from .settings import BY_NAME, COMPONENTS

OPTION_TABLES = tuple(f"{c}_options" for c in COMPONENTS)
DEFAULTS: dict[str, Any] = {**{s.name: s.default for s in BY_NAME.values()}, **{t: {} for t in OPTION_TABLES}}


def normalise(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate a partial config (from a TOML file, a recipe or flags); component tables are flattened:
    [head] name = "mlp", dropout = 0.3  ->  head = "mlp", head_options = {dropout = 0.3}."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = key.replace("-", "_")
        if key in COMPONENTS and isinstance(value, dict):
            value = dict(value)
            if "name" in value:
                out[key] = BY_NAME[key].check(value.pop("name"), where)
            out.setdefault(f"{key}_options", {}).update(value)
        elif key in OPTION_TABLES:
            if not isinstance(value, dict):
                raise ZooError(f"{where}: '{key}' must be a table of options, got {value!r}")
            out.setdefault(key, {}).update(value)
        elif key in BY_NAME:
            out[key] = BY_NAME[key].check(value, where)
        else:
            raise ZooError(f"{where}: unknown setting '{key}'{did_you_mean(key, [*BY_NAME, *COMPONENTS])}")
    return out


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win; option tables merge key by key, except that changing a component drops the
    options given for the previous one (an MLP's `hidden` means nothing to a linear head)."""
    cfg = copy.deepcopy(DEFAULTS)
    for layer in layers:
        for key, value in layer.items():
            if key in COMPONENTS and value != cfg.get(key) and f"{key}_options" not in layer:
                cfg[f"{key}_options"] = {}
            cfg[key] = {**cfg[key], **value} if key in OPTION_TABLES else value
    return cfg


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ZooError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ZooError(f"{path}: a directory, not a TOML config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
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
            if component not in COMPONENTS:
                raise ZooError(f"--set {item!r}: '{component}' is not one of {', '.join(COMPONENTS)}")
            raw.setdefault(component, {})[option] = value
        else:
            raw[key] = value
    return normalise(raw, "--set")
