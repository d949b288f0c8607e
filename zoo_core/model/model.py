"""A backbone plus a head, checked for compatibility, and how to rebuild one from a run's config alone."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..base.errors import ZooError
from ..contract.components import Backbone, DataConfig, Task


class ZooModel(nn.Module):
    """backbone -> (pooled features or feature pyramid, as the head's spec says) -> head.

    With cached features (`inputs_are_features`), the inputs already are what the head consumes."""

    def __init__(self, backbone: Backbone, head: nn.Module, head_input: str = "pooled"):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.head_input = head_input
        self.inputs_are_features = False

    def features(self, x: torch.Tensor) -> Any:
        return self.backbone.forward_features(x) if self.head_input == "pyramid" else self.backbone(x)

    def forward(self, x: Any) -> Any:
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
    if spec.input == "pyramid" and not getattr(backbone, "feature_info", None):
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


def build_model(zoo, mc: dict[str, Any]) -> ZooModel:
    """An untrained network shaped as `mc` describes (weights are loaded by the caller)."""
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
