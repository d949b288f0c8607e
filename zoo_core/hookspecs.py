"""The plugin contract: six hooks, one per kind of component.

Every hook receives a `register` function and calls it once per component it brings:

    @zoo_core.hookimpl
    def register_heads(register):
        register("mlp", make_mlp_head, description="Linear-ReLU-Dropout-Linear")

`register(name, factory, *, description="", **extra)`; zoo remembers which plugin registered
each name, and two plugins registering the same name is an error naming both.

What each factory is called with, and must return (see zoo_core.components for the types):

- dataset   factory(source, *, data_config, seed, val_fraction, augment, **options) -> DataSplits
            `source` is the user's --data (None for an embedded dataset). At evaluation time a
            `reference_info=` keyword carries the trained model's info (e.g. its classes), so that
            labels are indexed the way the model learned them. Optional extras:
            matches=callable(source) -> bool, so a task can pick this dataset for a given path;
            recipe={...} hyper-parameters that suit this data (used unless the user overrides).
- backbone  factory(name, *, pretrained, in_chans=None, **options) -> Backbone
            A name ending in ":*" ("timm:*") registers a family; give names=callable() -> list
            and optionally has=callable(name) -> bool.
- head      factory(backbone, info, **options) -> nn.Module, mapping backbone features to outputs.
            Set `head.wants = "map"` to receive the spatial feature map instead of pooled features.
- loss      factory(info, **options) -> callable(outputs, targets) -> scalar tensor
- exporter  factory(model, example_input, path, **options) -> None; extra: suffix=".onnx"
- task      factory() -> Task: a default recipe (dataset, backbone, head, loss, hyper-parameters),
            metrics, and how to turn raw outputs into predictions.

Outputs and targets can be any nesting of tensors, lists and dicts: the trainer never assumes one
label per image, so boxes, masks, point sets, several heads or character sequences all fit.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_datasets(register):
    """Register datasets: loaders that turn a path (or nothing, for embedded data) into splits."""


@hookspec
def register_backbones(register):
    """Register backbones: feature extractors, usually pretrained, or families of them."""


@hookspec
def register_heads(register):
    """Register heads: small trainable modules put on top of a backbone."""


@hookspec
def register_losses(register):
    """Register losses."""


@hookspec
def register_exporters(register):
    """Register exporters that write a trained model in a deployable format."""


@hookspec
def register_tasks(register):
    """Register tasks: a default recipe `zoo train <task>` runs."""
