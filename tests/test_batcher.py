"""serving/batcher.py: the items of concurrent requests share one call of the model, each
caller gets its own results, a lone request never waits, and a late item is shed."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.batcher import Batcher, Overloaded


class Model:
    """Records each call; the first call can be held until released, so requests pile up."""

    def __init__(self, hold_first: bool = False):
        self.calls: list[list] = []
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items: list) -> list:
        self.calls.append(list(items))
        self.release.wait(5)
        if "boom" in items:
            raise ValueError("boom")
        return [f"result of {item}" for item in items]


def run(coroutine):
    return asyncio.run(coroutine)


async def queued_behind_first(batcher, model: Model, requests: list[list], queued_for: float = 0.05):
    """Send ["first"], then ``requests`` while the model holds it, and let them queue for
    ``queued_for`` seconds. Returns the tasks of "first" and of ``requests``."""
    first = asyncio.ensure_future(batcher(["first"]))
    while not model.calls:
        await asyncio.sleep(0.01)
    tasks = [asyncio.ensure_future(batcher(items)) for items in requests]
    await asyncio.sleep(queued_for)
    return first, tasks


async def while_busy(batcher, model: Model, requests: list[list], queued_for: float = 0.05):
    """``requests`` queued behind ["first"]; then the model is released. Returns their tasks."""
    first, tasks = await queued_behind_first(batcher, model, requests, queued_for)
    model.release.set()
    assert await first == ["result of first"]
    return tasks


def test_a_lone_request_runs_at_once_alone():
    model, sizes = Model(), []
    batcher = Batcher(model, ThreadPoolExecutor(1), max_items=64, max_wait=30, on_batch=sizes.append)

    async def go():
        start = time.perf_counter()
        result = await batcher(["a", "b"])
        return result, time.perf_counter() - start

    result, seconds = run(go())
    assert result == ["result of a", "result of b"] and model.calls == [["a", "b"]] and sizes == [2]
    assert seconds < 1


def test_requests_that_arrive_while_the_model_works_share_the_next_call():
    model = Model(hold_first=True)
    batcher = Batcher(model, ThreadPoolExecutor(1), max_items=64, max_wait=30)

    async def go():
        return await asyncio.gather(*await while_busy(batcher, model, [[f"r{i}a", f"r{i}b"] for i in range(5)]))

    others = run(go())
    assert others == [[f"result of r{i}a", f"result of r{i}b"] for i in range(5)]
    assert model.calls == [["first"], [f"r{i}{x}" for i in range(5) for x in "ab"]]


def test_a_batch_holds_at_most_max_items():
    model = Model(hold_first=True)
    batcher = Batcher(model, ThreadPoolExecutor(1), max_items=4, max_wait=30)

    async def go():
        return await (await while_busy(batcher, model, [[str(i) for i in range(10)]]))[0]

    rest = run(go())
    assert rest == [f"result of {i}" for i in range(10)]
    assert [len(c) for c in model.calls] == [1, 4, 4, 2]


def test_an_error_fails_the_callers_of_that_batch_and_the_batcher_goes_on():
    model = Model()
    batcher = Batcher(model, ThreadPoolExecutor(1), max_items=64, max_wait=30)

    async def go():
        with pytest.raises(ValueError, match="boom"):
            await batcher(["boom"])
        return await batcher(["after"])

    assert run(go()) == ["result of after"]


def test_an_item_that_waited_too_long_is_shed_and_the_others_run():
    model = Model(hold_first=True)
    batcher = Batcher(model, ThreadPoolExecutor(1), max_items=64, max_wait=0.1)

    async def go():
        late, = await while_busy(batcher, model, [["late"]], queued_for=0.3)  # queued 0.3 s behind "first"
        with pytest.raises(Overloaded, match="waited over 0.1 s in the queue"):
            await late
        return await batcher(["fresh"])

    assert run(go()) == ["result of fresh"]
    assert model.calls == [["first"], ["fresh"]]


def test_a_new_event_loop_gets_a_working_batcher():
    """An in-process test client may run each module on a loop of its own."""
    batcher = Batcher(Model(), ThreadPoolExecutor(1), max_items=64, max_wait=30)
    assert run(batcher(["one"])) == ["result of one"]
    assert run(batcher(["two"])) == ["result of two"]


def test_the_next_batch_starts_while_the_event_loop_is_busy():
    """The model's thread takes the next batch itself: under load the event loop is busy
    writing responses, and a model that waited for it sat idle."""
    model = Model(hold_first=True)
    batcher = Batcher(model, ThreadPoolExecutor(1), max_items=64, max_wait=30)

    async def go():
        first, (second,) = await queued_behind_first(batcher, model, [["second"]])
        model.release.set()
        time.sleep(0.5)  # the event loop is blocked, as by a burst of responses to write
        ran_meanwhile = list(model.calls)
        return ran_meanwhile, await first, await second

    ran_meanwhile, first, second = run(go())
    assert ran_meanwhile == [["first"], ["second"]]
    assert (first, second) == (["result of first"], ["result of second"])


def test_other_work_on_the_executor_takes_its_turn_between_batches():
    """Explanations share the model's one thread: a steady stream of batches must not starve them."""
    model = Model(hold_first=True)
    executor = ThreadPoolExecutor(1)
    batcher = Batcher(model, executor, max_items=64, max_wait=30)

    async def go():
        first, (second,) = await queued_behind_first(batcher, model, [["second"]])
        other = asyncio.wrap_future(executor.submit(model.calls.append, ["other"]))
        model.release.set()
        await asyncio.gather(first, second, other)

    run(go())
    assert model.calls == [["first"], ["other"], ["second"]]


def test_a_caller_that_went_away_is_left_out_of_the_batch():
    model = Model(hold_first=True)
    batcher = Batcher(model, ThreadPoolExecutor(1), max_items=64, max_wait=30)

    async def go():
        first, (gone, stays) = await queued_behind_first(batcher, model, [["gone"], ["stays"]])
        gone.cancel()  # a client that disconnected
        model.release.set()
        return await first, await stays

    assert run(go()) == (["result of first"], ["result of stays"])
    assert model.calls == [["first"], ["stays"]]
