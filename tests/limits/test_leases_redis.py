"""Credit and leases: shared limits and budgets admitted in process, counted in Redis."""

from __future__ import annotations

import asyncio
from typing import Any

from lockgate.core.errors import BudgetExceeded, RateLimitExceeded
from lockgate.core.tasks import TaskTracker
from lockgate.features import budget_leases
from lockgate.features.budgets import Budget, Reservation
from lockgate.features.budgets_redis import RedisBudgets
from lockgate.features.limit_credits import CREDIT_REQUESTS
from lockgate.features.ratelimit import RateLimit
from lockgate.features.ratelimit_redis import RedisRateLimiter
from tests.limits.conftest import SharedFactory, Switch

BIG = Budget("key", "k1", limit=10**9, period="monthly")


async def _cell(engine: RedisRateLimiter, name: str) -> int:
    """The cell's TAT ahead of the Redis server's clock, in µs (0: at full allowance)."""
    redis = engine._redis
    key = redis.key("{lg-rl}", name)
    tat = await redis.client.get(key)
    seconds, micros = await redis.client.time()
    return max(0, int(tat or 0) - (seconds * 1_000_000 + micros))


async def test_a_large_limit_admits_from_credit_and_redis_counts_it(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    engine = RedisRateLimiter(shared_redis(url=redis_url), tasks=TaskTracker())
    limits = [RateLimit("key", "k1", rpm=60_000)]  # 1 ms a request
    first = await engine.check(limits, model="m")
    assert first.ticket.backend == "redis"
    assert first.headers["x-ratelimit-limit-requests"] == "60000"
    ahead = await _cell(engine, "key:k1:*:rpm")
    assert ahead >= (1 + CREDIT_REQUESTS) * 1000 - 30_000  # the credit is charged in Redis
    grants = [await engine.check(limits, model="m") for _ in range(20)]
    assert {g.ticket.backend for g in grants} == {"credit"}
    assert all(g.headers["x-ratelimit-limit-requests"] == "60000" for g in grants)
    assert all(int(g.headers["x-ratelimit-remaining-requests"]) < 60_000 for g in grants)
    await engine.close()  # gives back what 21 requests did not use
    assert await _cell(engine, "key:k1:*:rpm") <= 21 * 1000


async def test_steady_traffic_grows_the_credit_and_tops_up_a_requests_limits_together(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    """Requests that use half a credit within half its life double it (fewer top-ups
    under load), and the credits a request finds low are topped up in one script call."""
    engine = RedisRateLimiter(shared_redis(url=redis_url), tasks=TaskTracker())
    calls: list[int] = []
    top_up = engine._top_up

    async def counted(rules: Any, wants: Any) -> Any:
        calls.append(len(rules))
        return await top_up(rules, wants)

    engine.credits._top_up = counted
    limits = [RateLimit("key", "k3", rpm=6_000_000, tpm=600_000_000)]
    await engine.check(limits, model="m", tokens=100)  # in Redis, taking credit on both
    initial = {key: credit.want for key, credit in engine.credits._credits.items()}
    assert len(initial) == 2
    backends = []
    for _ in range(2000):
        grant = await engine.check(limits, model="m", tokens=100)
        backends.append(grant.ticket.backend)
        await asyncio.sleep(0)  # top-ups' replies come in
    assert backends.count("credit") > 1800
    assert calls and max(calls) == 2  # both limits in one call
    grown = {key: credit.want for key, credit in engine.credits._credits.items()}
    assert all(grown[key] > initial[key] for key in initial)
    assert len(calls) < 2000 // 32  # fewer than a top-up per half of the first credit
    await engine.close()


async def test_a_small_limit_is_checked_in_redis_for_every_request(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    engine = RedisRateLimiter(shared_redis(url=redis_url), tasks=TaskTracker())
    limits = [RateLimit("key", "k2", rpm=100)]
    grants = [await engine.check(limits, model="m") for _ in range(3)]
    assert [g.ticket.backend for g in grants] == ["redis"] * 3
    assert len(engine.credits) == 0
    await engine.close()


async def test_two_replicas_with_credit_admit_no_more_than_the_limit(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    """A limit of 262,144 tokens a day, large enough for credit, on two replicas: requests
    of 64 tokens, alternately: at most 4,096 pass in total, and nearly that many."""
    replicas = [RedisRateLimiter(shared_redis(url=redis_url), tasks=TaskTracker()) for _ in "ab"]
    limits = [RateLimit("team", "t9", tpd=262_144)]
    admitted = credited = 0
    for i in range(4600):
        try:
            grant = await replicas[i % 2].check(limits, model="m", tokens=64)
        except RateLimitExceeded:
            continue
        admitted += 1
        credited += grant.ticket.backend == "credit"
    assert credited > 1000
    assert 4096 - 2 * CREDIT_REQUESTS <= admitted <= 4096
    for engine in replicas:
        await engine.close()


async def test_a_large_budget_is_reserved_on_a_lease_and_settled_in_redis(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    engine = RedisBudgets(shared_redis(url=redis_url), tasks=TaskTracker())
    first = await engine.reserve([BIG], 1000)
    assert first.backend == "redis"  # the lease is asked for meanwhile
    await asyncio.sleep(budget_leases.FLUSH_EVERY * 5)
    spent, reserved = await engine.usage(BIG)
    assert spent == 0 and reserved == 1000 + 1000 * budget_leases.LEASE_REQUESTS
    await engine.settle(first, 700)  # waits for Redis: a flush may run meanwhile
    # Reserved and settled on the lease without waiting: no flush can run in between.
    leased = [await engine.reserve([BIG], 1000) for _ in range(10)]
    assert {r.backend for r in leased} == {"lease"}
    for reservation in leased:
        await engine.settle(reservation, 300)
    await asyncio.sleep(budget_leases.FLUSH_EVERY * 5)
    spent, reserved = await engine.usage(BIG)
    assert spent == 700 + 10 * 300
    assert reserved == 1000 * budget_leases.LEASE_REQUESTS  # the lease, topped up
    await engine.close()
    assert await engine.usage(BIG) == (3700, 0)


async def test_a_lease_in_flight_is_counted_and_settled_at_close(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    engine = RedisBudgets(shared_redis(url=redis_url), tasks=TaskTracker())
    budget = Budget("team", "t2", limit=10**9)
    await engine.settle(await engine.reserve([budget], 500), 500)
    await asyncio.sleep(budget_leases.FLUSH_EVERY * 5)
    held = await engine.reserve([budget], 500)
    assert held.backend == "lease"
    await engine.settle(held, 200)  # pending: not yet in Redis
    await engine.close()
    assert await engine.usage(budget) == (700, 0)


async def test_replicas_on_leases_never_pass_a_budget(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    """A budget of 1,638,400 (just large enough to lease), requests reserving 100 and costing
    100, on three replicas at once until all refuse: spent never passes the limit."""
    limit = 100 * budget_leases.LEASE_REQUESTS * budget_leases.LEASE_RATIO
    budget = Budget("team", "t3", limit=limit)
    # A reply later than the default 0.25 s (a loaded machine) would leave a lease that
    # Redis granted unknown to its replica, held until it expires: not what this tests.
    replicas = [
        RedisBudgets(shared_redis(url=redis_url, socket_timeout=5), tasks=TaskTracker())
        for _ in "abc"
    ]
    leased = 0

    async def spend(engine: RedisBudgets) -> None:
        nonlocal leased
        while True:
            try:
                reservation: Reservation = await engine.reserve([budget], 100)
            except BudgetExceeded:
                return
            leased += reservation.backend == "lease"
            await asyncio.sleep(0)
            await engine.settle(reservation, 100)

    await asyncio.gather(*(spend(engine) for engine in replicas))
    for engine in replicas:
        await engine.close()
    spent, reserved = await replicas[0].usage(budget)
    assert reserved == 0
    assert limit - 3 * 100 * budget_leases.LEASE_REQUESTS <= spent <= limit
    assert leased > 0


async def test_spend_on_a_lease_survives_a_redis_outage(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    """Spend settled on a lease while Redis is away is kept, and sent once it is back;
    meanwhile requests are reserved by the in-process budgets, not on the lease."""
    host, port = redis_url.split("//")[1].split("/")[0].split(":")
    switch = Switch((host, int(port)))
    await switch.on()
    shared = shared_redis(url=f"redis://127.0.0.1:{switch.port}/0", socket_timeout=0.2)
    engine = RedisBudgets(shared, tasks=TaskTracker(), probe_interval=0.05)
    direct = RedisBudgets(shared_redis(url=redis_url), tasks=TaskTracker(), leases=False)
    budget = Budget("key", "k7", limit=10**9, period="daily")
    await engine.settle(await engine.reserve([budget], 1000), 1000)
    await asyncio.sleep(budget_leases.FLUSH_EVERY * 5)
    held = await engine.reserve([budget], 1000)
    assert held.backend == "lease"
    await switch.off()
    await engine.settle(held, 400)  # on the lease: its flushes fail while Redis is away
    await asyncio.sleep(budget_leases.FLUSH_EVERY * 10)
    assert engine.failopen.down
    during = await engine.reserve([budget], 1000)
    assert during.backend == "local"
    await engine.settle(during, 250)  # counted in process meanwhile (docs/limits.md)
    await switch.on()
    await asyncio.sleep(0.1)
    assert (await engine.reserve([budget], 10)).backend == "redis"  # the probe: back
    await asyncio.sleep(budget_leases.FLUSH_EVERY * 5)
    spent, _ = await direct.usage(budget)
    assert spent == 1000 + 400  # the lease's spend arrived, once
    await engine.close()
    await switch.off()
