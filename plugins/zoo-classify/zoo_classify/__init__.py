"""zoo-classify: registers the classify task and its datasets, heads and losses with zoo."""

from zoo_core import hookimpl

from .datasets import csv_dataset, digits_dataset, folder_dataset, is_csv, is_folder
from .heads import linear_head, mlp_head
from .losses import bce_loss, cross_entropy_loss
from .task import ClassifyTask


@hookimpl
def register_tasks(register):
    register("classify", ClassifyTask, description=ClassifyTask.description)


@hookimpl
def register_datasets(register):
    register("digits", digits_dataset, description="1,797 real 8x8 handwritten digits from scikit-learn, 10 classes (embedded)",
             recipe={"backbone": "cnn2", "pretrained": False, "head": "linear", "mode": "finetune",
                     "backbone_lr_mult": 1.0, "augment": "light", "epochs": 15, "batch_size": 64, "lr": 3e-3})
    register("image-folder", folder_dataset, matches=is_folder,
             description="DIR/<class>/*.jpg, or DIR/train/<class> and DIR/val/<class>")
    register("image-csv", csv_dataset, matches=is_csv,
             description="CSV with path and label columns (paths relative to the CSV); optional split column")


@hookimpl
def register_heads(register):
    register("linear", linear_head, description="one linear layer (options: dropout)")
    register("mlp", mlp_head, description="Linear -> ReLU -> Dropout -> Linear (options: hidden=128, dropout=0.2)")


@hookimpl
def register_losses(register):
    register("cross-entropy", cross_entropy_loss, description="softmax cross-entropy (options: label_smoothing)")
    register("bce", bce_loss, description="binary cross-entropy on one logit; two classes only")
