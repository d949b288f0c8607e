"""`tiny`: the smallest complete task, for testing what is not a task (the core, a backbone, an exporter, a
command) without installing a task plugin. It is a plugin like any other: this module is its registration
module, found through a `zoo` entry point that the `tiny_task` fixture installs for the test session only
(zoo_core/testing/fixtures.py), so the core still knows no task and `zoo list` outside tests never shows it.

What it does, like classification at its plainest: a folder per class (DIR/<class>/*.png, or DIR/train/<class>
and DIR/val/<class>), or without --data 48 generated colour swatches of three classes; one linear layer on the
backbone's pooled features, softmax cross-entropy, accuracy, and the most probable class per image. Nothing in
it is meant to be good: it trains in well under a second with cnn2 on 16 px images.

It imports only zoo_core's public API, as a plugin must, and no torch until the task is used
(the Task class is in tinytask_task.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo_core import DatasetSpec, HeadSpec, LossSpec, TaskSpec, hookimpl

NAME = "tiny"
OUTPUT = "logits/tiny"


@hookimpl
def register_tasks(register):
    register(TaskSpec(NAME, f"{__name__}_task:TinyTask", OUTPUT,
                      "a test task: colour classes, accuracy (zoo_core.testing)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("tiny-swatches", f"{__name__}:swatches_dataset", OUTPUT,
                         "48 generated noisy colour swatches, 3 classes (embedded)",
                         recipe={"backbone": "cnn2", "pretrained": False, "image_size": 16, "mode": "finetune"}))
    register(DatasetSpec("tiny-folder", f"{__name__}:folder_dataset", OUTPUT, "DIR/<class>/*.png",
                         matches=f"{__name__}:is_folder"))


@hookimpl
def register_heads(register):
    register(HeadSpec("tiny-linear", f"{__name__}:linear_head", OUTPUT, description="one linear layer"))


@hookimpl
def register_losses(register):
    register(LossSpec("tiny-cross-entropy", f"{__name__}:cross_entropy", (OUTPUT,), "softmax cross-entropy"))


# ------------------------------------------------------------------------------------------------ data

def _splits(items: list[tuple[Any, int]], classes: list[str], val_fraction: float, seed: int, description: str,
            **extra):
    from zoo_core import DataSplits, stratified_split

    train_idx, val_idx = stratified_split([y for _, y in items], val_fraction, seed)
    as_samples = lambda idx: [{"image": items[i][0], "target": items[i][1]} for i in idx]  # noqa: E731
    return DataSplits(as_samples(train_idx), as_samples(val_idx), {"classes": classes}, description=description,
                      **extra)


def swatches_dataset(source, *, data_config, seed: int, val_fraction: float, reference_info=None, count: int = 48):
    from zoo_core.testing import COLOURS, swatch

    classes = list(COLOURS)
    items = [(swatch(COLOURS[classes[i % 3]], seed=i), i % 3) for i in range(count)]
    return _splits(items, classes, val_fraction, seed, f"{count} generated colour swatches", in_memory=True)


def is_folder(source: str) -> bool:
    return Path(source).is_dir()


def folder_dataset(source: str, *, data_config, seed: int, val_fraction: float, reference_info=None):
    from zoo_core import DataSplits, ZooError, find_images

    root = Path(source)
    presplit = (root / "train").is_dir() and (root / "val").is_dir()
    parts = [root / "train", root / "val"] if presplit else [root]
    folders = {part: {d.name: find_images([d]) for d in sorted(part.iterdir()) if d.is_dir()} for part in parts}
    classes = reference_info["classes"] if reference_info else sorted({c for f in folders.values() for c in f})
    if len(classes) < 2:
        raise ZooError(f"{root}: the tiny task needs two class folders or more")
    items = {part: [(p, classes.index(c)) for c, files in f.items() for p in files] for part, f in folders.items()}
    if presplit:
        return DataSplits(*([{"image": p, "target": y} for p, y in items[part]] for part in parts),
                          {"classes": classes}, description=f"{root} (train/ and val/)")
    return _splits(items[root], classes, val_fraction, seed, f"{root} ({len(classes)} classes)")


# ----------------------------------------------------------------------------------------- the model

def linear_head(backbone, info: dict[str, Any]):
    from torch import nn

    return nn.Linear(backbone.num_features, len(info["classes"]))


def cross_entropy(info: dict[str, Any]):
    from torch import nn

    return nn.CrossEntropyLoss()
