"""Concurrent script calls travel as one EVALSHA, each still getting its own reply."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lockgate.core.tasks import TaskTracker
from lockgate.features.failopen import REDIS_ERRORS
from lockgate.storage.redis_batch import ScriptBatch
from tests.limits.conftest import SharedFactory, closed_port

# Adds ARGV[1] to the counter KEYS[1] and answers {the new value, ARGV[2]}.
ADD = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
return {total, ARGV[2]}
"""


class Counted:
    """The ``run`` the engines pass (FailOpen.run), counting Redis calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, call: Callable[[], Awaitable[Any]]) -> Any:
        self.calls += 1
        return await call()


async def test_concurrent_calls_share_a_round_trip_and_keep_their_own_replies(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    shared = shared_redis(url=redis_url)
    run, tasks = Counted(), TaskTracker()
    batch = ScriptBatch(shared.client, ADD, tasks, name="test", run=run)
    key = shared.key("{t}", "total")
    replies = await asyncio.gather(*(batch([key], [1, f"call-{i}"]) for i in range(50)))
    # Each call ran alone, in order, inside the batch: totals 1..50, each its own tag.
    assert sorted(int(total) for total, _ in replies) == list(range(1, 51))
    assert [tag.decode() for _, tag in replies] == [f"call-{i}" for i in range(50)]
    assert run.calls <= 2  # the first call's turn of the loop, then everyone else
    assert int(await shared.client.get(key)) == 50

    # Calls of several keys and more calls than one batch holds.
    keys = [shared.key("{t}", f"k{i}") for i in range(3)]
    many = await asyncio.gather(*(batch([keys[i % 3]], [2, "x"]) for i in range(300)))
    assert len(many) == 300
    assert [int(await shared.client.get(k)) for k in keys] == [200, 200, 200]
    await tasks.drain(1.0)


async def test_lingering_calls_arriving_apart_share_one_batch(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    """Settling calls come one by one as requests end; a linger gathers them."""
    shared = shared_redis(url=redis_url)
    key = shared.key("{t}", "settled")

    async def spread(linger: float) -> int:
        run, tasks = Counted(), TaskTracker()
        batch = ScriptBatch(shared.client, ADD, tasks, name="test", run=run, linger=linger)
        calls = []
        for i in range(20):  # one call a millisecond, as requests finishing
            calls.append(asyncio.ensure_future(batch([key], [1, str(i)])))
            await asyncio.sleep(0.001)
        await asyncio.gather(*calls)
        await tasks.drain(1.0)
        return run.calls

    assert await spread(0.0) >= 5  # each call's batch goes as soon as the last returns
    assert await spread(0.1) == 1  # all within the linger: one script run
    assert int(await shared.client.get(key)) == 40


async def test_a_redis_failure_reaches_every_caller_of_the_batch(
    shared_redis: SharedFactory,
) -> None:
    shared = shared_redis(url=f"redis://127.0.0.1:{closed_port()}/0", socket_timeout=0.2)
    run, tasks = Counted(), TaskTracker()
    batch = ScriptBatch(shared.client, ADD, tasks, name="test", run=run)
    results = await asyncio.gather(
        *(batch([shared.key("{t}", "x")], [1, "y"]) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, REDIS_ERRORS) for r in results), results
    assert run.calls <= 2
    with pytest.raises(REDIS_ERRORS):  # and the next call tries again
        await batch([shared.key("{t}", "x")], [1, "y"])
    await tasks.drain(1.0)


async def test_calls_made_while_the_tracker_drains_are_still_sent(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    """At shutdown the task tracker takes no new task; a settle still running then sends
    its own batch instead of failing."""
    shared = shared_redis(url=redis_url)
    tasks = TaskTracker()
    await tasks.drain(0.1)
    batch = ScriptBatch(shared.client, ADD, tasks, name="test", run=Counted())
    total, tag = await batch([shared.key("{t}", "late")], [5, "late"])
    assert (int(total), tag.decode()) == (5, "late")


async def test_a_batch_declares_its_first_key_for_cluster_routing(
    redis_url: str, shared_redis: SharedFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = shared_redis(url=redis_url)
    sent: list[tuple[Any, ...]] = []
    evalsha = shared.client.evalsha

    async def recording(*args: Any) -> Any:
        sent.append(args)
        return await evalsha(*args)

    monkeypatch.setattr(shared.client, "evalsha", recording)
    batch = ScriptBatch(shared.client, ADD, TaskTracker(), name="test", run=Counted())
    first, second = shared.key("{t}", "a"), shared.key("{t}", "b")
    replies = await asyncio.gather(batch([first], [2, "x"]), batch([second], [3, "y"]))
    assert [int(total) for total, _ in replies] == [2, 3]
    (command,) = sent  # one EVALSHA: sha, one declared key (the first), the packed calls
    assert command[1:3] == (1, first)
    assert len(command) == 4
