"""Stream timeouts: the wait for the first chunk, and the gap between chunks.

The whole-call and connect timeouts are the adapter's transport settings; these two are the
stream-level ones, and this is the only module that applies them.
"""

from __future__ import annotations

import asyncio

from lockgate.core.errors import Timeout
from lockgate.core.types import Chunk, ChunkStream


async def first_chunk(upstream: ChunkStream, seconds: float | None) -> Chunk | None:
    """The stream's first chunk (None for an empty stream); Timeout when it is late."""
    try:
        async with asyncio.timeout(seconds):
            return await anext(upstream)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise Timeout(f"no first token within {seconds:g} s") from None


async def with_idle_timeout(upstream: ChunkStream, seconds: float | None) -> ChunkStream:
    """Relay ``upstream``, failing with Timeout when no chunk comes for ``seconds``.

    Only the wait for the next chunk counts (not the time the consumer takes with one), as
    with an ``asyncio.timeout`` around each wait; but one timer per stream, moved on only
    when it fires early, replaces a timeout per chunk, which cost a tenth of a streaming
    gateway's CPU."""
    if seconds is None:
        async for chunk in upstream:
            yield chunk
        return
    watch = _IdleWatch(seconds)
    try:
        while True:
            watch.waiting()
            try:
                chunk = await anext(upstream)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if watch.fired and task is not None and task.uncancel() == 0:
                    raise Timeout(f"the upstream stream went silent for {seconds:g} s") from None
                raise
            finally:
                watch.idle = False
            yield chunk
    finally:
        watch.close()


class _IdleWatch:
    """Cancels the waiting task once a wait has lasted ``seconds``."""

    # Timers may fire a little early (uvloop's clock ticks in milliseconds): a wait this
    # close to the limit counts as over, rather than re-arming for a sliver.
    _SLACK = 0.002

    __slots__ = ("_handle", "_loop", "_seconds", "_since", "_task", "fired", "idle")

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._seconds = seconds
        self._since = self._loop.time()
        self._task: asyncio.Task[object] | None = None
        self.idle = False  # waiting for the next chunk
        self.fired = False
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(
            self._since + seconds, self._check
        )

    def waiting(self) -> None:
        self._since = self._loop.time()
        self._task = asyncio.current_task()
        self.idle = True

    def _check(self) -> None:
        now = self._loop.time()
        if self.idle and now - self._since >= self._seconds - self._SLACK:
            self._handle = None
            if self._task is not None:
                self.fired = True
                self._task.cancel()
            return
        start = self._since if self.idle else now
        self._handle = self._loop.call_at(start + self._seconds, self._check)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
