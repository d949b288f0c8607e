"""The data plan: where a run's batches come from. The dataset's splits through the task's transforms
(image files decoded once for every epoch), the backbone's features cached while it is frozen
(--cache-features), data held in memory transformed once when the transform is deterministic, the two
loaders; and, for --mode staged on cached features, the switch to images when the backbone unfreezes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..base.distributed import Dist
from ..contract.components import DataSplits, Task, _apply
from ..data.decoded import DecodedImages
from ..data.transforms import SampleDataset
from .features import FeatureCollate, cache_features
from .loaders import data_loader


def load_data(zoo, task: Task, cfg: dict[str, Any], data_config, log, reference_info=None) -> DataSplits:
    """The dataset's raw splits, wrapped so each sample is loaded and goes through the task's transforms."""
    kwargs = dict(data_config=data_config, seed=cfg["seed"], val_fraction=cfg["val_fraction"], **cfg["dataset_options"])
    if reference_info is not None:
        kwargs["reference_info"] = reference_info
    data = zoo.datasets.create(cfg["dataset"], cfg["data"], **kwargs)
    if not isinstance(data, DataSplits):
        raise TypeError(f"dataset '{cfg['dataset']}' returned {type(data).__name__}, not DataSplits")
    if data.skipped:
        log(f"skipped {len(data.skipped)} unreadable file(s) (listed with reasons in the run's skipped.txt): "
            + ", ".join(Path(p).name for p, _ in data.skipped[:10]) + (" ..." if len(data.skipped) > 10 else ""))
    train_tf, eval_tf = task.transforms(data_config, cfg["augment"])
    channels = data_config.channels
    images = DecodedImages.for_run(cfg, data_config)  # image files decoded once, for every epoch (cache.py)
    data.train = SampleDataset(data.train, train_tf, channels, images)
    data.val = SampleDataset(data.val, eval_tf, channels, images)
    return data


def transformed_once(dataset, limit_gb: float):
    """The dataset's samples, transformed now and kept as a list, when they fit in `limit_gb`; else as it is."""
    if len(dataset) == 0:
        return dataset
    first = dataset[0]
    size = sum(t.numel() * t.element_size() for t in _tensors(first))
    if size * len(dataset) > limit_gb * 2**30:
        return dataset
    return [first] + [dataset[i] for i in range(1, len(dataset))]


def _tensors(obj: Any) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    _apply(obj, lambda t: found.append(t) or t)
    return found


class DataPlan:
    """The splits, the datasets and the loaders a run trains and validates on (see the module's docstring)."""

    def __init__(self, task: Task, cfg: dict[str, Any], machine, dist: Dist, data: DataSplits, start_epoch: int,
                 model, log):
        self.task, self.cfg, self.machine, self.dist = task, cfg, machine, dist
        self.images = data  # the images themselves: what the full model trains on once a staged backbone unfreezes
        self.data = data  # what the loaders read: the images, or the cached features
        collate = task.collate
        train_set, val_set = data.train, data.val
        if cfg["cache_features"] and not (cfg["mode"] == "staged" and start_epoch >= cfg["freeze_epochs"]):
            train_set, val_set, self.data = cache_features(model, task, data, cfg, machine, log, dist)
            collate = FeatureCollate(task)
        # Data held in memory through a deterministic transform gives the same tensors every epoch: transform it
        # once (validation always: the eval transform; training without augmentation, whose transform is the eval
        # one). At most a quarter of cache_limit_gb each: float tensors at the input size can outweigh the images.
        if self.data.in_memory and isinstance(val_set, SampleDataset):
            val_set = transformed_once(val_set, cfg["cache_limit_gb"] / 4)
            if cfg["augment"] == "none":
                train_set = transformed_once(train_set, cfg["cache_limit_gb"] / 4)
        self.train_set, self.val_set = train_set, val_set
        # full-batch L-BFGS: every cached feature in one batch (a few MB for a linear head's inputs)
        loader_cfg = {**cfg, "batch_size": max(1, len(train_set))} if cfg["optimizer"] == "lbfgs" else cfg
        self.train_loader = data_loader(train_set, loader_cfg, machine, self.data, collate, shuffle=True, dist=dist)
        self.val_loader = data_loader(val_set, loader_cfg, machine, self.data, collate, shuffle=False, dist=dist)

    def unfreeze(self, model, epoch: int, log) -> None:
        """--mode staged, at the epoch its backbone unfreezes: from now on images go through the whole model
        when the frozen epochs trained on cached features."""
        model.set_backbone_trainable(True)
        switched = model.inputs_are_features
        if switched:
            model.inputs_are_features = False
            images, cfg = self.images, self.cfg
            self.train_loader = data_loader(images.train, cfg, self.machine, images, self.task.collate, shuffle=True,
                                            dist=self.dist)
            self.val_loader = data_loader(images.val, cfg, self.machine, images, self.task.collate, shuffle=False,
                                          dist=self.dist)
        log(f"epoch {epoch + 1}: backbone unfrozen (lr x{self.cfg['backbone_lr_mult']})"
            + (", images through the whole model from now on" if switched else ""))
