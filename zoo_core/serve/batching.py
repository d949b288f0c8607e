"""Requests that arrive together are predicted together.

Every image a request brings is queued with its prediction options and a future. One collector task
takes the first waiting image, then keeps taking more until `max_batch` images or `wait_ms` have
passed, and hands the batch to an inference thread (never the event loop, which keeps accepting
requests meanwhile). While all `workers` threads are busy nothing is taken off the queue, so under
load the next batch fills up by itself: throughput grows with load, and an idle server answers a
lone request after at most `wait_ms`. Images with different options (top_k=1 and top_k=5) are
predicted in separate calls of the same batch, since the Predictor takes one set of options a call.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image


@dataclass
class Job:
    image: Image.Image
    options: dict[str, Any]
    future: asyncio.Future
    key: tuple = field(init=False)

    def __post_init__(self):
        self.key = tuple(sorted(self.options.items()))


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    largest: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "images": self.images, "largest_batch": self.largest,
                "mean_batch": round(self.images / self.batches, 2) if self.batches else 0.0}


class Batcher:
    """predict(images, **options) -> predictions, batched across concurrent callers."""

    def __init__(self, predict: Callable[..., list], max_batch: int = 16, wait_ms: float = 5.0, workers: int = 1):
        self._predict = predict
        self.max_batch, self.wait_s, self.workers = max(1, max_batch), max(0.0, wait_ms) / 1000, max(1, workers)
        self.stats = BatchStats()
        self._queue: asyncio.Queue[Job] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._collector: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="zoo-inference")

    async def start(self) -> None:
        self._queue, self._slots = asyncio.Queue(), asyncio.Semaphore(self.workers)
        self._collector = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def predict(self, images: list[Image.Image], options: dict[str, Any]) -> list:
        loop = asyncio.get_running_loop()
        jobs = [Job(im, options, loop.create_future()) for im in images]
        for job in jobs:
            self._queue.put_nowait(job)
        return list(await asyncio.gather(*(job.future for job in jobs)))

    async def _collect(self) -> None:
        while True:
            await self._slots.acquire()  # wait for a free inference thread before taking work
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:
                    break
            asyncio.create_task(self._run(batch))

    async def _run(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.stats.batches += 1
            self.stats.images += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            groups: dict[tuple, list[Job]] = {}
            for job in batch:
                groups.setdefault(job.key, []).append(job)
            for jobs in groups.values():
                try:
                    predictions = await loop.run_in_executor(
                        self._pool, lambda jobs=jobs: self._predict([j.image for j in jobs], batch_size=len(jobs), **jobs[0].options))
                except Exception as e:  # the requests waiting on it answer with it; the server goes on
                    for j in jobs:
                        if not j.future.done():
                            j.future.set_exception(e)
                    continue
                for j, p in zip(jobs, predictions):
                    if not j.future.done():  # a client that went away cancelled its future
                        j.future.set_result(p)
        finally:
            self._slots.release()
