"""The user API, what a script calls; the `zoo` command is a thin layer over it:

    import zoo_core as zoo
    result = zoo.train(TASK, data="pets/", epochs=5)            # zoo train TASK --data pets/ --epochs 5
    run = zoo.load_run(result.run_dir)                          # zoo predict RUN ...
    for p in run.predict(["cat.jpg", pil_image]):               # Prediction objects of the run's task
        print(p.source, p.caption(), p.to_json())
    run.evaluate()                                              # zoo eval RUN (its own validation split)
    zoo.export(result.run_dir, "onnx")                          # zoo export RUN --format onnx
    zoo.push(result.run_dir, "me/pets")                         # zoo push RUN me/pets
    zoo.compress(result.run_dir, 0.5)                           # zoo compress RUN --sparsity 0.5
    zoo.lr_find(TASK, data="pets/")                             # zoo lr-find TASK --data pets/
    zoo.inspect("resnet18")                                     # zoo inspect resnet18
"""

from __future__ import annotations

import inspect as _inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base.errors import ZooError

if TYPE_CHECKING:
    from .prediction.predictor import Predictor

# Loaded on first use, like zoo_core's own names: they import torch, and `zoo list` should not wait for it.
_LAZY = {
    **dict.fromkeys(["Predictor", "Run", "Exported", "Pretrained", "Skipped", "load_run", "load_exported",
                     "load_pretrained", "load_target", "expand_inputs", "resolve_target"], "prediction.predictor"),
    **dict.fromkeys(["TrainResult", "Interrupted"], "training.trainer"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __package__), name)
    raise AttributeError(f"module 'zoo_core.api' has no attribute {name!r}")


def train(task: str, **settings: Any):
    """Train a task; keyword arguments are the CLI's flags (config=, resume=, epochs=, data=, ...).
    Returns a TrainResult (run_dir, best, status, seconds); Ctrl-C raises Interrupted (resumable)."""
    from .training.trainer import train as run_training

    return run_training(task, **settings)


def pull(model: str, registry: str | Path | None = None) -> Path:
    """`zoo pull`: a pushed model (namespace/name[@revision], hf-hub:..., or a registry name) into the
    Hugging Face cache; the folder load_run() takes. From the cache alone with HF_HUB_OFFLINE=1."""
    from .hub.hub import pull as hub_pull

    return hub_pull(model, registry)[0]


def hub_ref(model: str, registry: str | Path | None = None) -> str:
    """The Hub repository (namespace/name[@revision]) `model` names: itself, hf-hub:..., or a registry model's."""
    from .hub.hub import parse_ref

    return str(parse_ref(model, registry))


def run_directory(target: str | Path) -> Path:
    """A trained run's directory: the directory itself, or for `hf-hub:ID[@REV]` the model pulled from the Hub."""
    from .prediction.predictor import resolve_target

    kind, what = resolve_target(str(target))
    if kind != "run":
        raise ZooError(f"{target}: a backbone, not a trained run; give a run directory or hf-hub:NAMESPACE/NAME")
    return what


def export(run: str | Path | Predictor, fmt: str = "onnx", out: str | Path | None = None,
           **options: Any) -> tuple[Path, dict[str, Any]]:
    """`zoo export`: a run (its directory, hf-hub:ID, or a loaded Run/Predictor) exported with the exporter
    `fmt`; `options` are the exporter's (opset=17, mode="dynamic"). Returns (the file written, facts: size,
    parity with PyTorch, and for int8 its latency and validation scores)."""
    from .prediction.export import export as export_predictor
    from .prediction.predictor import Predictor, load_run

    predictor = run if isinstance(run, Predictor) else load_run(run_directory(run), device="cpu")
    return export_predictor(predictor, fmt, out, **options)


def push(run_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
         message: str | None = None, with_formats: tuple[str, ...] = (), registry: str | Path | None = None,
         license: str | None = None) -> dict[str, Any]:
    """`zoo push`: a trained run to the Hugging Face Hub in one commit (weights, config, model card, curves,
    and each of `with_formats` exported). Returns {"url", "revision", "commit", "files"}."""
    from .hub.hub import push as hub_push
    from .prediction.predictor import load_run

    if not Path(run_dir).is_dir():
        raise ZooError(f"{run_dir}: no such run directory")
    return hub_push(run_dir, repo_id, private=private, revision=revision, message=message, with_formats=with_formats,
                    registry=registry, license=license,
                    export=lambda folder, fmt, path: export(load_run(folder, device="cpu"), fmt, path)[0])


def compress(run: str | Path, sparsity: float, out: str | Path | None = None, epochs: int = 3, lr: float | None = None,
             quiet: bool = True, prune: str = "weights") -> dict[str, Any]:
    """`zoo compress`: prune a run (prune="weights" or "channels") and fine-tune it briefly: a new run, whose
    directory is facts["run_dir"]; the facts hold the scores before, after pruning and after fine-tuning."""
    from .tools.compress import compress as compress_run

    return compress_run(run_directory(run), sparsity, out, epochs=epochs, lr=lr, quiet=quiet, prune=prune)


def lr_find(task: str, **settings: Any):
    """`zoo lr-find`: the learning-rate range test with the settings train takes (plus start_lr, end_lr,
    steps, plot, quiet); an LRFindResult whose .suggestion is the --lr to use."""
    from .training.lrfind import lr_find as range_test

    return range_test(task, **settings)


def inspect(target: str, **options: Any) -> dict[str, Any]:
    """`zoo inspect`: a run's or a backbone's layers, output shapes and trainable and frozen parameters, and
    with image= the feature maps of chosen layers drawn into a PNG (see tools.inspect.inspect)."""
    from .tools.inspect import inspect as inspect_target

    return inspect_target(target, **options)


def catalog(registry: str | Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """registry.toml's plugins and models (and `registry`'s), each marked installed or available, with
    what to pip install: what `zoo list` shows under them."""
    from .registry.plugins import get_zoo
    from .registry.registry_file import catalog as read_catalog

    return read_catalog(get_zoo(), registry)


def backbone_names(pattern: str = "*") -> list[str]:
    """Registered backbone names matching a wildcard ('resnet*', 'torchvision:*'): `zoo list --backbones`."""
    from .registry.plugins import get_zoo

    return get_zoo().backbones.names(pattern)


def listing(registry: str | Path | None = None, details: bool = True) -> dict[str, Any]:
    """`zoo list`: the installed plugins, every component they register (with `details`, the options each
    takes, read from source), the commands they add, and the registry's known plugins and models."""
    from .registry.plugins import get_zoo
    from .registry.registries import KINDS, PLURAL
    from .registry.registry_file import catalog as read_catalog

    zoo = get_zoo()
    known = read_catalog(zoo, registry)
    return {
        "plugins": [p.as_dict() for p in zoo.plugins],
        "components": {PLURAL[k]: _component_rows(zoo, k, details) for k in KINDS},
        "commands": [{"name": n, "plugin": p} for n, (_, p) in sorted(zoo.commands.items())],
        "known_plugins": known["plugins"],
        "known_models": known["models"],
    }


def _component_rows(zoo, kind: str, details: bool = True) -> list[dict[str, Any]]:
    rows = []
    for c in zoo.registries[kind]:
        row = {"name": c.name, "plugin": c.plugin, "description": c.description}
        for field in ("output", "input", "accepts", "suffix"):
            if hasattr(c.spec, field):
                value = getattr(c.spec, field)
                row[field] = list(value) if isinstance(value, tuple) else value
        if c.is_family:
            row["models"] = len(c.family_names())
        options = c.options() if kind != "task" and details else None
        if options:
            row["options"] = {k: (None if v is _inspect.Parameter.empty else v) for k, v in options.items()}
        rows.append(row)
    return rows
