"""Cached features: a frozen backbone's features computed once per image (through the feature cache on
disk, cache.py) and served to the head in their place, and the CPU default that trains that way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..base.distributed import SINGLE, Dist
from ..base.errors import ZooError
from ..data.transforms import has_geometry
from .cache import FeatureStore, cache_root, feature_key, image_digest, remove_stale_temp

# On a CPU the backbone runs over about this many input pixels at a time (8 images of 224 px): _features_in_chunks.
CPU_CHUNK_PIXELS = 8 * 224 * 224


class FeatureCollate:
    """Batches of cached samples: the task collates targets and geometry as usual, the inputs are the
    stacked features (a tensor, or one tensor per pyramid level)."""

    def __init__(self, task):
        self.task = task

    def __call__(self, samples: list[dict[str, Any]]):
        features = [s["image"] for s in samples]
        batch = self.task.collate([{**s, "image": torch.empty(0)} for s in samples])
        batch.inputs = (torch.stack(features) if isinstance(features[0], torch.Tensor)
                        else [torch.stack(level) for level in zip(*features)])
        return batch


@dataclass
class FeatureCounts:
    """How many images' features came from the disk cache and how many were computed (tests read it)."""

    reused: int = 0
    computed: int = 0


LAST_COUNTS = FeatureCounts()


@torch.no_grad()
def precompute_features(model, task, dataset, cfg: dict[str, Any], machine, data, limit_gb: float,
                        total_images: int, store: FeatureStore | None = None,
                        log: Callable[[str], None] = lambda m: None, dist: Dist = SINGLE) -> list[dict[str, Any]]:
    """What the head consumes (pooled features or the pyramid), once per image: a frozen backbone gives
    the same features every epoch, so the epochs after that cost only the head (the textbook's
    "features + linear"). `dataset` is a SampleDataset holding the eval transform. Features found in
    `store` are not computed again; new ones are added to it (by rank 0). Several processes each compute
    a share of the missing images and swap them, so every process holds all features for the price of
    1/N of the forward passes. Refuses, before filling memory, when the features would not fit `limit_gb`."""
    from tqdm import tqdm

    from .loaders import data_loader  # the one place loaders are configured

    raw_samples = [dict(dataset.raw[i]) for i in range(len(dataset))]
    digests = [image_digest(s["image"]) for s in raw_samples] if store is not None else []
    found = store.lookup(digests) if store is not None else {}
    per_image: list[Any] = [found.get(d) for d in digests] if store is not None else [None] * len(raw_samples)
    others: list[dict[str, Any] | None] = [None] * len(raw_samples)  # target, geometry, id of each sample

    def check_fits(f: Any) -> None:
        size = sum(t.numel() for t in (f if isinstance(f, tuple) else [f])) * 4
        needed = size * total_images / 2**30
        if needed > limit_gb:
            raise ZooError(f"--cache-features would hold {needed:.1f} GiB of features ({size / 2**20:.2f} MiB per image, "
                           f"{total_images} images), over cache_limit_gb={limit_gb:g}; use a smaller --image-size, "
                           "raise it with --set cache_limit_gb=N, or train without --cache-features")

    for i, f in enumerate(per_image):  # reused: the sample's other fields without running the backbone
        if f is None:
            continue
        if has_geometry(raw_samples[i].get("target")):
            others[i] = {k: v for k, v in dataset[i].items() if k != "image"}
        else:
            s = raw_samples[i]
            others[i] = {"target": s.get("target"), "id": s.get("id", str(s["image"]) if isinstance(s["image"], (str, Path)) else ""),
                         "geometry": None, **{k: v for k, v in s.items() if k not in ("image", "target", "id")}}
    if found:
        check_fits(next(iter(found.values())))
    missing = [i for i, f in enumerate(per_image) if f is None]
    mine = missing[dist.rank::dist.world]  # this process's share (all of them when alone)
    computed: dict[int, tuple[Any, dict[str, Any]]] = {}  # image index: (features, the sample's other fields)
    if mine:
        model.eval()
        subset = torch.utils.data.Subset(dataset, mine)
        loader = data_loader(subset, cfg, machine, data, lambda s: (s, task.collate(s)), shuffle=False)
        position = iter(mine)
        for raw, batch in tqdm(loader, desc="computing backbone features", unit="batch", disable=None, leave=False):
            inputs = batch.inputs.to(machine.device, non_blocking=True)
            if inputs.dim() == 4:  # channels_last: the convolutions' fast path on CPUs too (measured 1.4-2x on
                inputs = inputs.contiguous(memory_format=torch.channels_last)  # resnet18, efficientnet_lite0)
            with machine.autocast():
                features = _features_in_chunks(model, inputs, machine)
            batch_features = (list(features.float().cpu()) if isinstance(features, torch.Tensor)
                              else list(zip(*(level.float().cpu() for level in features))))
            if not computed and not found:
                check_fits(batch_features[0])
            for s, f in zip(raw, batch_features):
                computed[next(position)] = (f, {k: v for k, v in s.items() if k != "image"})
    if dist.active and missing:  # every process trains on all of them: swap the shares
        computed = {i: c for share in dist.all_gather(computed) for i, c in share.items()}
        if not found:  # a process whose share was empty checks too, so all refuse alike
            check_fits(computed[missing[0]][0])
    for i, (f, rest) in computed.items():
        per_image[i], others[i] = f, rest
    LAST_COUNTS.reused += len(per_image) - len(missing)
    LAST_COUNTS.computed += len(missing)
    if store is not None and dist.main:  # one writer; the shard holds every process's share
        store.add({digests[i]: per_image[i] for i in missing})
    return [{**o, "image": f} for o, f in zip(others, per_image)]


def _features_in_chunks(model, inputs: torch.Tensor, machine):
    """model.features of a batch; on a CPU in chunks of about 8 images of 224 px, whose activations stay
    in the processor's caches: on the 2-core VM, inference in chunks of 8 against one batch of 32 was
    2.6x faster for efficientnet_lite0 (190 against 73 img/s), 1.5x for resnet50 and 1.6x for
    mobilenetv3_large_100 (channels_last, 224 px). Eval mode: a chunk's features are the batch's."""
    chunk = max(1, CPU_CHUNK_PIXELS // (inputs.shape[-2] * inputs.shape[-1])) if inputs.dim() == 4 else len(inputs)
    if machine.device.type != "cpu" or chunk >= len(inputs):
        return model.features(inputs)
    parts = [model.features(part) for part in inputs.split(chunk)]
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return [torch.cat(levels) for levels in zip(*parts)]


def cache_features(model, task, data, cfg: dict[str, Any], machine, log: Callable[[str], None], dist: Dist = SINGLE):
    """(train features, val features, the DataSplits over them) for a run with --cache-features: both
    splits through the eval transform (features are computed once, so without random augmentation),
    reusing and filling the disk cache unless cache_disk_gb is 0."""
    from ..contract.components import DataSplits
    from ..data.transforms import SampleDataset

    eval_transform = data.val.transform
    store = None
    if cfg["cache_disk_gb"] > 0:
        key, about = feature_key(model, task, eval_transform, cfg, machine)
        store = FeatureStore(key, about, cfg["cache_disk_gb"], log)
        if dist.main:
            remove_stale_temp(cache_root())
    before = FeatureCounts(LAST_COUNTS.reused, LAST_COUNTS.computed)
    total = len(data.train) + len(data.val)
    splits = [precompute_features(model, task, SampleDataset(d.raw, eval_transform, d.channels, d.images), cfg, machine,
                                  data, cfg["cache_limit_gb"], total, store, log, dist)
              for d in (data.train, data.val)]
    reused, computed = LAST_COUNTS.reused - before.reused, LAST_COUNTS.computed - before.computed
    where = f" (cache {store.dir})" if store is not None else " (in memory only: cache_disk_gb=0)"
    shared = f" by {dist.world} processes, a share each" if dist.active and computed else ""
    log(f"features: {reused} reused, {computed} computed{shared}{where}")
    model.inputs_are_features = True
    features = DataSplits(splits[0], splits[1], data.info, data.skipped, data.description + ", backbone features cached",
                          in_memory=True, batch_sampler=data.batch_sampler)
    return splits[0], splits[1], features


def cacheable(task, zoo, head: str | None) -> str | None:
    """None when backbone features may be computed once and reused; else why not (the task opts out,
    or the head reads the input image, which a feature cache does not hold)."""
    if not task.cache_features:
        return f"task '{task.name}' makes its inputs afresh every epoch"
    if head and zoo.heads.get(head).spec.input == "pyramid+image":
        return f"head '{head}' reads the input image itself"
    return None


def apply_cpu_recipe(cfg: dict[str, Any], chosen: set[str], log: Callable[[str], None] | None) -> None:
    """On a CPU, your own data (--data) with a pretrained backbone trains frozen on cached features unless
    you, a run file or the dataset's recipe chose the mode or the cache (`chosen`): full fine-tuning of
    a 224 px backbone takes minutes on a laptop where the head on cached features takes seconds.
    On a GPU the task's own (stronger, staged) recipe stays. The values are settings.CPU_RECIPE."""
    from ..base.device import pick_device
    from ..base.settings import CPU_RECIPE
    from ..model.backbones import SMALL_NETS

    if not cfg["cpu_recipe"] or cfg["data"] is None:
        return
    if not cfg["weights"] and (not cfg["pretrained"] or cfg["backbone"] in SMALL_NETS):
        return  # frozen random filters are worth nothing: from scratch, the task's recipe trains everything
    if chosen & {"mode", "cache_features"} or cfg["mode"] == "frozen" and cfg["cache_features"]:
        return
    try:
        if pick_device(cfg["device"]).type != "cpu":
            return
    except ZooError:
        return  # the device error is reported where the machine is set up
    cfg.update({k: v for k, v in CPU_RECIPE.items() if k not in chosen})
    if log:
        log(f"CPU: frozen backbone with cached features, {cfg['epochs']} epochs; pass --mode staged for full "
            "fine-tuning (or --no-cpu-recipe for the task's own recipe)"
            + ("; a linear head is fitted full-batch by L-BFGS (--optimizer adamw: minibatches)"
               if cfg["optimizer"] == "lbfgs" else ""))
