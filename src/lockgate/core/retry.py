"""Retries: the only place a failed upstream call is tried again.

Only retryable failures are retried (429, 5xx, overloaded, timeouts, connection errors),
with exponential backoff and full jitter. The next attempt prefers a deployment of the
group that has not failed yet; a provider's `retry-after` is honoured when the same
deployment must be called again, and a wait longer than `max_retry_after` hands the
request to the fallbacks instead. An upstream 429 (the provider had less room than it
showed) sends the request back to the admission queue, within its max wait and deadline,
without spending an attempt or the retry budget. A gateway-wide budget caps retries at a fraction of
requests over a sliding window, so an outage never multiplies upstream traffic.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from lockgate.config.schema import RetryConfig
from lockgate.core.admission import QueueFull
from lockgate.core.errors import CoolingDown, GatewayError, RateLimited
from lockgate.core.hedge import hedged
from lockgate.core.router import Deployment, ModelGroup
from lockgate.core.tasks import TaskTracker
from lockgate.core.types import RequestContext
from lockgate.core.window import SlidingCounts

T = TypeVar("T")
Call = Callable[[Deployment, str], Awaitable[T]]
Failures = list[tuple[str, GatewayError]]
# Hedges spend the retry budget only while a quarter of it is left: that quarter is kept
# for retries, which save a request from failing (a hedge only makes it faster). Half
# (seed scenario) cut hedges so far that p99 rose from ~9 s to 13 s.
HEDGE_SHARE = 0.75
# Upstream 429s a request may wait out in the admission queue before they count as failed
# attempts: each is one more upstream call, so amplification stays bounded.
MAX_REQUEUES = 2


class RetryBudget:
    """At most ``ratio`` retries per request over the last ``window`` seconds, plus a floor
    of ``min_retries`` per window so that quiet periods can still retry."""

    def __init__(
        self,
        ratio: float,
        window: float,
        min_retries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ratio = ratio
        self._min = min_retries
        self._counts = SlidingCounts(window, clock)  # requests, retries

    def record_request(self) -> None:
        self._counts.add(first=1)

    def try_spend(self, share: float = 1.0) -> bool:
        """Spend one retry if the retries so far leave room within ``share`` of the budget."""
        requests, retries = self._counts.totals()
        if retries + 1 > max(self._min, self._ratio * requests) * share:
            return False
        self._counts.add(second=1)
        return True


def _tokens(dep: Deployment, estimate: Callable[[], int]) -> int:
    """The request's token estimate, computed only for a deployment that meters tokens."""
    return estimate() if dep.admission.tokens is not None else 0


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform between 0 and min(cap, base * 2**attempt)."""
    return rng.uniform(0.0, min(cap, base * (2**attempt)))


class Retrier:
    def __init__(
        self,
        config: RetryConfig,
        budget: RetryBudget,
        rng: random.Random,
        tasks: TaskTracker,
        max_wait: float = 30.0,
        spill_wait: float = 1.0,
    ) -> None:
        self.config = config
        self.tasks = tasks
        self.max_wait = max_wait  # default longest admission-queue wait
        self.spill_wait = spill_wait  # a longer wait queues at another deployment if shorter
        self.budget = budget
        self._rng = rng

    async def run(
        self,
        ctx: RequestContext,
        group: ModelGroup,
        matched: str,
        call: Call[T],
        failures: Failures,
        tokens: Callable[[], int] = lambda: 0,
        discard: Callable[[T], Awaitable[None]] | None = None,
    ) -> T:
        """Call ``group`` until an attempt succeeds; raise the last error when retrying is
        over (not retryable, attempts or budget spent, or a wait that is too long).
        ``discard`` disposes of a result that lost a hedging race (a stream to close)."""
        cfg = self.config
        attempts = 1 + (group.retries if group.retries is not None else cfg.retries)
        failed: set[str] = set()
        dep = await self._ready(ctx, group, failures)

        def attempt_on(target: Deployment) -> Awaitable[T]:
            return self._attempt(ctx, group, target, matched, call, failures, failed)

        attempt = requeued = 0
        while True:
            dep = await self._admit(ctx, group, dep, tokens, failures, failed)
            try:
                delay = group.hedge_delay()
                if delay is None:
                    return await attempt_on(dep)
                return await hedged(
                    attempt_on(dep),
                    delay,
                    partial(self._second, ctx, group, dep, tokens, failed, attempt_on),
                    discard,
                    self.tasks,
                )
            except GatewayError as exc:
                if requeued < MAX_REQUEUES and self._requeue(ctx, exc):
                    # The provider had no room after all: queue for its capacity again
                    # (its 429 paused the deployment) without spending an attempt.
                    requeued += 1
                    failed.discard(dep.id)
                    continue
                if not exc.retryable or attempt + 1 >= attempts:
                    raise
                dep = await self._wait_for_next(ctx, group, exc, attempt, frozenset(failed))
                ctx.retries += 1
                attempt += 1

    def _requeue(self, ctx: RequestContext, exc: GatewayError) -> bool:
        """Is ``exc`` an upstream 429 the request has time to wait out in the queue?"""
        if not isinstance(exc, RateLimited) or isinstance(exc, QueueFull):
            return False
        wait = exc.retry_after if exc.retry_after is not None else 1.0
        return wait <= min(self.config.max_retry_after, self._max_wait(ctx))

    async def _ready(
        self, ctx: RequestContext, group: ModelGroup, failures: Failures
    ) -> Deployment:
        """A deployment of the group; when all are cooling down for a short while (a
        provider's brief retry-after), wait it out rather than fail the request."""
        while True:
            try:
                return group.pick()
            except CoolingDown as exc:
                wait = exc.retry_after or 0.0
                late = ctx.deadline is not None and time.perf_counter() + wait >= ctx.deadline
                if wait > self.config.max_cooldown_wait or late:
                    failures.append((group.name, exc))
                    raise
                await asyncio.sleep(wait + 0.001)

    async def _admit(
        self,
        ctx: RequestContext,
        group: ModelGroup,
        dep: Deployment,
        tokens: Callable[[], int],
        failures: Failures,
        failed: set[str],
    ) -> Deployment:
        """Wait for the deployment's capacity. Another deployment that has room now, or a
        shorter queue when this one's is longer than `spill_wait`, takes the request
        instead; one that cannot take it within the max wait is swapped for a deployment
        that has not failed, or its QueueFull is raised."""
        spilled = False
        while not dep.admission.try_acquire(need := _tokens(dep, tokens)):
            spare = self._with_capacity(group, dep, tokens, failed)
            if spare is not None:
                return spare
            if not spilled and (shorter := self._shorter_queue(group, dep, tokens, failed)):
                spilled = True  # once: two full deployments never trade a request back
                dep = shorter
                continue
            queued = time.perf_counter()
            try:
                await dep.admission.wait(ctx.priority, need, self._max_wait(ctx))
            except QueueFull as exc:
                dep.breaker.release()
                failures.append((f"{group.name} via {dep.id}", exc))
                failed.add(dep.id)
                dep = self._fresh(group, frozenset(failed), exc)  # never wait for it
                continue
            finally:
                ctx.queued += time.perf_counter() - queued
            if dep.breaker.available():
                return dep
            # Its circuit opened while the request queued (an outage): go elsewhere.
            other = self._other(group, dep, failed)
            if other is None:
                return dep
            dep.admission.release()
            dep.breaker.release()
            dep = other
        return dep

    def _shorter_queue(
        self, group: ModelGroup, busy: Deployment, tokens: Callable[[], int], failed: set[str]
    ) -> Deployment | None:
        """Another ready deployment whose queue is shorter, when ``busy``'s wait is longer
        than `spill_wait`."""
        wait = busy.admission.estimated_wait(_tokens(busy, tokens))
        if wait <= self.spill_wait:
            return None
        best: Deployment | None = None
        for other in group.deployments:
            if other is busy or other.id in failed or not other.breaker.available():
                continue
            other_wait = other.admission.estimated_wait(_tokens(other, tokens))
            if other_wait < wait:
                best, wait = other, other_wait
        if best is not None:
            busy.breaker.release()
            best.breaker.acquire()
        return best

    @staticmethod
    def _other(group: ModelGroup, busy: Deployment, failed: set[str]) -> Deployment | None:
        """A deployment other than ``busy`` that has not failed this request, or None."""
        try:
            other = group.pick(avoid=frozenset(failed | {busy.id}))
        except CoolingDown:
            return None
        if other.id == busy.id or other.id in failed:
            other.breaker.release()
            return None
        return other

    @staticmethod
    def _with_capacity(
        group: ModelGroup, busy: Deployment, tokens: Callable[[], int], failed: set[str]
    ) -> Deployment | None:
        """Another ready deployment of the group that can take the request now (admitted),
        so that nobody queues for a full deployment while another has room."""
        for other in group.deployments:
            if other is busy or other.id in failed or not other.breaker.available():
                continue
            if other.admission.try_acquire(_tokens(other, tokens)):
                busy.breaker.release()
                other.breaker.acquire()
                return other
        return None

    async def _attempt(
        self,
        ctx: RequestContext,
        group: ModelGroup,
        dep: Deployment,
        matched: str,
        call: Call[T],
        failures: Failures,
        failed: set[str],
    ) -> T:
        """One upstream call on an admitted deployment, and what it teaches: admission,
        breaker, latency, the request's record of failures."""
        ctx.served_by(group.name, dep.id, dep.provider)
        dep.in_flight += 1
        dep.admission.sending()
        left = dep.breaker.now()
        started = time.perf_counter()
        try:
            result = await call(dep, dep.upstream_model(matched))
        except GatewayError as exc:
            if isinstance(exc, RateLimited):
                dep.admission.rate_limited(exc.retry_after)
            dep.breaker.failure(exc)
            failures.append((f"{group.name} via {dep.id}", exc))
            failed.add(dep.id)
            raise
        except BaseException:
            dep.breaker.release()  # cancelled: a half-open probe must not stay taken
            raise
        finally:
            dep.in_flight -= 1
            dep.admission.release()
        dep.admission.succeeded()
        seconds = time.perf_counter() - started
        dep.observe_latency(seconds)
        group.observe_latency(seconds)
        dep.breaker.success(left)
        ctx.stamp(group.name, dep.id, dep.provider)  # the winner, when attempts raced
        return result

    def _second(
        self,
        ctx: RequestContext,
        group: ModelGroup,
        first: Deployment,
        tokens: Callable[[], int],
        failed: set[str],
        attempt_on: Callable[[Deployment], Awaitable[T]],
    ) -> Awaitable[T] | None:
        """A hedge on another deployment with capacity now, if the retry budget allows."""
        try:
            other = group.pick(avoid=frozenset(failed | {first.id}))
        except CoolingDown:
            return None
        if other.id == first.id or other.id in failed:
            other.breaker.release()
            return None
        if not other.admission.try_acquire(_tokens(other, tokens)):
            other.breaker.release()
            return None
        if not self.budget.try_spend(HEDGE_SHARE):
            other.admission.release()
            other.breaker.release()
            return None
        ctx.hedged = True
        return attempt_on(other)

    def _max_wait(self, ctx: RequestContext) -> float:
        wait = ctx.max_wait if ctx.max_wait is not None else self.max_wait
        if ctx.deadline is not None:
            wait = min(wait, ctx.deadline - time.perf_counter())
        return max(wait, 0.0)

    @staticmethod
    def _fresh(group: ModelGroup, failed: frozenset[str], exc: GatewayError) -> Deployment:
        """A deployment that has not failed this request, or ``exc``."""
        try:
            following = group.pick(avoid=failed)
        except CoolingDown:
            raise exc from None
        if following.id in failed:
            following.breaker.release()
            raise exc
        return following

    async def _wait_for_next(
        self,
        ctx: RequestContext,
        group: ModelGroup,
        exc: GatewayError,
        attempt: int,
        failed: frozenset[str],
    ) -> Deployment:
        """Back off, then the deployment for the next attempt; raises ``exc`` when there is
        none worth waiting for, or the budget is spent.

        A deployment that has not failed yet is taken at once (after a jittered backoff).
        Otherwise the wait is what the provider asked for (retry-after, up to
        `max_retry_after`), and the group is asked again after it: the breaker then lets
        one request through as its probe and turns the rest away."""
        cfg = self.config
        delay = backoff(attempt, cfg.backoff_base, cfg.backoff_max, self._rng)
        try:
            fresh: Deployment | None = group.pick(avoid=failed)
        except CoolingDown:
            fresh = None
        if fresh is not None and fresh.id in failed:
            fresh.breaker.release()
            fresh = None
        if fresh is None:
            wait = exc.retry_after or 0.0
            if wait > cfg.max_retry_after:
                raise exc
            delay = max(delay, wait)
        if ctx.deadline is not None and time.perf_counter() + delay >= ctx.deadline:
            if fresh is not None:
                fresh.breaker.release()
            raise exc  # never retry past the request's deadline
        if not self.budget.try_spend():
            if fresh is not None:
                fresh.breaker.release()
            raise exc
        try:
            await asyncio.sleep(delay)
        except BaseException:
            if fresh is not None:
                fresh.breaker.release()
            raise
        if fresh is not None:
            return fresh
        try:
            return group.pick(avoid=failed)
        except CoolingDown:
            raise exc from None
