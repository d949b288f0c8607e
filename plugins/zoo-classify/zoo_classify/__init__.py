"""zoo-classify: registers the classify and multilabel tasks and their datasets, heads and losses with zoo."""

from zoo_core import BackboneSpec, DatasetSpec, HeadSpec, LossSpec, hookimpl

from .backbones import text_cnn
from .datasets import csv_dataset, digits_dataset, folder_dataset, is_csv, is_folder
from .heads import linear_head, mlp_head
from .losses import bce_loss, cross_entropy_loss
from .multilabel import MULTILABEL, MultiLabelTask, group_cross_entropy_loss
from .multilabel_data import captcha_dataset
from .multilabel_data import csv_dataset as multilabel_csv_dataset
from .multilabel_data import folder_dataset as multilabel_folder_dataset
from .task import LOGITS, ClassifyTask


@hookimpl
def register_tasks(register):
    register(ClassifyTask)
    register(MultiLabelTask)


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
    # multilabel: the source's captcha recipe, a small CNN from scratch on 4 characters x 36 symbols
    register(DatasetSpec("captcha", captcha_dataset, MULTILABEL,
                         "captchas drawn with the captcha package (seeded, cached): 4 characters x 36 symbols (embedded)",
                         recipe={"backbone": "text-cnn", "pretrained": False, "head": "linear", "mode": "finetune",
                                 "backbone_lr_mult": 1.0, "augment": "none", "loss": "group-cross-entropy", "epochs": 8,
                                 "batch_size": 64, "lr": 3e-3}))
    register(DatasetSpec("multilabel-folder", multilabel_folder_dataset, MULTILABEL,
                         "DIR/<label>/<image>: an image name in several label folders has all those labels",
                         matches=is_folder))
    register(DatasetSpec("multilabel-csv", multilabel_csv_dataset, MULTILABEL,
                         "CSV with path and labels columns, labels separated by ';' (cat;outdoor); optional split column",
                         matches=is_csv))


@hookimpl
def register_backbones(register):
    register(BackboneSpec("text-cnn", text_cnn, "four conv blocks for a line of text (captchas): 1 x 32 x 80 input, "
                                                "one feature vector per column; from scratch"))


@hookimpl
def register_heads(register):
    # one logit per class serves both tasks: softmax over them (classify) or a sigmoid each (multilabel)
    register(HeadSpec("linear", linear_head, (LOGITS, MULTILABEL), description="one linear layer (options: dropout)"))
    register(HeadSpec("mlp", mlp_head, (LOGITS, MULTILABEL), description="Linear -> ReLU -> Dropout -> Linear (options: hidden, dropout)"))


@hookimpl
def register_losses(register):
    register(LossSpec("cross-entropy", cross_entropy_loss, (LOGITS,), "softmax cross-entropy (options: label_smoothing)"))
    register(LossSpec("bce", bce_loss, (LOGITS, MULTILABEL),
                      "binary cross-entropy: classify, one logit for two classes; multilabel, one per label"))
    register(LossSpec("group-cross-entropy", group_cross_entropy_loss, (MULTILABEL,),
                      "multilabel with groups of which exactly one label holds: softmax cross-entropy per group"))
