"""registry.toml: the models zoo knows by name, shown by `zoo list`."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import ZooError


def registry_path() -> Path | None:
    """ZOO_REGISTRY, else the copy packaged in zoo_core, else the repository's top-level file."""
    candidates = [os.environ.get("ZOO_REGISTRY"), Path(__file__).parent / "registry.toml",
                  Path(__file__).parent.parent / "registry.toml"]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


def load_known_models() -> list[dict[str, Any]]:
    path = registry_path()
    if path is None:
        return []
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ZooError(f"{path}: not valid TOML ({e})") from None
    models = data.get("model", [])
    for i, m in enumerate(models):
        for key in ("name", "backbone"):
            if key not in m:
                raise ZooError(f"{path}: [[model]] number {i + 1} has no '{key}'")
    return models
