"""Budgets in Redis: one budget across replicas, crash expiry, key lifetimes, failing open."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from lockgate.core.errors import BudgetExceeded
from lockgate.core.tasks import TaskTracker
from lockgate.features.budgets import Budget, Reservation
from lockgate.features.budgets_redis import RedisBudgets
from lockgate.features.limit_metrics import LimitMetrics
from tests.limits.conftest import Clock, SharedFactory, Switch, closed_port


async def test_replicas_share_one_budget(
    redis_url: str, shared_redis: SharedFactory, clock: Clock
) -> None:
    """Five replicas, 50 concurrent reservations of 100 against a budget of 1,000: ten are
    held, whichever replica they reached; the in-flight total never passes the limit."""
    replicas = [
        RedisBudgets(shared_redis(url=redis_url), tasks=TaskTracker(), clock=clock)
        for _ in range(5)
    ]
    budget = Budget("team", "t1", limit=1000, period="monthly")

    async def reserve(engine: RedisBudgets) -> Reservation | None:
        try:
            return await engine.reserve([budget], 100)
        except BudgetExceeded:
            return None

    held = await asyncio.gather(*(reserve(replicas[i % 5]) for i in range(50)))
    assert sum(r is not None for r in held) == 10
    assert await replicas[0].usage(budget) == (0, 1000)
    # Each settles on another replica than the one that reserved: state is shared.
    for i, reservation in enumerate(r for r in held if r is not None):
        await replicas[(i + 1) % 5].settle(reservation, 60)
    assert await replicas[3].usage(budget) == (600, 0)


async def test_a_crashed_replicas_reservation_expires_for_the_others(
    redis_url: str, shared_redis: SharedFactory, clock: Clock
) -> None:
    crashed = RedisBudgets(
        shared_redis(url=redis_url), tasks=TaskTracker(), clock=clock, reservation_ttl=30
    )
    survivor = RedisBudgets(
        shared_redis(url=redis_url), tasks=TaskTracker(), clock=clock, reservation_ttl=30
    )
    budget = Budget("key", "k1", limit=100, period="daily")
    await crashed.reserve([budget], 100)
    with pytest.raises(BudgetExceeded):
        await survivor.reserve([budget], 1)
    clock.advance(31)
    await survivor.reserve([budget], 100)


async def test_period_keys_expire_a_day_after_their_period(
    redis_url: str, redis_prefix: str, shared_redis: SharedFactory, clock: Clock
) -> None:
    shared = shared_redis(url=redis_url)
    engine = RedisBudgets(shared, tasks=TaskTracker(), clock=clock)
    clock.set(datetime(2026, 3, 4, 18, 0, tzinfo=UTC))
    daily = Budget("key", "k 1", limit=100, period="daily")
    total = Budget("team", "t1", limit=100)
    await engine.settle(await engine.reserve([daily, total], 10), 10)
    daily_key = f"{redis_prefix}{{lg-bg}}:key:k%201:d2026-03-04"
    total_key = f"{redis_prefix}{{lg-bg}}:team:t1:total"
    hours = await shared.client.pttl(daily_key) / 3_600_000
    assert hours == pytest.approx(6 + 24, abs=0.01)  # to midnight, then a day
    assert await shared.client.pttl(total_key) == -1  # a budget for ever keeps its count


async def test_an_unreachable_redis_fails_open_to_local_budgets(
    shared_redis: SharedFactory, clock: Clock, metrics: LimitMetrics
) -> None:
    shared = shared_redis(url=f"redis://127.0.0.1:{closed_port()}/0", socket_timeout=0.2)
    engine = RedisBudgets(
        shared, tasks=TaskTracker(), metrics=metrics, clock=clock, probe_interval=60
    )
    budget = Budget("key", "k1", limit=100, period="daily")
    started = time.perf_counter()
    reservation = await engine.reserve([budget], 80)
    assert reservation.backend == "local"
    with pytest.raises(BudgetExceeded):  # still enforced, per replica
        await engine.reserve([budget], 80)
    await engine.settle(reservation, 50)
    assert time.perf_counter() - started < 1.0
    assert engine.local.usage(budget) == (50, 0)
    assert metrics.fallbacks == {"budgets": 1}


async def test_a_settle_while_redis_is_away_is_counted_locally_and_redis_recovers(
    redis_url: str, shared_redis: SharedFactory, clock: Clock, metrics: LimitMetrics
) -> None:
    host, port = redis_url.split("//")[1].split("/")[0].split(":")
    switch = Switch((host, int(port)))
    await switch.on()
    shared = shared_redis(url=f"redis://127.0.0.1:{switch.port}/0", socket_timeout=0.2)
    engine = RedisBudgets(
        shared, tasks=TaskTracker(), metrics=metrics, clock=clock, probe_interval=0.05
    )
    budget = Budget("key", "k1", limit=100, period="daily")
    reservation = await engine.reserve([budget], 40)
    assert reservation.backend == "redis"
    await switch.off()
    await engine.settle(reservation, 30)
    assert engine.local.usage(budget) == (30, 0)
    assert metrics.local_mode == {"budgets": True}
    await switch.on()
    await asyncio.sleep(0.1)
    again = await engine.reserve([budget], 10)
    assert again.backend == "redis"
    assert metrics.local_mode == {"budgets": False}
    await switch.off()
