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
    """Relay ``upstream``, failing with Timeout when no chunk comes for ``seconds``."""
    if seconds is None:
        async for chunk in upstream:
            yield chunk
        return
    while True:
        try:
            async with asyncio.timeout(seconds):
                chunk = await anext(upstream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise Timeout(f"the upstream stream went silent for {seconds:g} s") from None
        yield chunk
