"""Batching across requests, in the service's own process: the items of concurrent requests
share one forward pass.

While the model works on one batch, newly arrived items queue; when it is done, everything
queued (up to ``max_items``) goes next. A lone request never waits for company: on a CPU,
holding it back while the model is idle gains nothing. An item that has queued for
``max_wait`` seconds is shed with ``Overloaded`` (a 503: the signal to add replicas).

The model's own thread takes the next batch as soon as the last one is done, not the event
loop: under load the loop is busy writing the last batch's responses, and the model waited
for it to get round to the queue. At 32 clients on 2 cores (AMD EPYC, 10 paired blocks of 8 s
against the version the loop drove) that gave 1.12x the throughput (median; 1.03x-1.43x) and
15% less model CPU per request; one client was as fast (1.02x). Each batch goes to the back of
the executor's queue, so other work given to it (explanations) still takes its turn.

Why not BentoML's own batching (a ``batchable`` API on a second service reached through
``bentoml.depends``): it costs a second process and an HTTP hop per request. On 2 cores (AMD
EPYC, `make bench-serve`, benchmarks/README.md) that route, with the same thread settings,
answered one client in raw + 7.9 ms and 32 clients at 70% of the raw model's throughput; this
batcher (then driven by the loop) in raw + 3.0 ms and at 77%.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from concurrent.futures import Executor
from typing import Any, Callable


class Overloaded(RuntimeError):
    pass


class Batcher:
    """``await batcher(items)`` -> ``run(items)``'s results for those items, in order, where
    ``run`` is called on ``executor`` with the items of every request queued meanwhile.
    ``on_batch(n)`` hears the size of each batch (the service's metric), on the executor."""

    def __init__(self, run: Callable[[list], list], executor: Executor, max_items: int, max_wait: float,
                 on_batch: Callable[[int], Any] = lambda n: None):
        self.run, self.executor, self.max_items, self.max_wait, self.on_batch = run, executor, max_items, max_wait, on_batch
        self.lock = threading.Lock()  # the queue is filled by event loops and emptied by the executor
        self.queue: deque[tuple[Any, float, asyncio.Future]] = deque()
        self.scheduled = False  # a batch is on the executor, queued or running

    async def __call__(self, items: list) -> list:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        now = time.monotonic()
        with self.lock:
            self.queue.extend((item, now, f) for item, f in zip(items, futures))
            start, self.scheduled = not self.scheduled, True
        if start:
            self._schedule()
        return list(await asyncio.gather(*futures))

    def _schedule(self) -> None:
        try:
            self.executor.submit(self._batch)
        except RuntimeError as e:  # the executor was shut down: nothing queued will run
            with self.lock:
                stranded, self.scheduled = list(self.queue), False
                self.queue.clear()
            _settle([(f, e) for _, _, f in stranded])

    def _batch(self) -> None:
        """On the executor: run what is queued (up to max_items), then schedule the next batch
        if more has arrived meanwhile."""
        with self.lock:
            taken = [self.queue.popleft() for _ in range(min(self.max_items, len(self.queue)))]
        late = time.monotonic() - self.max_wait
        outcomes = [(f, Overloaded(f"waited over {self.max_wait:g} s in the queue")) for _, queued, f in taken if queued < late]
        batch = [(item, f) for item, queued, f in taken if queued >= late and not f.done()]  # not shed, not cancelled
        if batch:
            try:
                self.on_batch(len(batch))
                results = self.run([item for item, _ in batch])
            except Exception as e:  # noqa: BLE001 - handed to the callers, the batcher goes on
                results = [e] * len(batch)
            outcomes += [(f, result) for (_, f), result in zip(batch, results)]
        _settle(outcomes)
        with self.lock:  # read under the lock: a caller may schedule the moment it is released
            self.scheduled = more = bool(self.queue)
        if more:
            self._schedule()


def _settle(outcomes: list[tuple[asyncio.Future, Any]]) -> None:
    """Give each future its result (or exception), on its own event loop: one call per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for future, outcome in outcomes:
        by_loop.setdefault(future.get_loop(), []).append((future, outcome))
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set, pairs)
        except RuntimeError:  # that loop is closed: nobody awaits its futures any more
            pass


def _set(pairs: list[tuple[asyncio.Future, Any]]) -> None:
    for future, outcome in pairs:
        if not future.done():  # a caller that went away cancelled its future
            (future.set_exception if isinstance(outcome, Exception) else future.set_result)(outcome)
