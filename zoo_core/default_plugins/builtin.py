"""zoo-core's own components, registered through the same hooks as any plugin: backbones, generic
regression losses, exporters, and the commands beyond the core ones (lr-find, inspect, compress, serve,
plugin, cache; commands.py). No task's components: those come with the task's plugin.

Like any plugin's registration module it imports no torch: implementations are named "module:attr"
and imported when used (see zoo_core/contract/specs.py)."""

from __future__ import annotations

from ..contract.hookspecs import hookimpl
from ..contract.specs import BackboneSpec, CommandSpec, ExporterSpec, LossSpec
from ..model.small_nets import SMALL_NETS

# Losses on tensors of the same shape as the target: any output kind a task declares as "regression/...".
REGRESSION = ("regression/*",)


@hookimpl
def register_backbones(register):
    for name, (size, description) in SMALL_NETS.items():
        register(BackboneSpec(name, "zoo_core.model.backbones:small_net_factory", weights="none",
                              description=f"from scratch, {description}; input {size[0]}x{size[1]}x{size[2]}"))
    register(BackboneSpec("timm", "zoo_core.model.backbones:TimmBackbone", family=True, names="zoo_core.model.names:timm_names",
                          has="zoo_core.model.backbones:timm_has", weights="zoo_core.model.backbones:timm_weights",
                          description="any timm model by name; pretrained weights from the Hugging Face Hub"))
    # Families are tried in this order for a bare name; only a Hub repo id (namespace/name) reaches "hf-hub".
    register(BackboneSpec("hf-hub", "zoo_core.hub.hub:hub_backbone", family=True, names=lambda: [],
                          has=lambda name: "/" in name, weights=lambda name: f"hf-hub:{name.partition('@')[0]}",
                          description="the backbone of a model pushed with zoo push or timm: hf-hub:NAMESPACE/NAME[@REV]"))
    register(BackboneSpec("torchvision", "zoo_core.model.backbones:TorchvisionBackbone", family=True,
                          names="zoo_core.model.names:torchvision_names", weights="zoo_core.model.backbones:torchvision_weights",
                          description="torchvision classification models; pretrained weights from download.pytorch.org"))


def l1_loss(info, reduction: str = "mean"):
    from torch import nn

    return nn.L1Loss(reduction=reduction)


def mse_loss(info, reduction: str = "mean"):
    from torch import nn

    return nn.MSELoss(reduction=reduction)


def smooth_l1_loss(info, beta: float = 1.0):
    from torch import nn

    return nn.SmoothL1Loss(beta=beta)


@hookimpl
def register_losses(register):
    register(LossSpec("l1", l1_loss, REGRESSION, "mean absolute error (boxes, points, any regression output)"))
    register(LossSpec("mse", mse_loss, REGRESSION, "mean squared error (any regression output)"))
    register(LossSpec("smooth-l1", smooth_l1_loss, REGRESSION, "Huber loss (option: beta)"))


@hookimpl
def register_exporters(register):
    register(ExporterSpec("onnx", "zoo_core.prediction.export:export_onnx", ".onnx",
                          "ONNX via torch.export, named outputs and zoo metadata; checked, compared with onnxruntime"))
    register(ExporterSpec("torchscript", "zoo_core.prediction.export:export_torchscript", ".pt",
                          "traced TorchScript (torch.jit), zoo.json inside; compared with PyTorch"))
    register(ExporterSpec("safetensors", "zoo_core.prediction.export:export_safetensors", ".safetensors",
                          "weights and the config that rebuilds the network (no code); checked by rebuilding"))
    register(ExporterSpec("onnx-int8", "zoo_core.prediction.export:export_onnx_int8", ".int8.onnx",
                          "8-bit ONNX (ONNX Runtime quantization: static QDQ per-channel calibrated on training "
                          "images, or mode=dynamic); reports size, latency and validation scores against float32"))


@hookimpl
def register_commands(register):
    # what `zoo --help` lists for each is the first line of its function's docstring, read from source
    for name, attr in (("lr-find", "lr_find_cmd"), ("inspect", "inspect_cmd"), ("compress", "compress"),
                       ("serve", "serve"), ("plugin", "plugin"), ("cache", "cache")):
        register(CommandSpec(name, f"zoo_core.default_plugins.commands:{attr}"))
