"""Batching across requests, in the service's own process: the items of concurrent requests
share one forward pass.

While the model works on one batch, newly arrived items queue; when it is done, everything
queued (up to ``max_items``) goes next. A lone request never waits for company: on a CPU,
holding it back while the model is idle gains nothing. An item that has queued for
``max_wait`` seconds is shed with ``Overloaded`` (a 503: the signal to add replicas).

Why not BentoML's own batching (a ``batchable`` API on a second service reached through
``bentoml.depends``): it costs a second process and an HTTP hop per request. On 2 cores (AMD
EPYC, `make bench-serve`, benchmarks/README.md) that route, with the same thread settings,
answered one client in raw + 7.9 ms and 32 clients at 70% of the raw model's throughput; this
one in raw + 3.0 ms and at 77%.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from typing import Any, Callable


class Overloaded(RuntimeError):
    pass


class Batcher:
    """``await batcher(items)`` -> ``run(items)``'s results for those items, in order, where
    ``run`` is called on ``executor`` with the items of every request queued meanwhile.
    ``on_batch(n)`` hears the size of each batch (the service's metric)."""

    def __init__(self, run: Callable[[list], list], executor: Executor, max_items: int, max_wait: float,
                 on_batch: Callable[[int], Any] = lambda n: None):
        self.run, self.executor, self.max_items, self.max_wait, self.on_batch = run, executor, max_items, max_wait, on_batch
        self.queue: list[tuple[Any, float, asyncio.Future]] = []
        self.worker: asyncio.Task | None = None

    async def __call__(self, items: list) -> list:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        now = time.monotonic()
        self.queue.extend((item, now, f) for item, f in zip(items, futures))
        # One worker at a time, alive while there is work (a new event loop, as an in-process
        # test client may bring, gets its own).
        if self.worker is None or self.worker.done() or self.worker.get_loop() is not loop:
            self.worker = loop.create_task(self._work())
        return list(await asyncio.gather(*futures))

    async def _work(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[: self.max_items], self.queue[self.max_items :]
            late = time.monotonic() - self.max_wait
            for _, queued, future in batch:
                if queued < late and not future.done():
                    future.set_exception(Overloaded(f"waited over {self.max_wait:g} s in the queue"))
            batch = [(item, future) for item, _, future in batch if not future.done()]  # shed or cancelled
            if not batch:
                continue
            self.on_batch(len(batch))
            try:
                results = await asyncio.wrap_future(self.executor.submit(self.run, [item for item, _ in batch]))
            except Exception as e:  # noqa: BLE001 - handed to the callers, the worker goes on
                results = [e] * len(batch)
            for (_, future), result in zip(batch, results):
                if not future.done():
                    (future.set_exception if isinstance(result, Exception) else future.set_result)(result)
