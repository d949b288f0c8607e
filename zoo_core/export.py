"""Exporting a trained model for deployment, task-aware: the task wraps the model (softmax, decoding,
normalisation) and names its outputs; the file carries what is needed to use it without zoo's config:
task, output kind, the task's info (class names, ...), preprocessing, zoo version."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ZooError


def export_metadata(predictor, output_names: list[str]) -> dict[str, Any]:
    """JSON-able facts that travel inside the exported file."""
    from .plugins import _core_version

    cfg = getattr(predictor, "config", {})
    mc = cfg.get("model", {})
    return {"zoo_version": _core_version(), "task": predictor.task.name, "output": predictor.task.output,
            "outputs": output_names, "info": predictor.info,
            "preprocessing": {**predictor.data_config.to_dict(), "fit": predictor.task.fit, "input": "RGB" if
                              predictor.data_config.channels == 3 else "L", "layout": "NCHW, float32, normalised"},
            "backbone": mc.get("backbone"), "head": mc.get("head")}


def example_input(data_config, batch: int = 2) -> torch.Tensor:
    """A seeded, image-like batch (normalised noise): zeros would hide differences a real input shows."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, *data_config.input_size, generator=g)


def _outputs(result: Any) -> list[torch.Tensor]:
    if isinstance(result, dict):
        return list(result.values())
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, *, output_names: list[str],
                metadata: dict[str, Any], opset: int | None = None, check: bool = True) -> dict[str, Any]:
    """ONNX through torch.export (dynamic batch, named outputs, zoo metadata in metadata_props), validated
    with onnx.checker and, when onnxruntime is installed, compared with PyTorch (rtol 1e-3, atol 1e-5)."""
    import onnx

    model = model.eval()
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["input"], output_names=output_names,
                          dynamic_shapes=({0: batch},), opset_version=opset, verbose=False, external_data=False)
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"zoo.{key}", value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    facts: dict[str, Any] = {"outputs": [o.name for o in proto.graph.output]}
    if not check:
        return facts
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return facts
    with torch.no_grad():
        expected = [t.numpy() for t in _outputs(model(example))]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": example.numpy()})
    diff = max(float(np.abs(e - g).max()) if e.size else 0.0 for e, g in zip(expected, got))
    for e, g in zip(expected, got):
        if not np.allclose(e, g, rtol=1e-3, atol=1e-5):
            raise ZooError(f"{path}: ONNX outputs differ from PyTorch (max abs diff {diff:.2e})")
    return {**facts, "max_abs_diff_vs_pytorch": diff}


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path, *, output_names: list[str],
                       metadata: dict[str, Any]) -> dict[str, Any]:
    """A traced TorchScript module, loadable from C++ with torch::jit::load; zoo's metadata in the
    extra file zoo.json."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # trace is deprecated in favour of torch.export, but C++ users need it
        traced = torch.jit.trace(model.eval(), example, strict=False)
        traced.save(str(path), _extra_files={"zoo.json": json.dumps(metadata)})
        diff = max(float((a - b).abs().max()) for a, b in zip(_outputs(model(example)), _outputs(traced(example))))
    return {"outputs": output_names, "max_abs_diff_vs_pytorch": diff}


def export(predictor, fmt: str, out: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Export a run (or any Predictor) with the exporter `fmt`: (path written, facts to print)."""
    from .artifacts import atomic_write
    from .plugins import get_zoo

    component = get_zoo().exporters.get(fmt)
    # A model pulled from the Hub lives in the Hugging Face cache, which is never written to: export here.
    run_dir = getattr(predictor, "dir", None)
    default_dir = run_dir if run_dir is not None and (run_dir / "best.safetensors").is_file() else Path(".")
    path = Path(out) if out else default_dir / f"model{component.spec.suffix}"
    predictor.model.to("cpu")
    deployed, names = predictor.task.deploy(predictor.model, predictor.info)
    metadata = export_metadata(predictor, names)
    facts: dict[str, Any] = {}

    def write(p: Path) -> None:
        facts.update(component.factory(deployed.eval(), example_input(predictor.data_config), p,
                                       output_names=names, metadata=metadata) or {})

    atomic_write(path, write)
    return path, {"bytes": path.stat().st_size, **facts}
