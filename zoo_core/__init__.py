"""zoo: transfer learning for computer vision, one command per task, extended by plugins.

The public API, for plugins and scripts alike; a plugin imports nothing else from zoo_core.

Contract (components.py):  hookimpl, Task, Metrics, Prediction, StepOutput, Batch, DataSplits, DataConfig,
                           Backbone, FeatureLevel, PretrainedHead, TimmModelBackbone, Setting, ZooError
Registration (specs.py):   DatasetSpec, BackboneSpec, HeadSpec, LossSpec, ExporterSpec, TaskSpec, CommandSpec
                           (no torch: a plugin's registration module imports only these and hookimpl)
Data (data.py):            load_image, open_image, find_images, scan_images, check_listed_images, read_csv,
                           resolve_path, PATH_COLUMNS, stratified_split, random_split, skipped_example, split_column
Transforms (transforms.py): Preprocess, Augment, Geometry, image_transforms, collate_samples, to_sample,
                           input_to_image
Pictures (draw.py, plots.py): draw_caption, draw_boxes, draw_points, draw_mask, image_grid, color,
                           plot_confusion_matrix
Scenes (scenes.py):        generate_scenes, Scene, SCENE_CLASSES, textured_canvas, photo_crop, shape_mask,
                           skimage_image (generated embedded data; the plugin declares scikit-image)
Files (artifacts.py):      atomic_write, write_json, cache_dir
Running:                   train, load_run, load_exported, pull, load_pretrained, get_zoo; zoo_core.testing.tiny_train for tests
"""

from .base.errors import ZooError  # noqa: F401
from .contract.hookspecs import hookimpl  # noqa: F401

# Everything else loads on first use: these pull in torch, and `zoo --help` should not wait for it.
_LAZY = {
    **dict.fromkeys(["Backbone", "Batch", "DataConfig", "DataSplits", "FeatureLevel", "Metrics", "Prediction",
                     "PretrainedHead", "StepOutput", "Task"], "contract.components"),
    **dict.fromkeys(["DatasetSpec", "BackboneSpec", "HeadSpec", "LossSpec", "ExporterSpec", "TaskSpec", "CommandSpec"],
                    "contract.specs"),
    "Setting": "base.settings",
    "TimmModelBackbone": "model.backbones",
    **dict.fromkeys(["load_image", "open_image", "find_images", "scan_images", "check_listed_images", "read_csv",
                     "resolve_path", "PATH_COLUMNS", "stratified_split", "random_split", "skipped_example",
                     "split_column"], "data.images"),
    **dict.fromkeys(["Preprocess", "Augment", "Geometry", "image_transforms", "collate_samples", "to_sample",
                     "input_to_image"], "data.transforms"),
    **dict.fromkeys(["draw_caption", "draw_boxes", "draw_points", "draw_mask", "image_grid", "color"], "pictures.draw"),
    "plot_confusion_matrix": "pictures.plots",
    **dict.fromkeys(["generate_scenes", "Scene", "SCENE_CLASSES", "textured_canvas", "photo_crop", "shape_mask",
                     "skimage_image"], "data.scenes"),
    **dict.fromkeys(["atomic_write", "write_json", "cache_dir"], "base.artifacts"),
    **dict.fromkeys(["train", "load_run", "Run", "load_pretrained", "Pretrained", "Predictor", "pull",
                     "load_exported", "Exported"], "api"),
    "get_zoo": "registry.plugins",
}
__all__ = ["hookimpl", "ZooError", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'zoo_core' has no attribute {name!r}")
