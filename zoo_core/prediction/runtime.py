"""Running a model with ONNX Runtime instead of PyTorch, behind the same nn.Module interface, so that
prediction and evaluation code is one: `zoo predict --runtime onnx`, `zoo eval model.onnx`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base.errors import ZooError
from ..contract.components import Task


class OnnxModule(nn.Module):
    """An exported file as a module: tensors in, the task's raw outputs out (Task.undeploy inverts what
    Task.deploy added, e.g. softmax), so Task.predict and Task.metrics read them unchanged. CPU only."""

    def __init__(self, path: str | Path, task: Task, info: dict[str, Any], threads: int | None = None):
        from .export import onnx_session

        super().__init__()
        self.path, self.task, self.info = Path(path), task, info
        self.session = onnx_session(self.path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        # (height, width) the file was exported with, None where dynamic (Task.dynamic_size)
        self.fixed_size = tuple(d if isinstance(d, int) else None for d in self.session.get_inputs()[0].shape[2:4])

    def forward(self, x: torch.Tensor) -> Any:
        import numpy as np

        for axis, (want, got) in enumerate(zip(self.fixed_size, x.shape[2:4])):
            if want is not None and want != got:  # ONNX Runtime's own message is a page of shape inference
                name = ("height", "width")[axis]
                dynamic = tuple(getattr(self.task, "dynamic_size", ()))
                fix = (f"export the run again: task '{self.task.name}' now keeps {', '.join(dynamic)} dynamic" if dynamic
                       else f"task '{self.task.name}' gives inputs of several sizes and should declare Task.dynamic_size")
                raise ZooError(f"{self.path}: exported for inputs of {name} {want}, got {got}; {fix}")
        arrays = self.session.run(None, {self.input_name: np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)})
        return self.task.undeploy({n: torch.from_numpy(a) for n, a in zip(self.output_names, arrays)}, self.info)

    def __getstate__(self):  # sessions do not pickle; a worker process opens the file again
        state = self.__dict__.copy()
        state.pop("session", None)
        return state

    def __setstate__(self, state):
        from .export import onnx_session

        self.__dict__.update(state)
        self.session = onnx_session(self.path)


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The zoo.* metadata of an exported file (task, info, preprocessing, ...), JSON values decoded."""
    from .export import onnx_session

    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such file")
    raw = onnx_session(path).get_modelmeta().custom_metadata_map
    meta = {}
    for key, value in raw.items():
        if key.startswith("zoo."):
            try:
                meta[key[4:]] = json.loads(value)
            except json.JSONDecodeError:
                meta[key[4:]] = value
    missing = [k for k in ("task", "info", "preprocessing") if k not in meta]
    if missing:
        raise ZooError(f"{path}: not exported by zoo (no {', '.join('zoo.' + k for k in missing)} metadata); "
                       "export it with zoo export RUN --format onnx")
    return meta


def cached_onnx(predictor) -> Path:
    """The predictor's model exported to ONNX once, then reused from zoo's cache while the weights and
    zoo's version are unchanged (the key covers the run's config and its weights file's size and time)."""
    from ..base.artifacts import cache_dir
    from ..registry.plugins import _core_version
    from .export import example_input, export, export_metadata

    run_dir = getattr(predictor, "dir", None)
    weights = [p for p in (run_dir / "best.safetensors", run_dir / "model.safetensors") if p.is_file()] if run_dir else []
    stamp = [str(weights[0].resolve()), weights[0].stat().st_size, weights[0].stat().st_mtime_ns] if weights else []
    names = predictor.task.deploy(predictor.model, predictor.info)[1]
    key = json.dumps([export_metadata(predictor, names), stamp, _core_version(), getattr(predictor, "name", "")],
                     sort_keys=True, default=str)
    path = cache_dir("onnx") / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.onnx"
    if not path.is_file():
        # Checked against PyTorch on noise, not the validation split: predicting must not read the training data.
        export(predictor, "onnx", path, example=example_input(predictor.data_config, 2))
    return path
