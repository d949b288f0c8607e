"""Data loaders: the one place batches are configured (workers, pinning, prefetch, the seeded order a resumed
run repeats, and the share each process takes when several train together)."""

from __future__ import annotations

import functools
import os
import random

import numpy as np
import torch

from ..base.cpus import usable_cpus
from ..base.device import Machine
from ..base.distributed import SINGLE, Dist, RoundRobinBatches, ShardedBatches
from ..data.types import DataSplits


def _seed_worker(rank: int, worker_id: int) -> None:
    """A loader process's seeds: torch's own (base seed + worker id), offset per training process."""
    if rank:
        torch.manual_seed((torch.initial_seed() + rank * 2**40) % 2**63)
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def loader_workers(cfg, machine: Machine, data: DataSplits) -> int:
    """Data-loading processes for this machine: none for data already in memory (a process per batch
    costs more than indexing a tensor); else, per training process, its share of the cores less one for
    the trainer itself, at most 8 feeding a GPU and 4 on a CPU, where they compete with training."""
    if cfg["workers"] >= 0:
        return cfg["workers"]
    if data.in_memory:
        return 0
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cores = max(1, usable_cpus().count // local_processes)  # the affinity mask and cgroup quota, not the host's
    return max(1, min(8 if machine.device.type == "cuda" else 4, cores - 1))


def data_loader(dataset, cfg, machine: Machine, data: DataSplits, collate, shuffle: bool,
                dist: Dist = SINGLE) -> torch.utils.data.DataLoader:
    """Batches of `dataset`. batch_size is the global batch: with several processes each takes its share
    of the very batches one process would draw (distributed.ShardedBatches), so N processes train like one."""
    workers = loader_workers(cfg, machine, data)
    cuda = machine.device.type == "cuda"
    g = torch.Generator()
    g.manual_seed(cfg["seed"])
    common = dict(num_workers=workers, collate_fn=collate, pin_memory=cuda, persistent_workers=workers > 0,
                  worker_init_fn=functools.partial(_seed_worker, dist.rank),
                  # a GPU step is short: keep more batches decoded ahead of it
                  prefetch_factor=(4 if cuda else 2) if workers > 0 else None)
    B = cfg["batch_size"]
    # A last batch of one breaks BatchNorm in training; dropping a few samples an epoch is harmless.
    drop_last = shuffle and len(dataset) > B
    if not dist.active:
        if shuffle and data.batch_sampler is not None:
            loader = torch.utils.data.DataLoader(dataset, batch_sampler=data.batch_sampler(dataset, B, g), **common)
        else:
            loader = torch.utils.data.DataLoader(dataset, batch_size=B, shuffle=shuffle, generator=g,
                                                 drop_last=drop_last, **common)
    else:  # the same batches from the same generator as above, shared out (see distributed.py)
        from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

        if shuffle:
            own = data.batch_sampler is not None
            batches = (data.batch_sampler(dataset, B, g) if own
                       else BatchSampler(RandomSampler(dataset, generator=g), B, drop_last))
            sampler = ShardedBatches(batches, dist.rank, dist.world)
        else:
            own = False
            sampler = RoundRobinBatches(BatchSampler(SequentialSampler(dataset), B, False), dist.rank, dist.world)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, generator=None if own else g, **common)
    loader.zoo_generator = g  # re-seeded every epoch, so a resumed run draws what the uninterrupted one would
    return loader
