"""One replica's link to the others through Redis: health, a pub/sub listener, a sync loop.

Features that share state across replicas (cooldowns, learned limits, coalescing) never
put a Redis round trip on a request's path for what they learn: they `send` writes to a
queue that a background loop drains, hear other replicas' news on a pub/sub channel, and
re-read the keys every `sync_interval` (pub/sub delivers at most once, so a replica that
was disconnected catches up from the keys). Redis trouble turns the link `down`: logged
once, counted in metrics, every feature falls back to its in-process state, and the loops
keep trying until Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Protocol

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.asyncio import Redis

from lockgate.core.tasks import TaskTracker
from lockgate.core.types import JSON
from lockgate.storage.redis import SharedRedis

log = logging.getLogger("lockgate.shared")

Write = Callable[[Redis], Awaitable[object]]
Handler = Callable[[JSON], None]
OUTBOX_SIZE = 4096  # writes waiting for Redis; beyond that the oldest are dropped


class Participant(Protocol):
    """A feature that keeps part of its state in Redis."""

    async def sync(self, link: SharedLink) -> None:
        """Re-read shared keys (periodically, and after the link came back)."""

    def next_due(self) -> float | None:
        """The monotonic time of this feature's next timed Redis work, if any."""

    async def run_due(self, link: SharedLink, now: float) -> None:
        """Do the timed work that is due at ``now``."""

    def on_down(self) -> None:
        """The link went down: stop waiting for other replicas."""


class SharedLink:
    def __init__(self, redis: SharedRedis, tasks: TaskTracker, *, interval: float) -> None:
        self.redis = redis
        self.client = redis.client
        self.replica = uuid.uuid4().hex[:12]
        self.events_channel = redis.key("events")
        self.interval = interval
        self.timeout = max(redis.socket_timeout * 2, 0.05)  # a whole command, retries included
        self._tasks = tasks
        self._handlers: dict[str, Handler] = {}
        self._participants: list[Participant] = []
        self._outbox: deque[tuple[str, Write]] = deque(maxlen=OUTBOX_SIZE)
        self._wake = asyncio.Event()
        self._stopping = False
        self._subscribed = False
        self._healthy = False
        self.up = False
        self._loops: list[asyncio.Task[None]] = []
        # metrics
        self.errors: dict[str, int] = {}  # operation -> Redis failures
        self.received: dict[str, int] = {}  # event kind -> events adopted from other replicas
        self.sent: dict[str, int] = {}  # write kind -> writes done
        self.dropped = 0  # writes not done because Redis was down or the queue full
        self._resync = False

    def direct_channel(self, replica: str) -> str:
        return self.redis.key("replica", replica)

    # -- wiring -----------------------------------------------------------------------------

    def on(self, kind: str, handler: Handler) -> None:
        """Call ``handler`` with every event of ``kind`` another replica publishes."""
        self._handlers[kind] = handler

    def join(self, participant: Participant) -> None:
        self._participants.append(participant)

    def start(self) -> None:
        self._loops = [
            self._tasks.spawn(self._listen(), name="shared-state:listen"),
            self._tasks.spawn(self._sync_loop(), name="shared-state:sync"),
        ]

    async def stop(self) -> None:
        """Stop the loops (so that shutdown's drain does not wait for them)."""
        self._stopping = True
        for task in self._loops:
            task.cancel()
        if self._loops:
            await asyncio.wait(self._loops, timeout=2.0)

    # -- writes, off the request path -----------------------------------------------------

    def send(self, kind: str, write: Write) -> None:
        """Queue ``write`` for the sync loop; dropped while Redis is down."""
        if not self.up:
            self.dropped += 1
            return
        if len(self._outbox) == self._outbox.maxlen:
            self.dropped += 1
        self._outbox.append((kind, write))
        self._wake.set()

    def publish(self, kind: str, event: JSON) -> None:
        """Tell every other replica about ``event``."""
        message = orjson.dumps({**event, "k": kind, "from": self.replica})
        self.send(kind, lambda client: client.publish(self.events_channel, message))

    async def call(self, op: str, command: Awaitable[Any]) -> Any:
        """One Redis command within the link's timeout; a failure marks the link down and
        is raised for the caller to fall back on."""
        try:
            async with asyncio.timeout(self.timeout):
                result = await command
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed(op, exc)
            raise
        self._set_healthy(True)
        return result

    # -- health ---------------------------------------------------------------------------

    def failed(self, op: str, exc: BaseException) -> None:
        self.errors[op] = self.errors.get(op, 0) + 1
        if self.up:
            # The exception's type only: its text may carry connection details.
            log.warning(
                "shared state unavailable (%s during %s): this replica works alone on its "
                "own state until Redis answers again",
                type(exc).__name__,
                op,
            )
        self._set_healthy(False)

    def _set_healthy(self, healthy: bool) -> None:
        self._healthy = healthy
        self._update()

    def _update(self) -> None:
        up = self._healthy and self._subscribed and not self._stopping
        if up == self.up:
            return
        self.up = up
        if up:
            log.info("shared state connected (replica %s)", self.replica)
            return
        self._outbox.clear()
        for participant in self._participants:
            participant.on_down()

    # -- background loops -------------------------------------------------------------------

    async def _listen(self) -> None:
        channels = (self.events_channel, self.direct_channel(self.replica))
        while not self._stopping:
            pubsub = self.client.pubsub()
            try:
                async with asyncio.timeout(self.timeout):
                    await pubsub.subscribe(*channels)
                    confirmed = 0
                    while confirmed < len(channels):
                        message = await pubsub.get_message(timeout=self.timeout)
                        if message is not None and message["type"] == "subscribe":
                            confirmed += 1
                self._subscribed = True
                self._update()
                self._resync = True  # a (re)connected replica catches up from the keys
                self._wake.set()
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self.interval
                    )
                    if message is not None:
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._subscribed = False
                self.failed("listen", exc)
            finally:
                self._subscribed = False
                self._update()
                await _quietly(pubsub.aclose(), self.timeout)
            await self._pause(self.interval)

    def _dispatch(self, data: bytes) -> None:
        try:
            event = orjson.loads(data)
            if event.get("from") == self.replica:
                return
            kind = event["k"]
            handler = self._handlers.get(kind)
            if handler is None:
                return
            handler(event)
        except Exception:  # one bad message must not stop the listener
            log.exception("ignored a shared-state message that could not be applied")
            return
        self.received[kind] = self.received.get(kind, 0) + 1

    async def _sync_loop(self) -> None:
        next_sync = 0.0
        while not self._stopping:
            self._wake.clear()
            await self._drain()
            now = time.monotonic()
            if now >= next_sync or self._resync:
                self._resync = False
                await self._sync()
                next_sync = time.monotonic() + self.interval
            for participant in self._participants:
                due = participant.next_due()
                if due is not None and due <= time.monotonic():
                    await self._guarded(participant.run_due(self, time.monotonic()))
            wake_at = min(
                [next_sync, *(d for p in self._participants if (d := p.next_due()) is not None)]
            )
            await self._pause(wake_at - time.monotonic())

    async def _sync(self) -> None:
        try:
            await self.call("ping", self.client.ping())
        except Exception:
            return
        for participant in self._participants:
            if not await self._guarded(participant.sync(self)):
                return

    async def _drain(self) -> None:
        while self._outbox and self.up:
            kind, write = self._outbox.popleft()
            try:
                await self.call(kind, write(self.client))
            except Exception:  # noqa: S112 - call() counted and logged it; the link is down
                continue
            self.sent[kind] = self.sent.get(kind, 0) + 1

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> bool:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._healthy:  # not a Redis failure that call() already counted
                log.exception("shared-state sync failed")
                self.failed("sync", exc)
            return False
        return True

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass

    # -- metrics (registered with the gateway's Prometheus registry) -------------------------

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "lockgate_shared_state_up",
            "1 while this replica shares state through Redis, 0 while it works alone.",
            value=1 if self.up else 0,
        )
        errors = CounterMetricFamily(
            "lockgate_shared_state_errors", "Redis failures of the shared state, by operation.",
            labels=["operation"],
        )  # fmt: skip
        for op, count in self.errors.items():
            errors.add_metric([op], count)
        yield errors
        received = CounterMetricFamily(
            "lockgate_shared_state_events_received",
            "State changes adopted from other replicas, by kind.",
            labels=["kind"],
        )
        for kind, count in self.received.items():
            received.add_metric([kind], count)
        yield received
        sent = CounterMetricFamily(
            "lockgate_shared_state_writes", "Shared-state writes made, by kind.", labels=["kind"]
        )
        for kind, count in self.sent.items():
            sent.add_metric([kind], count)
        yield sent
        yield CounterMetricFamily(
            "lockgate_shared_state_writes_dropped",
            "Shared-state writes not made because Redis was unavailable.",
            value=self.dropped,
        )


async def _quietly(work: Awaitable[object], seconds: float) -> None:
    with contextlib.suppress(Exception):  # closing a connection Redis already dropped
        async with asyncio.timeout(seconds):
            await work
