"""Several training processes (DistributedDataParallel), on one machine or many, through torch's own
launcher (torchrun, torch.distributed.run).

`zoo train ... --nproc N` re-launches the same command under torch.distributed.run with N processes
(`launch`); a run started by torchrun directly (several machines) is recognised by the environment
torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK). One process per device; nccl on CUDA, gloo on CPU.

What makes N processes train like one: the batch size is global (each process takes batch_size / N of
every batch the single-process run would draw, in the same order: `ShardedBatches`), gradients are
averaged by DDP, losses are summed over processes, validation batches are spread over the processes and
their outputs gathered to rank 0, which updates the task's Metrics with the very batches, in the very
order, a single process would (so every task's validation metrics are those of one process on the whole
split). Only rank 0 writes files and logs.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from .errors import ZooError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def under_launcher() -> bool:
    """True in a process torchrun (or zoo train --nproc) started as one of several."""
    return all(k in os.environ for k in ENV_KEYS) and int(os.environ["WORLD_SIZE"]) > 1


def local_rank() -> int:
    """This process's index among the training processes on this machine (0 when alone)."""
    return int(os.environ["LOCAL_RANK"]) if under_launcher() else 0


@dataclass
class Dist:
    """This process's place among the training processes; a single process is rank 0 of 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    objects: Any = None  # a gloo group for Python objects (works beside nccl, on CPU tensors)
    _wrapped: dict = field(default_factory=dict)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0, group=self.objects)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj`, in rank order, on rank 0 (None elsewhere)."""
        if not self.active:
            return [obj]
        out = [None] * self.world if self.main else None
        torch.distributed.gather_object(obj, out, dst=0, group=self.objects)
        return out

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj, group=self.objects)
        return out

    def all_sum(self, values: list[torch.Tensor]) -> list[torch.Tensor]:
        """Sums over all ranks of a list of scalar tensors (one collective)."""
        if not self.active or not values:
            return values
        # a few numbers: summed on the CPU, over gloo (beside nccl too), whatever device they come from
        flat = torch.stack([v.detach().double().cpu().reshape(()) for v in values])
        torch.distributed.all_reduce(flat, group=self.objects)
        return list(flat.unbind())

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier(group=self.objects)

    def wrap(self, model: torch.nn.Module, device: torch.device, find_unused: bool) -> torch.nn.Module:
        """The module a training step runs: DDP around the model when several processes train. DDP
        knows the parameters that required gradients when it was built, so unfreezing the backbone
        (staged training) builds a new wrapper."""
        if not self.active:
            return model
        trainable = tuple(p.requires_grad for p in model.parameters())
        if trainable not in self._wrapped:
            from torch.nn.parallel import DistributedDataParallel

            self._wrapped.clear()
            self._wrapped[trainable] = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=find_unused)
        return self._wrapped[trainable]


SINGLE = Dist()


def setup(device: torch.device) -> Dist:
    """Join the other processes when started by torchrun; a single process otherwise."""
    if not under_launcher():
        return Dist()
    import torch.distributed as td

    rank, world, local = (int(os.environ[k]) for k in ENV_KEYS)
    if not td.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        td.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    objects = td.new_group(backend="gloo") if td.get_backend() != "gloo" else None
    return Dist(rank, world, local, objects)


def shutdown() -> None:
    """Leave the process group: a process that exits with it open can abort in gloo's destructor."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        try:
            torch.distributed.destroy_process_group()
        except Exception:
            pass


class ShardedBatches(torch.utils.data.Sampler):
    """This rank's part of each global batch: the batch sampler a single process would use draws the
    batches (same generator, same order), and rank r takes samples r, r+N, r+2N... of each. Batches are
    trimmed to a multiple of N so every process takes the same number of samples (DDP averages the
    processes' gradients, which is the mean over the global batch only when their shares are equal)."""

    def __init__(self, batches, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            batch = list(batch)
            usable = len(batch) - len(batch) % self.world
            if usable:
                yield batch[:usable][self.rank::self.world]

    def __len__(self) -> int:
        return sum(1 for _ in self._sizes())

    def _sizes(self):
        # the length without drawing from the generator: every batch but perhaps the last is full
        n = len(self.batches)
        if n == 0:
            return
        sampler = getattr(self.batches, "sampler", None)
        size = getattr(self.batches, "batch_size", None)
        if sampler is not None and size:
            total = len(sampler)
            full, rest = divmod(total, size)
            sizes = [size] * full + ([rest] if rest and not self.batches.drop_last else [])
        else:
            sizes = [self.world] * n  # a task's batch sampler: assume its batches hold at least N samples
        yield from (s for s in sizes if s >= self.world)


class RoundRobinBatches(torch.utils.data.Sampler):
    """Validation: whole batches of the single-process order, batch k to rank k mod N, so rank 0 can
    update the metrics with exactly the single-process batches."""

    def __init__(self, batches, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self):
        for k, batch in enumerate(self.batches):
            if k % self.world == self.rank:
                yield batch

    def __len__(self) -> int:
        return len(range(self.rank, len(self.batches), self.world))

    def rounds(self) -> int:
        return -(-len(self.batches) // self.world)


def launch(nproc: int, argv: list[str]) -> int:
    """Run `zoo <argv>` in `nproc` processes under torch.distributed.run on this machine; the exit code."""
    # the launcher's own logs (a worker failed, a signal came) would repeat what the workers say; read at import
    os.environ.setdefault("LOGLEVEL", "CRITICAL")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if nproc < 1:
        raise ZooError(f"--nproc must be >= 1, got {nproc}")
    # torchrun would set 1 and warn; share the cores out instead (each process is one trainer)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "zoo_core.cli", *argv])
    import logging

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    from torch.distributed.elastic.multiprocessing.api import SignalException

    try:
        run(args)
    except ChildFailedError as e:
        codes = [f.exitcode for f in e.failures.values()]
        # a worker ended by a signal has a negative code; the first real one is what the user gets
        return next((c for c in codes if c > 0), 1)
    except SignalException as e:  # Ctrl-C or SIGTERM reached the launcher too: rank 0 said how to resume
        return 143 if e.sigval == signal.SIGTERM else 130
    return 0


def command_line(command: str) -> list[str]:
    """This process's `zoo COMMAND ...` arguments minus --nproc N (each launched process is one of N)."""
    argv = sys.argv[1:]
    if command not in argv:
        raise ZooError(f"--nproc re-runs the zoo command line, which is not 'zoo {command} ...' here; "
                       f"launch with torchrun --nproc-per-node N -m zoo_core.cli {command} ...")
    out, skip = [], False
    for token in argv[argv.index(command):]:
        if skip:
            skip = False
        elif token == "--nproc":
            skip = True
        elif not token.startswith("--nproc="):
            out.append(token)
    return out


def is_worker() -> bool:
    return under_launcher() and int(os.environ.get("RANK", "0")) != 0


__all__ = ["Dist", "SINGLE", "setup", "shutdown", "launch", "ShardedBatches", "RoundRobinBatches", "under_launcher",
           "command_line", "is_worker", "local_rank"]
