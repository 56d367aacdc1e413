"""Request coalescing: identical concurrent requests of one tenant share one upstream call.

The first request of a key starts the shared call as a tracked task; the others wait on
it. A streamed answer is fanned out: every waiter gets every chunk, late joiners from the
start. The call is cancelled only when every waiter has gone. Which requests coalesce is
the caller's decision (deterministic ones by default); the key covers the tenant scope and
everything in the body that changes the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

import orjson

from lockgate.core.errors import UpstreamError
from lockgate.core.tasks import TaskTracker
from lockgate.core.types import JSON, ChatResponse, Chunk, ChunkStream, RequestContext

T = TypeVar("T")

# Fields that do not change the answer, or only change its delivery.
_IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "fallbacks"})


Answer = tuple[ChatResponse, RequestContext]  # a response and the request that called for it


class CrossReplica(Protocol):
    """Coalescing beyond this process (features/shared_coalesce.py): ``produce`` runs on
    one replica for every identical request in flight on any of them."""

    async def share(
        self, key: str, produce: Callable[[], Awaitable[Answer]], deadline: float | None
    ) -> Answer: ...


def coalesce_key(scope: str, model: str, body: JSON, *, stream: bool) -> str:
    material = {k: v for k, v in body.items() if k not in _IGNORED}
    digest = hashlib.blake2b(
        orjson.dumps([scope, model, stream, material], option=orjson.OPT_SORT_KEYS),
        digest_size=16,
    )
    return digest.hexdigest()


class _Shared(Generic[T]):
    def __init__(self, task: asyncio.Task[None], result: asyncio.Future[T]) -> None:
        self.task = task
        self.result = result
        self.waiters = 0


class Coalescer:
    def __init__(self, tasks: TaskTracker) -> None:
        self._tasks = tasks
        self._inflight: dict[str, _Shared[Any]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def share(
        self,
        key: str,
        produce: Callable[[], Awaitable[T]],
        hold: Callable[[T], Awaitable[None]] | None = None,
    ) -> tuple[T, bool]:
        """The result of ``produce`` for ``key``, run once for all concurrent callers, and
        whether this caller joined another's call. ``hold`` keeps the key joinable after
        the result exists (a stream, until it ends)."""
        shared: _Shared[T] | None = self._inflight.get(key)
        joined = shared is not None
        if shared is None:
            result: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            task = self._tasks.spawn(_lead(produce, result, hold), name=f"coalesced:{key[:12]}")
            shared = _Shared(task, result)
            self._inflight[key] = shared
            task.add_done_callback(lambda _: self._forget(key, task))
        shared.waiters += 1
        try:
            return await asyncio.shield(shared.result), joined
        finally:
            shared.waiters -= 1
            if shared.waiters == 0 and not shared.result.done():
                shared.task.cancel()  # everyone went away: stop paying for the answer

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        shared = self._inflight.get(key)
        if shared is not None and shared.task is task:
            del self._inflight[key]


async def _lead(
    produce: Callable[[], Awaitable[T]],
    result: asyncio.Future[T],
    hold: Callable[[T], Awaitable[None]] | None,
) -> None:
    try:
        value = await produce()
    except asyncio.CancelledError:
        result.cancel()
        raise
    except Exception as exc:  # every waiter gets the failure
        result.set_exception(exc)
        return
    result.set_result(value)
    if hold is not None:
        await hold(value)


class Broadcast:
    """One upstream stream, read once by a tracked task, replayed to every subscriber."""

    def __init__(self, source: ChunkStream, tasks: TaskTracker, name: str) -> None:
        self._chunks: list[Chunk] = []
        self._error: BaseException | None = None
        self._done = False
        self._changed = asyncio.Event()
        self._subscribers = 0
        self._source = source
        self._pump = tasks.spawn(self._read(), name=f"broadcast:{name}")

    async def _read(self) -> None:
        try:
            async for chunk in self._source:
                self._chunks.append(chunk)
                self._wake()
        except BaseException as exc:  # delivered to every subscriber
            self._error = exc
        finally:
            await self._source.aclose()
            self._done = True
            self._wake()

    async def finished(self) -> None:
        while not self._done:
            await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def subscribe(self) -> ChunkStream:
        self._subscribers += 1
        sent = 0
        try:
            while True:
                while sent < len(self._chunks):
                    yield self._chunks[sent]
                    sent += 1
                if self._done:
                    if isinstance(self._error, asyncio.CancelledError):
                        raise UpstreamError("the shared stream was abandoned upstream")
                    if self._error is not None:
                        raise self._error
                    return
                await self._changed.wait()
        finally:
            self._subscribers -= 1
            if self._subscribers == 0 and not self._done:
                self._pump.cancel()
