"""The idle timeout between a stream's chunks: only the wait for the upstream counts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from lockgate.core.errors import Timeout
from lockgate.core.timeouts import with_idle_timeout
from lockgate.core.types import Chunk, ChunkStream


async def _upstream(gaps: Sequence[float]) -> ChunkStream:
    """A chunk after each gap (seconds)."""
    for i, gap in enumerate(gaps):
        await asyncio.sleep(gap)
        yield Chunk({"i": i}, None)


async def _collect(stream: ChunkStream, consumer_pause: float = 0.0) -> list[int]:
    seen = []
    async for chunk in stream:
        seen.append(chunk.data["i"])
        await asyncio.sleep(consumer_pause)
    return seen


async def test_gaps_under_the_limit_pass_however_long_the_stream() -> None:
    # Eight gaps of 0.06 s: 0.48 s in all, over the 0.15 s limit, never one gap over it.
    stream = with_idle_timeout(_upstream([0.06] * 8), 0.15)
    assert await _collect(stream) == list(range(8))


async def test_a_long_gap_is_a_timeout_after_the_chunks_before_it() -> None:
    seen: list[int] = []

    async def relay() -> None:
        async for chunk in with_idle_timeout(_upstream([0.0, 0.02, 5.0]), 0.1):
            seen.append(chunk.data["i"])

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Timeout, match=r"went silent for 0\.1 s"):
        await relay()
    assert seen == [0, 1]
    assert loop.time() - started < 1.0  # not the 5 s gap


async def test_a_slow_consumer_is_not_the_upstream_going_silent() -> None:
    stream = with_idle_timeout(_upstream([0.0] * 3), 0.05)
    assert await _collect(stream, consumer_pause=0.12) == [0, 1, 2]


async def test_a_cancelled_consumer_is_cancelled_not_timed_out() -> None:
    task = asyncio.ensure_future(_collect(with_idle_timeout(_upstream([0.0, 5.0]), 0.2)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_no_limit_relays_everything() -> None:
    assert await _collect(with_idle_timeout(_upstream([0.0, 0.01]), None)) == [0, 1]
