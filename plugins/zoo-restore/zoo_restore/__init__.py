"""zoo-restore: registers the restore task (deblur, denoise, super-resolution, inpainting) with zoo.

Written only against zoo-core's public API. Registering imports no torch: components are named
"module:attr" and imported when used."""

from zoo_core import DatasetSpec, HeadSpec, LossSpec, TaskSpec, hookimpl

IMAGE = "regression/image"  # the output kind (zoo's own l1 and mse losses take it too): (B, 3, s*H, s*W) restored pixels in [0, 1] for an input (B, 3, H, W)

# The embedded photos' recipe, measured on 2 CPU cores (README): the offline ImageNet EfficientNet-Lite0
# (zoo-efficientnet-lite) under the residual U-Net, everything trained (the encoder at a tenth of the rate).
EMBEDDED_RECIPE = {"backbone": "efficientnet_lite0", "pretrained": True, "image_size": 48, "head": "unet-residual",
                   "loss": "restore", "mode": "finetune", "backbone_lr_mult": 0.1, "epochs": 6, "batch_size": 16,
                   "lr": 2e-3, "augment": "standard"}


@hookimpl
def register_tasks(register):
    register(TaskSpec("restore", "zoo_restore.task:RestoreTask", IMAGE,
                      "image restoration: deblur, denoise, super-resolution, inpainting (default: real photos "
                      "degraded on the fly)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("restore-photos", "zoo_restore.datasets:photos_dataset", IMAGE,
                         "patches of the real photos in scikit-image and scikit-learn, degraded on the fly "
                         "(embedded; options: degrade, blur, noise, jpeg, motion, mask, patch, patches, seed)",
                         recipe=EMBEDDED_RECIPE))
    register(DatasetSpec("paired-folders", "zoo_restore.datasets:paired_dataset", IMAGE,
                         "degraded/ + clean/ folders, same file names (a clean image may be 2x or 4x larger: "
                         "super-resolution)", matches="zoo_restore.datasets:is_paired"))
    register(DatasetSpec("clean-folder", "zoo_restore.datasets:folder_dataset", IMAGE,
                         "any folder of clean images, degraded on the fly (same options as restore-photos)",
                         matches="zoo_restore.datasets:is_clean_folder"))


@hookimpl
def register_heads(register):
    register(HeadSpec("unet-residual", "zoo_restore.heads:unet_residual", IMAGE, input="pyramid+image",
                      description="U-Net decoder over the backbone's pyramid plus a full-resolution image branch, "
                                  "predicting the residual over the (bicubic-upscaled) input (options: channels, "
                                  "levels, y_channel)"))


@hookimpl
def register_losses(register):
    register(LossSpec("restore", "zoo_restore.losses:restore_loss", (IMAGE,),
                      "weighted sum of l1, charbonnier, mse, ssim and perceptual terms, each logged (options: "
                      "l1=1, charbonnier=0, mse=0, ssim=0, perceptual=0)"))
    register(LossSpec("charbonnier", "zoo_restore.losses:charbonnier_loss", (IMAGE,),
                      "sqrt(d^2 + eps^2): a smooth L1 (option: eps)"))
