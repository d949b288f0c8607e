"""A backbone plus a head, checked for compatibility, and how to rebuild one from a run's config alone."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..base.errors import ZooError
from ..contract.components import Backbone, DataConfig, Task


class ZooModel(nn.Module):
    """backbone -> (pooled features or feature pyramid, as the head's spec says) -> head.

    A head with input="pyramid+image" is called head(pyramid, image): it sees the model's input too (a
    residual image-to-image decoder adds to it). With cached features (`inputs_are_features`), the inputs
    already are what the head consumes; a head that needs the image cannot train on cached features."""

    def __init__(self, backbone: Backbone, head: nn.Module, head_input: str = "pooled"):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.head_input = head_input
        self.inputs_are_features = False

    def features(self, x: torch.Tensor) -> Any:
        return self.backbone.forward_features(x) if self.head_input.startswith("pyramid") else self.backbone(x)

    def forward(self, x: Any) -> Any:
        if self.head_input == "pyramid+image":
            return self.head(self.features(x), x)
        return self.head(x if self.inputs_are_features else self.features(x))

    def set_backbone_trainable(self, trainable: bool) -> None:
        for p in self.backbone.parameters():
            p.requires_grad_(trainable)

    @property
    def backbone_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())

    def train(self, mode: bool = True) -> "ZooModel":
        super().train(mode)
        if mode and self.backbone_frozen:
            # A frozen backbone is a fixed feature extractor: BatchNorm keeps its pretrained statistics.
            self.backbone.eval()
        return self


def check_compatible(zoo, task: Task, head: str, loss: str | None, dataset: str | None = None) -> None:
    """A head, loss and dataset that fit the task's output kind, or a one-line error naming both
    components and the ones that would fit; checked before any data is read."""
    from ..registry.registries import PLURAL, outputs_match

    def fitting(kind: str) -> str:
        names = [c.name for c in zoo.registries[kind].matching(task.output)]
        return f"; {PLURAL[kind]} for it: {', '.join(names)}" if names else ""

    component = zoo.heads.get(head)
    if not outputs_match(component, task.output):
        made = component.spec.output if isinstance(component.spec.output, str) else "' or '".join(component.spec.output)
        raise ZooError(f"head '{head}' produces '{made}' but task '{task.name}' needs '{task.output}'{fitting('head')}")
    if loss is not None:
        spec = zoo.losses.get(loss).spec
        if not any(_match(task.output, p) for p in spec.accepts):
            raise ZooError(f"loss '{loss}' accepts {', '.join(repr(a) for a in spec.accepts)}, not the '{task.output}' "
                           f"that head '{head}' produces for task '{task.name}'{fitting('loss')}")
    if dataset is not None:
        spec = zoo.datasets.get(dataset).spec
        if spec.output != task.output:
            raise ZooError(f"dataset '{dataset}' labels '{spec.output}' but task '{task.name}' needs '{task.output}'"
                           f"{fitting('dataset')}")


def _match(output: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatch(output, pattern)


def build_head(zoo, name: str, backbone: Backbone, info: dict[str, Any], options: dict[str, Any]) -> tuple[nn.Module, str]:
    """The head module and what it consumes; a pyramid head on a backbone without one is a one-line error."""
    spec = zoo.heads.get(name).spec
    if spec.input.startswith("pyramid") and not getattr(backbone, "feature_info", None):
        raise ZooError(f"head '{name}' needs a feature pyramid and backbone {type(backbone).__name__} gives none; "
                       "pick a convolutional backbone (resnet18, efficientnet_lite0, cnn2)")
    return zoo.heads.create(name, backbone, info, **options), spec.input


def model_config(cfg: dict[str, Any], task: Task, backbone: Backbone, info: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to rebuild the network and read its outputs without the training arguments."""
    return {
        "task": task.name,
        "output": task.output,
        "backbone": cfg["backbone"],
        "backbone_options": cfg["backbone_options"],
        "image_size": cfg["image_size"],
        "head": cfg["head"],
        "head_options": cfg["head_options"],
        "info": info,
        "data_config": backbone.data_config.to_dict(),
        "fit": task.fit,
        "pretrained_source": backbone.pretrained_source,
    }


# The largest input side a saved model may ask for: --image-size's own bound. A config.json (a run's, or a
# Hub repo's that anyone can write) is checked against it before anything is allocated: building the
# network runs a dummy input of that size through it, and predicting resizes every image to it.
MAX_INPUT_SIDE = 4096
MAX_INPUT_CHANNELS = 16


def check_input_size(mc: dict[str, Any]) -> None:
    """A one-line ZooError if the model section asks for an input too large to allocate (see MAX_INPUT_SIDE)."""
    def side(value: Any, what: str) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INPUT_SIDE:
            raise ZooError(f"'{what}' is {value!r}: a model input is 1..{MAX_INPUT_SIDE} pixels a side; "
                           "the file is damaged or not made by zoo")

    side(mc.get("image_size"), "model.image_size")
    size = (mc.get("data_config") or {}).get("input_size")
    if size is not None:
        if not isinstance(size, (list, tuple)) or len(size) != 3:
            raise ZooError(f"'model.data_config.input_size' is {size!r}: expected [channels, height, width]")
        c, h, w = size
        if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= MAX_INPUT_CHANNELS:
            raise ZooError(f"'model.data_config.input_size' asks for {c!r} channels: 1..{MAX_INPUT_CHANNELS}")
        side(h, "model.data_config.input_size height")
        side(w, "model.data_config.input_size width")


def build_model(zoo, mc: dict[str, Any]) -> ZooModel:
    """An untrained network shaped as `mc` describes (weights are loaded by the caller)."""
    check_input_size(mc)
    backbone = zoo.backbones.create(mc["backbone"], pretrained=False, image_size=mc.get("image_size"),
                                    **mc.get("backbone_options", {}))
    backbone.data_config = DataConfig.from_dict(mc["data_config"])
    head, head_input = build_head(zoo, mc["head"], backbone, mc["info"], mc.get("head_options", {}))
    model = ZooModel(backbone, head, head_input)
    if mc.get("pruned"):  # zoo compress --channels removed channels: the shapes the weights have
        from .pruning import apply_structure

        apply_structure(model, mc["pruned"])
    return model


def weights_fingerprint(model: nn.Module) -> str:
    """A fingerprint of a network's weights (names, shapes and values): what a file made with one model (a
    search index of its embeddings) records, so that another model, even one built alike, can refuse it."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]
