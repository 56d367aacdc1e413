"""The task tracker: every background task is tracked, and shutdown drains it."""

from __future__ import annotations

import asyncio

import pytest

from lockgate.core.tasks import TaskTracker


async def test_drain_waits_for_running_tasks() -> None:
    tracker = TaskTracker()
    done: list[str] = []

    async def work(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        done.append(name)

    tracker.spawn(work("a", 0.01), name="a")
    tracker.spawn(work("b", 0.05), name="b")
    assert len(tracker) == 2
    await tracker.drain(grace=2.0)
    assert sorted(done) == ["a", "b"]
    assert len(tracker) == 0


async def test_drain_cancels_what_outlives_the_grace_period() -> None:
    tracker = TaskTracker()
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = tracker.spawn(forever(), name="forever")
    await tracker.drain(grace=0.05)
    assert cancelled.is_set()
    assert task.cancelled()


async def test_closed_tracker_refuses_new_work() -> None:
    tracker = TaskTracker()
    await tracker.drain(grace=0.1)

    async def nothing() -> None:
        return None

    with pytest.raises(RuntimeError, match="closed"):
        tracker.spawn(nothing(), name="late")
