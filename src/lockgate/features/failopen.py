"""Fail open to in-process state while the shared Redis is unreachable or slow."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from lockgate.features.limit_metrics import LimitMetrics
from lockgate.storage.redis import SharedRedis

log = logging.getLogger("lockgate.limits")

T = TypeVar("T")
# TimeoutError covers both the socket timeout and the overall bound below.
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


class RedisUnavailable(Exception):
    """Redis did not answer in time (or refused the command): use in-process state."""


class FailOpen:
    """Tracks whether an engine's Redis answers, and bounds every call to it.

    A failed call switches the engine to its in-process state (logged once, counted in
    ``lockgate_limits_redis_fallbacks``); from then on one call per ``probe_interval``
    tries Redis again, so an outage costs at most one timeout per interval, and the first
    answer switches back. A command error (a proxy that does not run scripts, a cluster
    refusing keys in different slots) counts as unavailable too, and is logged with
    Redis's message, so shared limits never become per-replica silently."""

    def __init__(
        self,
        engine: str,
        redis: SharedRedis,
        metrics: LimitMetrics | None = None,
        *,
        probe_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        # A command is a connect and a reply, each bounded by the socket timeout; the
        # overall bound also covers a wait for a pooled connection.
        self.timeout = 2 * redis.socket_timeout + 0.05
        self._metrics = metrics
        self._probe_interval = probe_interval
        self._clock = clock
        # Redis is taken for unreachable (read on every request: an attribute, not a
        # property; only this class sets it).
        self.down = False
        self._next_probe = 0.0

    def available(self) -> bool:
        """Whether to try Redis now: always while it answers, once per interval while not."""
        if not self.down:
            return True
        now = self._clock()
        if now < self._next_probe:
            return False
        self._next_probe = now + self._probe_interval  # one probe, not a herd
        return True

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` within the time bound; raises RedisUnavailable when it fails."""
        try:
            async with asyncio.timeout(self.timeout):
                result = await call()
        except REDIS_ERRORS as exc:
            self._failed(exc)
            raise RedisUnavailable(self.engine) from exc
        if self.down:
            self.down = False
            log.warning("%s: Redis answers again; limits are shared again", self.engine)
            if self._metrics is not None:
                self._metrics.recovered(self.engine)
        return result

    def _failed(self, exc: BaseException) -> None:
        self._next_probe = self._clock() + self._probe_interval
        if self.down:
            return
        self.down = True
        log.error(
            "%s: Redis unavailable (%s: %s); enforcing per replica until it answers",
            self.engine, type(exc).__name__, exc or "timed out",
        )  # fmt: skip
        if self._metrics is not None:
            self._metrics.fell_back(self.engine)
