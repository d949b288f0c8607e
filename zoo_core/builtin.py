"""zoo-core's own components, registered through the same hooks as any plugin."""

from __future__ import annotations

import warnings
from pathlib import Path
import torch
from torch import nn

from . import hookimpl
from .backbones import SMALL_NETS, TimmBackbone, TorchvisionBackbone, small_net_factory, timm_has, timm_names, torchvision_names
from .errors import ZooError


@hookimpl
def register_backbones(register):
    for name, (size, description) in SMALL_NETS.items():
        register(name, small_net_factory, description=f"from scratch, {description}; input {size[0]}x{size[1]}x{size[2]}")
    register("timm:*", TimmBackbone, names=timm_names, has=timm_has,
             description="any timm model by name; pretrained weights from the Hugging Face Hub")
    register("torchvision:*", TorchvisionBackbone, names=torchvision_names,
             description="torchvision classification models; pretrained weights from download.pytorch.org")


@hookimpl
def register_losses(register):
    register("l1", lambda info, **kw: nn.L1Loss(**kw), description="mean absolute error (regression, keypoints, boxes)")
    register("mse", lambda info, **kw: nn.MSELoss(**kw), description="mean squared error")
    register("smooth-l1", lambda info, **kw: nn.SmoothL1Loss(**kw), description="Huber loss")


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, *, opset: int | None = None,
                check: bool = True) -> None:
    """ONNX through torch.export (dynamic batch), validated with onnx.checker and, when onnxruntime
    is installed, compared with PyTorch on the example (rtol 1e-3, atol 1e-5)."""
    import onnx

    model = model.eval()
    if example.shape[0] < 2:  # torch.export specialises a batch of 1; two keeps the batch dynamic
        example = example.repeat(2, *([1] * (example.dim() - 1)))
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["input"],
                          dynamic_shapes=({0: batch},), opset_version=opset, verbose=False, external_data=False)
    onnx.checker.check_model(onnx.load(str(path)))
    if not check:
        return
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return
    with torch.no_grad():
        expected = model(example)
    expected = [t.numpy() for t in (expected.values() if isinstance(expected, dict) else
                                     expected if isinstance(expected, (list, tuple)) else [expected])]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": example.numpy()})
    for e, g in zip(expected, got):
        if not np.allclose(e, g, rtol=1e-3, atol=1e-5):
            raise ZooError(f"{path}: ONNX outputs differ from PyTorch (max abs diff {np.abs(e - g).max():.2e})")


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """A traced TorchScript module, loadable from C++ with torch::jit::load."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # trace is deprecated in favour of torch.export, but C++ users need it
        traced = torch.jit.trace(model.eval(), example)
        traced.save(str(path))


@hookimpl
def register_exporters(register):
    register("onnx", export_onnx, suffix=".onnx", description="ONNX via torch.export; checked, compared with onnxruntime")
    register("torchscript", export_torchscript, suffix=".pt", description="traced TorchScript (torch.jit)")
