"""Upstream admission control: send a deployment no more than it can take.

Each deployment has a concurrency limit and request/token buckets (RPM/TPM), configured or
learned from what the provider advertises (`x-ratelimit-*`) and from its 429s: a 429
halves the rate and pauses the deployment for the wait it asked for; each success adds
some rate back (additive increase, multiplicative decrease). Requests beyond capacity wait
in a priority queue instead of being sent to collect 429s; one whose wait would pass its
`max_wait` or deadline is refused at once with `QueueFull`, whose retry-after is the
estimated wait.

A provider counts what is left when a request arrives, and says so when it answers, one
latency later: `observe` adds back what refilled since that request was sent and takes off
what this replica sent after it (`sending` marks the moment, per task).

Several replicas: `set_share` gives this replica its part (1/N) of every bucket and of the
concurrency limit, and an optional `CapacityPeer` is told what this replica learned (a
limit, a 429's pause) so the others can `adopt_limit`/`adopt_pause` it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from lockgate.core.errors import RateLimited
from lockgate.core.types import RateLimitInfo


class QueueFull(RateLimited):
    """The deployment could not take the request within its allowed wait; nothing was sent."""

    kind = "queue_full"
    default_code = "upstream_capacity_exceeded"


class CapacityPeer(Protocol):
    """Other replicas sharing a deployment's capacity (see features/shared_limits.py)."""

    def learned(self, kind: str, limit: float, capacity: float) -> None:
        """This replica sized its ``kind`` ("requests" or "tokens") bucket anew."""

    def paused(self, seconds: float, factor: float) -> None:
        """A 429 paused this replica for ``seconds`` and cut its rate to ``factor``."""


class Bucket:
    """Refilled continuously at ``limit`` per minute (times ``factor``), holding up to
    ``capacity`` (a minute's worth unless the provider shows it holds less); ``share`` is
    this replica's part of both when several replicas share the deployment."""

    def __init__(self, limit: float, now: float, capacity: float | None = None) -> None:
        self.limit = limit
        self.capacity = limit if capacity is None else capacity
        self.factor = 1.0
        self.share = 1.0
        self.level = self.capacity
        self.learned = False  # sized from what the provider showed, not from config
        self._at = now

    @property
    def rate(self) -> float:  # per second
        return self.limit * self.factor * self.share / 60.0

    @property
    def room(self) -> float:
        """The most this replica's bucket holds."""
        return max(self.capacity * self.share, 1.0)

    def available(self, now: float) -> float:
        self.level = min(self.room, self.level + (now - self._at) * self.rate)
        self._at = now
        return self.level

    def seconds_until(self, amount: float, now: float) -> float:
        missing = min(amount, self.room) - self.available(now)
        return max(missing, 0.0) / self.rate if self.rate > 0 else float("inf")


@dataclass(frozen=True)
class _Sent:
    """What an admission had sent when a call left: the answer's count is that old."""

    admission: Admission
    requests: int
    tokens: int
    at: float


# Set per task just before an upstream call, read when its answer's headers are observed
# (a hedge runs in its own task, so each attempt sees its own mark).
_SENT: ContextVar[_Sent | None] = ContextVar("lockgate_admission_sent", default=None)


@dataclass(order=True)
class _Waiter:
    rank: tuple[int, int]
    tokens: int = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)
    gone: bool = field(default=False, compare=False)


class Admission:
    def __init__(
        self,
        *,
        max_concurrency: int | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        typical_latency: Callable[[], float] = lambda: 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        now = clock()
        self.max_concurrency = max_concurrency  # the deployment's, as configured
        self.concurrency = max_concurrency  # this replica's part of it
        self._share = 1.0
        self.peer: CapacityPeer | None = None
        self.in_flight = 0
        self.requests = Bucket(rpm, now) if rpm else None
        self.tokens = Bucket(tpm, now) if tpm else None
        self._paused_until = 0.0
        self._sent_requests = 0  # ever taken, to correct a provider's stale remaining count
        self._sent_tokens = 0
        self._cut_at = -math.inf  # when a 429 last halved the rates
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.typical_latency = typical_latency  # seconds a call takes, for estimates
        self._clock = clock

    # -- taking and giving back capacity --------------------------------------------------

    def try_acquire(self, tokens: int) -> bool:
        """Take capacity now if it is there and nobody is queued ahead."""
        if self._queue and any(not w.gone for w in self._queue):
            return False
        return self._take(tokens)

    async def wait(self, priority: int, tokens: int, max_wait: float) -> None:
        """Queue for capacity; QueueFull when it would take longer than ``max_wait``."""
        estimate = self.estimated_wait(tokens)
        if estimate > max_wait:
            raise self._full(estimate)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter((-priority, next(self._seq)), tokens, future)
        heapq.heappush(self._queue, waiter)
        self._dispatch()
        try:
            await asyncio.wait_for(future, max_wait)
        except TimeoutError:
            waiter.gone = True
            raise self._full(self.estimated_wait(tokens)) from None
        except asyncio.CancelledError:
            waiter.gone = True
            if future.done() and not future.cancelled():
                self.release()  # granted just as the caller went away
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._dispatch()

    def _take(self, tokens: int) -> bool:
        now = self._clock()
        if now < self._paused_until:
            return False
        if self.concurrency is not None and self.in_flight >= self.concurrency:
            return False
        if self.requests is not None and self.requests.available(now) < 1:
            return False
        if self.tokens is not None and self.tokens.available(now) < min(tokens, self.tokens.room):
            return False
        if self.requests is not None:
            self.requests.level -= 1
        if self.tokens is not None:
            self.tokens.level -= tokens
        self._sent_requests += 1
        self._sent_tokens += tokens
        self.in_flight += 1
        return True

    def sending(self) -> None:
        """Mark, for the current task, that its admitted call leaves now."""
        _SENT.set(_Sent(self, self._sent_requests, self._sent_tokens, self._clock()))

    def _dispatch(self) -> None:
        queue = self._queue
        while queue:
            head = queue[0]
            if head.gone or head.future.done():
                heapq.heappop(queue)
                continue
            if not self._take(head.tokens):
                break
            heapq.heappop(queue)
            head.future.set_result(None)
        if any(not w.gone for w in queue):
            self._schedule()

    def _schedule(self) -> None:
        """Wake the queue when the buckets will have refilled (a release wakes it too)."""
        if self._timer is not None and not self._timer.cancelled():
            return
        head = next((w for w in sorted(self._queue) if not w.gone), None)
        if head is None:
            return
        delay = self._rate_wait(head.tokens, self._clock())
        if delay <= 0:
            return  # only concurrency is short: a release will dispatch
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    # -- estimates ---------------------------------------------------------------------

    def _rate_wait(self, tokens: int, now: float) -> float:
        wait = max(self._paused_until - now, 0.0)
        if self.requests is not None:
            wait = max(wait, self.requests.seconds_until(1, now))
        if self.tokens is not None:
            wait = max(wait, self.tokens.seconds_until(tokens, now))
        return wait

    def estimated_wait(self, tokens: int) -> float:
        """How long a new request would wait: the queue ahead of it drains at the rate the
        buckets refill, or as calls finish when concurrency is the limit."""
        now = self._clock()
        ahead = [w for w in self._queue if not w.gone]
        wait = self._rate_wait(tokens, now)
        if ahead and self.requests is not None and self.requests.rate > 0:
            wait += len(ahead) / self.requests.rate
        if ahead and self.tokens is not None and self.tokens.rate > 0:
            wait = max(wait, sum(w.tokens for w in ahead) / self.tokens.rate)
        if self.concurrency is not None and self.in_flight >= self.concurrency:
            rounds = (len(ahead) + 1) / self.concurrency
            wait = max(wait, rounds * self.typical_latency())
        return wait

    def _full(self, estimate: float) -> QueueFull:
        return QueueFull(
            f"the upstream's capacity is taken; it would take about {estimate:.1f} s",
            retry_after=estimate,
        )

    # -- learning ------------------------------------------------------------------------

    def observe(self, info: RateLimitInfo) -> None:
        """Adopt the limits a provider advertised, and its count of what is left.

        A learned bucket holds no more than the most the provider was ever seen to have
        left: a provider that allows a minute's budget at once shows it, one that allows
        only a second's worth never does."""
        now = self._clock()
        before = self._learned() if self.peer is not None else ()
        if info.limit_requests:
            self.requests = self._adopt(
                self.requests, info.limit_requests, _seen(info.remaining_requests), now
            )
        if info.limit_tokens:
            self.tokens = self._adopt(
                self.tokens, info.limit_tokens, _seen(info.remaining_tokens), now
            )
        sent = _SENT.get()
        mark = sent if sent is not None and sent.admission is self else None
        if self.requests is not None and info.remaining_requests is not None:
            later = self._sent_requests - mark.requests if mark is not None else 0
            left = self._now_left(self.requests, info.remaining_requests, later, mark, now)
            self.requests.level = min(self.requests.available(now), left)
        if self.tokens is not None and info.remaining_tokens is not None:
            later = self._sent_tokens - mark.tokens if mark is not None else 0
            left = self._now_left(self.tokens, info.remaining_tokens, later, mark, now)
            self.tokens.level = min(self.tokens.available(now), left)
        if before and (after := self._learned()) != before:
            for kind, old, new in zip(("requests", "tokens"), before, after, strict=True):
                if new is not None and new != old and self.peer is not None:
                    self.peer.learned(kind, *new)

    @staticmethod
    def _now_left(
        bucket: Bucket, remaining: int, later: int, mark: _Sent | None, now: float
    ) -> float:
        """The provider's count, brought from when the call left to now: plus what its
        bucket refilled meanwhile (at the provider's full rate), minus what was sent after
        the call, at most the bucket's size. Refill and later calls interleave, so the size
        caps the result, not the refill alone (that would count a slow call's whole refill
        as lost to a full bucket while later calls drained it). Unmarked (no call of this
        task): taken as it is."""
        if mark is None:
            return float(remaining)
        refilled = max(now - mark.at, 0.0) * bucket.limit / 60.0
        return min(remaining + refilled - later, bucket.capacity)

    def _learned(self) -> tuple[tuple[float, float] | None, ...]:
        return tuple(
            (b.limit, b.capacity) if b is not None else None for b in (self.requests, self.tokens)
        )

    def _adopt(self, bucket: Bucket | None, limit: float, seen: float, now: float) -> Bucket:
        if bucket is None:
            learned = Bucket(limit, now, capacity=min(limit, seen))
            learned.learned = True
            learned.share = self._share
            return learned
        bucket.available(now)
        bucket.limit = limit
        if bucket.learned:
            bucket.capacity = min(limit, max(bucket.capacity, seen))
        return bucket

    def rate_limited(self, retry_after: float | None) -> None:
        """A 429: halve the rates, and send nothing until the provider's wait is over.

        The rates are halved once per burst of 429s, as TCP does per round trip: a 429 for
        a call that left before the last cut says nothing about the rate since."""
        now = self._clock()
        sent = _SENT.get()
        cut = sent is None or sent.admission is not self or sent.at >= self._cut_at
        if cut:
            self._cut_at = now
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                if cut:
                    bucket.factor = max(bucket.factor * 0.5, 0.05)
                bucket.available(now)
                bucket.level = min(bucket.level, 0.0)
        self._paused_until = max(self._paused_until, now + (retry_after or 1.0))
        if self.peer is not None:
            self.peer.paused(retry_after or 1.0, self._factor())

    def _factor(self) -> float:
        bucket = self.requests or self.tokens
        return bucket.factor if bucket is not None else 1.0

    def succeeded(self) -> None:
        for bucket in (self.requests, self.tokens):
            if bucket is not None and bucket.factor < 1.0:
                bucket.factor = min(bucket.factor + 0.05, 1.0)

    # -- other replicas -------------------------------------------------------------------

    def set_share(self, share: float) -> None:
        """Take ``share`` (1/N for N live replicas) of the deployment's capacity."""
        now = self._clock()
        self._share = share
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.available(now)
                bucket.share = share
        if self.max_concurrency is not None:
            self.concurrency = max(1, math.ceil(self.max_concurrency * share))
        self._dispatch()

    def adopt_limit(self, kind: str, limit: float, capacity: float) -> None:
        """Another replica learned this deployment's ``kind`` limit and bucket size."""
        now = self._clock()
        if kind == "requests":
            self.requests = self._adopt(self.requests, limit, capacity, now)
        elif kind == "tokens":
            self.tokens = self._adopt(self.tokens, limit, capacity, now)
        self._dispatch()

    def adopt_pause(self, seconds: float, factor: float) -> None:
        """Another replica got a 429: send nothing for ``seconds``, at most ``factor``."""
        now = self._clock()
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.factor = max(min(bucket.factor, factor), 0.05)
                bucket.available(now)
                bucket.level = min(bucket.level, 0.0)
        self._paused_until = max(self._paused_until, now + seconds)


def _seen(remaining: int | None) -> float:
    """The bucket size a provider's count of what is left shows, at least."""
    return max(float(remaining or 0) + 1.0, 1.0)
