"""Hedging: when the first attempt has not answered after a delay, race a second one on
another deployment; the first answer wins and the other is cancelled (or, if it answered
too, discarded: a stream it opened is closed).

Both attempts run as tracked tasks; their outcomes are returned, never raised, so a lost
race is not a failed background task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, cast

from lockgate.core.tasks import TaskTracker

T = TypeVar("T")


class _Outcome(Generic[T]):
    __slots__ = ("error", "value")

    def __init__(self, value: T | None = None, error: Exception | None = None) -> None:
        self.value = value
        self.error = error


async def _settle(attempt: Awaitable[T]) -> _Outcome[T]:
    try:
        return _Outcome(value=await attempt)
    except Exception as exc:  # the race decides what to do with it
        return _Outcome(error=exc)


async def hedged(
    first: Awaitable[T],
    delay: float,
    second: Callable[[], Awaitable[T] | None],
    discard: Callable[[T], Awaitable[None]] | None,
    tasks: TaskTracker,
) -> T:
    """``first``'s result, or a hedge's if ``first`` has not answered within ``delay``.

    ``second`` starts the hedge (None: no hedge now). A failed attempt does not end the
    race while the other runs; when both fail, the later failure is raised."""
    racing = [tasks.spawn(_settle(first), name="attempt")]
    try:
        done, _ = await asyncio.wait(racing, timeout=delay)
        if not done and (hedge := second()) is not None:
            racing.append(tasks.spawn(_settle(hedge), name="hedge"))
        pending = set(racing)
        error: Exception | None = None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                outcome: _Outcome[T] = task.result()
                if outcome.error is None:
                    for other in done - {task}:
                        lost: _Outcome[T] = other.result()
                        if lost.error is None and discard is not None:
                            await discard(cast(T, lost.value))
                    return cast(T, outcome.value)
                error = outcome.error
        assert error is not None
        raise error
    finally:
        losers = [t for t in racing if not t.done()]
        for task in losers:
            task.cancel()
        if losers:
            await asyncio.wait(losers)
