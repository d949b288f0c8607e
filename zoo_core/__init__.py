"""zoo: transfer learning for computer vision, one command per task, extended by plugins.

The public API, in two named parts; a plugin imports nothing else from zoo_core.

USER_API (api.py), what a script calls; the `zoo` command is a thin layer over it:
    train, load_run, load_exported, load_pretrained, pull, push, export, compress, lr_find, inspect, catalog;
    what they return: TrainResult, Run, Exported, Pretrained, Predictor; Interrupted (Ctrl-C while training)

PLUGIN_SDK, what a plugin builds with:
    contract       hookimpl, Task, Metrics, Prediction, StepOutput, Batch, DataSplits, DataConfig, Backbone,
                   FeatureLevel, PretrainedHead, TimmModelBackbone, Setting, ZooError, did_you_mean
    registration   DatasetSpec, BackboneSpec, HeadSpec, LossSpec, ExporterSpec, TaskSpec, CommandSpec
                   (no torch: a plugin's registration module imports only these and hookimpl)
    data           load_image, open_image, image_size, find_images, scan_images, check_listed_images, read_csv,
                   resolve_path, PATH_COLUMNS, stratified_split, random_split, skipped_example, split_column,
                   is_missing
    formats        read_json, read_yaml, read_xml, read_text, read_coco, declared_size, key_lines
                   (other tools' annotation files, size- and bomb-checked, refused in one line)
    transforms     Preprocess, Augment, Geometry, image_transforms, collate_samples, to_sample, input_to_image
    pictures       draw_caption, draw_boxes, draw_points, draw_mask, image_grid, color, plot_confusion_matrix
    scenes         generate_scenes, Scene, SCENE_CLASSES, textured_canvas, photo_crop, shape_mask, skimage_image
                   (generated embedded data; needs scikit-image: pip install 'zoo-core[scenes]')
    image outputs  ImagePrediction, SAVE_OPTION, side_by_side, tiled (image-valued predictions, tiled prediction)
    files          atomic_write, write_json, cache_dir
    the registry   get_zoo
    models         weights_fingerprint (which weights made a file: Predictor.info["model_fingerprint"] holds its model's)
    tests          zoo_core.testing: tiny_train, and the pytest fixture `hub` (a local Hub-compatible server)
"""

from .base.cpus import quiet_waiting as _quiet_waiting
from .base.errors import ZooError  # noqa: F401

_quiet_waiting()  # OMP_WAIT_POLICY=PASSIVE unless set: read once, when torch loads OpenMP, so before any torch import
from .contract.hookspecs import hookimpl  # noqa: F401

# Everything else loads on first use: these pull in torch, and `zoo --help` should not wait for it.
USER_API = {
    **dict.fromkeys(["train", "load_run", "load_exported", "load_pretrained", "pull", "push", "export", "compress",
                     "lr_find", "inspect", "catalog", "TrainResult", "Run", "Exported", "Pretrained", "Predictor",
                     "Interrupted"], "api"),
}
PLUGIN_SDK = {
    **dict.fromkeys(["Backbone", "Batch", "DataConfig", "DataSplits", "FeatureLevel", "Metrics", "Prediction",
                     "PretrainedHead", "StepOutput", "Task"], "contract.components"),
    **dict.fromkeys(["DatasetSpec", "BackboneSpec", "HeadSpec", "LossSpec", "ExporterSpec", "TaskSpec", "CommandSpec"],
                    "contract.specs"),
    "Setting": "base.settings",
    "did_you_mean": "base.errors",
    "TimmModelBackbone": "model.backbones",
    **dict.fromkeys(["load_image", "open_image", "image_size", "find_images", "scan_images", "check_listed_images",
                     "read_csv", "resolve_path", "PATH_COLUMNS", "stratified_split", "random_split", "skipped_example",
                     "split_column", "is_missing"], "data.images"),
    **dict.fromkeys(["read_json", "read_yaml", "read_xml", "read_text", "read_coco", "declared_size", "key_lines"],
                    "data.formats"),
    **dict.fromkeys(["Preprocess", "Augment", "Geometry", "image_transforms", "collate_samples", "to_sample",
                     "input_to_image"], "data.transforms"),
    **dict.fromkeys(["draw_caption", "draw_boxes", "draw_points", "draw_mask", "image_grid", "color"], "pictures.draw"),
    "plot_confusion_matrix": "pictures.plots",
    **dict.fromkeys(["generate_scenes", "Scene", "SCENE_CLASSES", "textured_canvas", "photo_crop", "shape_mask",
                     "skimage_image"], "data.scenes"),
    **dict.fromkeys(["ImagePrediction", "SAVE_OPTION", "side_by_side", "tiled"], "prediction.images"),
    **dict.fromkeys(["atomic_write", "write_json", "cache_dir"], "base.artifacts"),
    "get_zoo": "registry.plugins",
    "weights_fingerprint": "model.model",
}
_LAZY = {**USER_API, **PLUGIN_SDK}
__all__ = ["hookimpl", "ZooError", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'zoo_core' has no attribute {name!r}")
