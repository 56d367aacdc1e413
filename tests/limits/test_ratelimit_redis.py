"""Rate limits in Redis: one limit across replicas, the server's clock, failing open."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from lockgate.core.errors import RateLimitExceeded
from lockgate.core.tasks import TaskTracker
from lockgate.features.limit_metrics import LimitMetrics
from lockgate.features.ratelimit import RateLimit
from lockgate.features.ratelimit_redis import RedisRateLimiter
from tests.limits.conftest import Clock, SharedFactory, Silent, Switch, closed_port
from tests.limits.test_ratelimit import admitted


async def test_replicas_enforce_one_limit_not_n(
    redis_url: str, shared_redis: SharedFactory, clock: Clock
) -> None:
    """Five replicas (each its own client and connection pool) hammer one key's limits
    concurrently: exactly the limit is admitted in total, on every limit."""
    replicas = [
        RedisRateLimiter(shared_redis(url=redis_url), tasks=TaskTracker(), clock=clock)
        for _ in range(5)
    ]
    limits = [RateLimit("key", "k1", rpm=50), RateLimit("team", "t1", tpm=10_000)]

    async def hammer(limiter: RedisRateLimiter) -> int:
        results = [await admitted(limiter, limits, tokens=100) for _ in range(40)]
        return sum(r is not None for r in results)

    counts = await asyncio.gather(*(hammer(r) for r in replicas))
    assert sum(counts) == 50
    assert all(c > 0 for c in counts)  # they really raced
    # The team's tokens were charged for exactly the 50 admitted, nothing for refusals.
    grant = await replicas[0].check([RateLimit("team", "t1", tpm=10_000)], tokens=0)
    assert grant.headers["x-ratelimit-remaining-tokens"] == "5000"


async def test_the_redis_server_clock_by_default(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    first = RedisRateLimiter(shared_redis(url=redis_url), tasks=TaskTracker())
    second = RedisRateLimiter(shared_redis(url=redis_url), tasks=TaskTracker())
    limits = [RateLimit("key", "k1", rpm=3)]
    results = [await admitted(r, limits) for r in (first, second, first, second, first)]
    assert [r is not None for r in results] == [True, True, True, False, False]
    with pytest.raises(RateLimitExceeded) as info:
        await second.check(limits)
    assert 19 < (info.value.retry_after or 0) <= 20


async def test_keys_live_under_the_prefix_and_expire(
    redis_url: str, redis_prefix: str, shared_redis: SharedFactory
) -> None:
    shared = shared_redis(url=redis_url)
    limiter = RedisRateLimiter(shared, tasks=TaskTracker())
    await limiter.check([RateLimit("key", "a:b/c", rpm=60, tpd=1000)], tokens=10)
    keys = sorted([k.decode() async for k in shared.client.scan_iter(match=f"{redis_prefix}*")])
    assert keys == [
        f"{redis_prefix}{{lg-rl}}:key:a%3Ab%2Fc:*:rpm",
        f"{redis_prefix}{{lg-rl}}:key:a%3Ab%2Fc:*:tpd",
    ]
    ttls = [await shared.client.pttl(k) for k in keys]
    assert 0 < ttls[0] <= 1_000  # one request of 60/min: back to full in a second
    assert 0 < ttls[1] <= 864_000  # 10 tokens of 1000/day


async def test_an_unreachable_redis_fails_open_fast_and_is_logged_once(
    shared_redis: SharedFactory,
    clock: Clock,
    metrics: LimitMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = shared_redis(url=f"redis://127.0.0.1:{closed_port()}/0", socket_timeout=0.2)
    limiter = RedisRateLimiter(
        shared, tasks=TaskTracker(), metrics=metrics, clock=clock, probe_interval=60
    )
    limits = [RateLimit("key", "k1", rpm=2)]
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="lockgate.limits"):
        grants = [await admitted(limiter, limits) for _ in range(3)]
    assert time.perf_counter() - started < 1.0
    # Enforced in process meanwhile: still 2 per minute, not unlimited.
    assert [g is not None for g in grants] == [True, True, False]
    assert grants[0] is not None and grants[0].ticket.backend == "local"
    assert metrics.fallbacks == {"rate_limits": 1}
    assert metrics.local_mode == {"rate_limits": True}
    errors = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(errors) == 1


async def test_a_hung_redis_costs_one_bounded_wait(
    shared_redis: SharedFactory, silent_server: Silent, clock: Clock
) -> None:
    url = f"redis://127.0.0.1:{silent_server.port}/0"
    limiter = RedisRateLimiter(
        shared_redis(url=url, socket_timeout=0.2), tasks=TaskTracker(), probe_interval=0.3
    )
    limits = [RateLimit("key", "k1", rpm=1000)]
    started = time.perf_counter()
    grant = await limiter.check(limits)
    assert time.perf_counter() - started < 1.0  # bounded by the socket timeout
    assert grant.ticket.backend == "local"
    started = time.perf_counter()
    for _ in range(5):
        await limiter.check(limits)
    assert time.perf_counter() - started < 0.15  # no wait at all until the next probe
    # After the probe interval, 20 concurrent requests: one probes Redis (and waits for
    # it), the others go on in process at once.
    await asyncio.sleep(0.35)
    before = silent_server.connections

    async def timed_check() -> float:
        begun = time.perf_counter()
        await limiter.check(limits)
        return time.perf_counter() - begun

    waits = sorted(await asyncio.gather(*(timed_check() for _ in range(20))))
    assert silent_server.connections == before + 1
    assert waits[-2] < 0.15 <= waits[-1] < 1.0  # the probe waits the 0.2 s timeout


async def test_back_to_redis_when_it_answers_again(
    redis_url: str, shared_redis: SharedFactory, clock: Clock, metrics: LimitMetrics
) -> None:
    host, port = redis_url.split("//")[1].split("/")[0].split(":")
    switch = Switch((host, int(port)))
    await switch.on()
    shared = shared_redis(url=f"redis://127.0.0.1:{switch.port}/0", socket_timeout=0.2)
    limiter = RedisRateLimiter(
        shared, tasks=TaskTracker(), metrics=metrics, clock=clock, probe_interval=0.05
    )
    limits = [RateLimit("key", "k1", rpm=100)]
    assert (await limiter.check(limits)).ticket.backend == "redis"
    await switch.off()
    assert (await limiter.check(limits)).ticket.backend == "local"
    assert metrics.local_mode == {"rate_limits": True}
    await switch.on()
    await asyncio.sleep(0.1)  # past the probe interval
    grant = await limiter.check(limits)
    assert grant.ticket.backend == "redis"
    assert metrics.local_mode == {"rate_limits": False}
    # The shared count carried on where it was: 2 of 100 in Redis (1 was local).
    assert grant.headers["x-ratelimit-remaining-requests"] == "98"
    await switch.off()


async def test_a_settle_while_redis_is_away_charges_the_local_cells(
    redis_url: str, shared_redis: SharedFactory, clock: Clock
) -> None:
    host, port = redis_url.split("//")[1].split("/")[0].split(":")
    switch = Switch((host, int(port)))
    await switch.on()
    shared = shared_redis(url=f"redis://127.0.0.1:{switch.port}/0", socket_timeout=0.2)
    limiter = RedisRateLimiter(shared, tasks=TaskTracker(), clock=clock, probe_interval=60)
    limits = [RateLimit("key", "k1", tpm=1000)]
    grant = await limiter.check(limits, tokens=100)
    assert grant.ticket.backend == "redis"
    await switch.off()
    await limiter.settle(grant.ticket, 700)  # 600 more than estimated, Redis away
    local = await limiter.check(limits, tokens=0)
    assert local.ticket.backend == "local"
    assert local.headers["x-ratelimit-remaining-tokens"] == "400"


async def test_a_redis_that_refuses_scripts_is_not_silently_per_replica(
    shared_redis: SharedFactory,
    refusing_server: int,
    clock: Clock,
    metrics: LimitMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = shared_redis(url=f"redis://127.0.0.1:{refusing_server}/0", socket_timeout=0.2)
    limiter = RedisRateLimiter(
        shared, tasks=TaskTracker(), metrics=metrics, clock=clock, probe_interval=60
    )
    with caplog.at_level(logging.ERROR, logger="lockgate.limits"):
        grant = await limiter.check([RateLimit("key", "k1", rpm=10)])
    assert grant.ticket.backend == "local"  # still enforced, never failed
    [record] = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert "does not run scripts" in record.getMessage()  # Redis's own reason, logged
    assert record.levelno == logging.ERROR
    assert metrics.local_mode == {"rate_limits": True}
