"""registry.toml: the catalog of known plugins and models, shipped with zoo-core and extended by the
user's own files (--registry FILE, or ZOO_REGISTRY with paths separated by the OS path separator).

    [[plugin]]  name, distribution, summary, source, install
    [[model]]   name, task, backbone, weights | repo + revision, plugin, metrics, license, params, description

A model with a `repo` is a pushed zoo model: `zoo pull NAME` and `hf-hub:NAME` resolve through it.
A later file wins over an earlier one for the same name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import tomllib

from ..base.errors import ZooError


def registry_paths(extra: str | Path | None = None) -> list[Path]:
    """The packaged catalog (or the repository's, in a checkout), then ZOO_REGISTRY's files, then `extra`."""
    package = Path(__file__).parent.parent  # zoo_core/: the wheel puts it there; a checkout has it one level up
    packaged = next((p for p in (package / "registry.toml", package.parent / "registry.toml") if p.is_file()), None)
    user = [Path(p) for p in os.environ.get("ZOO_REGISTRY", "").split(os.pathsep) if p]
    paths = ([packaged] if packaged else []) + user + ([Path(extra)] if extra else [])
    for p in paths[1 if packaged else 0:]:
        if not p.is_file():
            raise ZooError(f"{p}: registry file not found (from {'--registry' if extra and p == Path(extra) else 'ZOO_REGISTRY'})")
    return paths


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: not valid TOML ({e})") from None
    for kind, required in (("model", ("name",)), ("plugin", ("name", "distribution"))):
        entries = data.get(kind, [])
        if not isinstance(entries, list):
            raise ZooError(f"{path}: '{kind}' must be an array of tables ([[{kind}]])")
        for i, entry in enumerate(entries):
            for key in required:
                if key not in entry:
                    raise ZooError(f"{path}: [[{kind}]] number {i + 1} has no '{key}'")
            if kind == "model" and not (entry.get("backbone") or entry.get("repo")):
                raise ZooError(f"{path}: [[model]] '{entry['name']}' needs a 'backbone' or a 'repo'")
    return data


def load_registry(extra: str | Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """{"model": [...], "plugin": [...]}, merged by name over every registry file."""
    merged: dict[str, dict[str, dict[str, Any]]] = {"model": {}, "plugin": {}}
    for path in registry_paths(extra):
        data = _read(path)
        for kind in merged:
            for entry in data.get(kind, []):
                merged[kind][entry["name"]] = {**entry, "registry": str(path)}
    return {kind: list(entries.values()) for kind, entries in merged.items()}


def load_known_models(extra: str | Path | None = None) -> list[dict[str, Any]]:
    return load_registry(extra)["model"]


def find_model(name: str, extra: str | Path | None = None) -> dict[str, Any] | None:
    return next((m for m in load_known_models(extra) if m["name"] == name), None)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def upsert_model(path: str | Path, name: str, entry: dict[str, Any]) -> Path:
    """Add the model to a registry file, or replace its [[model]] table; the rest of the file is kept."""
    from ..base.artifacts import atomic_write

    path = Path(path)
    text = path.read_text() if path.is_file() else "# zoo registry: models pushed with zoo push --registry\n"
    if path.is_file():
        _read(path)
    table = "[[model]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in {"name": name, **entry}.items())
    blocks = re.split(r"(?m)^(?=\[\[)", text)
    for i, block in enumerate(blocks):
        if block.startswith("[[model]]") and re.search(rf'(?m)^name\s*=\s*"{re.escape(name)}"\s*$', block):
            blocks[i] = table + ("\n" if block.endswith("\n\n") else "")
            break
    else:
        blocks.append(("\n" if not text.endswith("\n\n") else "") + table)
    new = "".join(blocks)
    tomllib.loads(new)  # never write a file we could not read back
    return atomic_write(path, lambda p: p.write_text(new))


def catalog(zoo, registry: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """registry.toml's plugins and models, each marked installed or not, with what to pip install."""
    data = load_registry(registry)
    installed = {p.source for p in zoo.plugins if not p.error}
    plugins = [{**p, "installed": p["distribution"] in installed} for p in data["plugin"]]
    install = {p["name"]: p.get("install", f"pip install {p['distribution']}") for p in data["plugin"]}
    by_task = {p.get("task"): p["name"] for p in data["plugin"] if p.get("task")}
    models = []
    for m in data["model"]:
        available = ((not m.get("task") or m["task"] in zoo.tasks)  # knows(): answered without importing timm
                     and (m.get("repo") or zoo.backbones.knows(m.get("backbone", ""))))
        entry = {**m, "available": bool(available)}
        if not available:
            needed = m.get("plugin") or by_task.get(m.get("task"))
            entry["install"] = install.get(needed, f"pip install {needed}") if needed else None
        models.append(entry)
    return {"plugins": plugins, "models": models}


def known_models(zoo, registry: str | None = None) -> list[dict[str, Any]]:
    return catalog(zoo, registry)["models"]
