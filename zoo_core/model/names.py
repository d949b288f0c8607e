"""The names of the models timm and torchvision register, read from their source files without importing
them: both import torch, seconds on a small machine, where reading the files takes about 20 ms. This is
what lets the first `zoo list` after installing packages answer in a fraction of a second
(tests/test_startup.py checks that the names read agree with what the libraries list once imported)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path


def _natural(name: str) -> list:
    """timm's sort order: digits compared as numbers (resnet18 before resnet101)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def registered_in_source(package: str, folder: str, decorator: str, recursive: bool) -> list[str]:
    """The functions under `package/folder` decorated `@decorator` or `@decorator()`: `def NAME(...)`
    registers NAME. [] when the package is not installed or has no source files to read."""
    spec = importlib.util.find_spec(package)  # finds, does not import
    if spec is None or not spec.origin:
        return []
    root = Path(spec.origin).parent / folder
    pattern = re.compile(rf"^@{re.escape(decorator)}(?:\(\))?[ \t]*\n(?:@[^\n]*\n)*def[ \t]+(\w+)", re.M)
    names: set[str] = set()
    for path in (root.rglob("*.py") if recursive else root.glob("*.py")):
        try:
            names.update(pattern.findall(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return sorted(names, key=_natural)


def timm_names() -> list[str]:
    if "timm" not in sys.modules:
        names = registered_in_source("timm", "models", "register_model", recursive=True)
        if names:
            return names
    import timm

    return timm.list_models()


def torchvision_names() -> list[str]:
    """The classification models (torchvision.models itself, not its detection or video subpackages)."""
    if "torchvision" not in sys.modules:
        names = registered_in_source("torchvision", "models", "register_model", recursive=False)
        if names:
            return names
    from torchvision import models

    return sorted(models.list_models(module=models), key=_natural)
