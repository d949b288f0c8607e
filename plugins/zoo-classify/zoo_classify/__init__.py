"""zoo-classify: registers the classify task and its datasets, heads and losses with zoo."""

from zoo_core import DatasetSpec, HeadSpec, LossSpec, hookimpl

from .datasets import csv_dataset, digits_dataset, folder_dataset, is_csv, is_folder
from .heads import linear_head, mlp_head
from .losses import bce_loss, cross_entropy_loss
from .task import LOGITS, ClassifyTask


@hookimpl
def register_tasks(register):
    register(ClassifyTask)


@hookimpl
def register_datasets(register):
    register(DatasetSpec("digits", digits_dataset, LOGITS,
                         "1,797 real 8x8 handwritten digits from scikit-learn, 10 classes (embedded)",
                         recipe={"backbone": "cnn2", "pretrained": False, "head": "linear", "mode": "finetune",
                                 "backbone_lr_mult": 1.0, "augment": "light", "epochs": 15, "batch_size": 64, "lr": 3e-3}))
    register(DatasetSpec("image-folder", folder_dataset, LOGITS,
                         "DIR/<class>/*.jpg, or DIR/train/<class> and DIR/val/<class>", matches=is_folder))
    register(DatasetSpec("image-csv", csv_dataset, LOGITS,
                         "CSV with path and label columns (paths relative to the CSV); optional split column",
                         matches=is_csv))


@hookimpl
def register_heads(register):
    register(HeadSpec("linear", linear_head, LOGITS, description="one linear layer (options: dropout)"))
    register(HeadSpec("mlp", mlp_head, LOGITS, description="Linear -> ReLU -> Dropout -> Linear (options: hidden, dropout)"))


@hookimpl
def register_losses(register):
    register(LossSpec("cross-entropy", cross_entropy_loss, (LOGITS,), "softmax cross-entropy (options: label_smoothing)"))
    register(LossSpec("bce", bce_loss, (LOGITS,), "binary cross-entropy on one logit; two classes only"))
