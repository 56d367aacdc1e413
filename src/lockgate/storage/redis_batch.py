"""One Lua script's calls from concurrent requests, sent to Redis as one EVALSHA.

A rate-limit check or a budget reservation is one script call per request; at thousands
of requests a second, the round trips and redis-py's per-command work (packing, a pooled
connection, parsing) cost more CPU than the arithmetic. ``ScriptBatch`` queues the calls
made while one batch is in flight and sends them together when it returns: one call at
a time per script, so under load the batches grow and the per-request cost falls, and a
lone request waits for nothing but its own round trip (the batch starts on the next turn
of the event loop, gathering the calls of the current one). Calls nobody waits on to
answer a client (settling what a finished request used) may ``linger``: their batch
starts that long after its first call, so that under load one script run carries
dozens of them instead of one or two, and Redis and the gateway each pay one round trip
for all of them.

The script runs every call in order inside one atomic script run, each with its own
KEYS and ARGV, exactly as if sent alone (``batched`` wraps a script's text into a
function). Every call's keys travel inside the batch's one argument; the batch's first key
is also declared as KEYS[1], which routes it on Redis Cluster and cluster-aware proxies:
the engines' hash tags put all of a script's keys in that key's slot. Each caller gets its
own call's reply, or the batch's exception: a Redis error or timeout reaches every caller
of that batch, who then falls back as for a lone call. As for any Lua script, a call that
raised inside leaves the writes made before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from lockgate.core.tasks import TaskTracker

MAX_CALLS = 128  # per batch: bounds how long one script run holds Redis (~10 µs a call)
SETTLE_LINGER = 0.005  # seconds a settling call waits for others to share its batch

# KEYS[1]: the batch's first key (for routing). ARGV[1]: the calls as one JSON array of
# [keys, args], every value a string (as Redis passes KEYS and ARGV). One argument, packed
# by orjson, instead of every call's keys and arguments as separate command arguments:
# redis-py packs each of those in Python, which cost more than the rest of the call.
# Returns one reply per call.
_DRIVER = """
local out = {}
local calls = cjson.decode(ARGV[1])
for r = 1, #calls do
  local call = calls[r]
  out[r] = one(call[1], call[2]) or 0
end
return out
"""


def batched(script: str) -> str:
    """``script`` (which reads KEYS and ARGV and returns its reply) as a batch script."""
    return f"local function one(KEYS, ARGV)\n{script}\nend\n{_DRIVER}"


Call = tuple[Sequence[str], Sequence[str | int], "asyncio.Future[Any]"]
Runner = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]


class ScriptBatch:
    """Calls of one script, batched; ``run`` bounds and guards each batch's Redis call
    (the engines pass their FailOpen's ``run``)."""

    def __init__(
        self,
        client: Redis,
        script: str,
        tasks: TaskTracker,
        *,
        name: str,
        run: Runner,
        linger: float = 0.0,
    ) -> None:
        self._script = client.register_script(batched(script))
        self._linger = linger
        self._tasks = tasks
        self._name = name
        self._run = run
        self._pending: list[Call] = []
        self._sending = False

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, args, future))
        if not self._sending:
            self._sending = True
            try:
                self._tasks.spawn(self._drain(), name=f"redis-batch:{self._name}")
            except RuntimeError:  # shutting down (a late settle): send from this task
                await self._drain()
        return await future

    async def _drain(self) -> None:
        try:
            if self._linger:
                await asyncio.sleep(self._linger)
            while self._pending:
                calls = self._pending[:MAX_CALLS]
                del self._pending[:MAX_CALLS]
                await self._send(calls)
        finally:
            self._sending = False
            for _, _, future in self._pending:  # cancelled at shutdown: nobody will send
                future.cancel()
            self._pending.clear()

    async def _send(self, calls: list[Call]) -> None:
        packed = orjson.dumps(
            [(keys, [a if a.__class__ is str else str(a) for a in args]) for keys, args, _ in calls]
        )
        route = next((keys[:1] for keys, _, _ in calls if keys), ())
        try:
            replies = await self._run(lambda: self._script(keys=route, args=(packed,)))
        except asyncio.CancelledError:
            for _, _, future in calls:
                future.cancel()
            raise
        except Exception as exc:
            for _, _, future in calls:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), reply in zip(calls, replies, strict=True):
            if not future.done():  # its request may have been cancelled meanwhile
                future.set_result(reply)
