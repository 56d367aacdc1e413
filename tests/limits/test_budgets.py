"""Budget behaviour, the same suite for the in-process and the Redis engines."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lockgate.core.errors import BudgetExceeded
from lockgate.features.budgets import Budget, LocalBudgets, period_bounds
from lockgate.features.limit_metrics import LimitMetrics
from lockgate.features.money import UNITS_PER_USD, usd_to_units
from tests.limits.conftest import Clock

Factory = Callable[..., Any]
USD = UNITS_PER_USD


async def usage(engine: Any, budget: Budget) -> tuple[int, int]:
    result = engine.usage(budget)
    return await result if asyncio.iscoroutine(result) else result  # type: ignore[no-any-return]


async def test_reserve_refuse_settle(make_budgets: Factory, metrics: LimitMetrics) -> None:
    engine = make_budgets()
    key = Budget("key", "k1", limit=10 * USD, period="monthly")
    first = await engine.reserve([key], 6 * USD)
    with pytest.raises(BudgetExceeded) as info:
        await engine.reserve([key], 5 * USD)  # 6 held + 5 > 10
    err = info.value
    assert (err.status, err.code, err.type) == (429, "budget_exceeded", "insufficient_quota")
    assert err.headers == {"x-should-retry": "false"}
    assert "$6.00 held by requests in flight of $10.00 per month" in err.message
    assert "resets at 2026-04-01T00:00:00Z" in err.message
    assert metrics.budget_refused == {"key": 1}

    await engine.settle(first, 2 * USD)  # it cost less than its maximum
    assert await usage(engine, key) == (2 * USD, 0)
    second = await engine.reserve([key], 8 * USD)  # 2 spent + 8 fits exactly
    await engine.settle(second, 8 * USD)
    assert await usage(engine, key) == (10 * USD, 0)


async def test_no_request_once_the_budget_is_spent(make_budgets: Factory) -> None:
    engine = make_budgets()
    key = Budget("key", "k1", limit=100)
    reservation = await engine.reserve([key], 50)
    await engine.settle(reservation, 120)  # a call can cost more than its estimate
    for cost in (1, 0):
        with pytest.raises(BudgetExceeded):
            await engine.reserve([key], cost)


async def test_all_scopes_or_none(make_budgets: Factory) -> None:
    engine = make_budgets()
    key = Budget("key", "k1", limit=1000, period="daily")
    team = Budget("team", "t1", limit=100, period="monthly")
    with pytest.raises(BudgetExceeded) as info:
        await engine.reserve([key, team], 200)
    assert info.value.scope == "team"
    assert await usage(engine, key) == (0, 0)  # nothing held on the key either
    reservation = await engine.reserve([key, team], 100)
    assert await usage(engine, key) == (0, 100)
    await engine.settle(reservation, 40)
    assert await usage(engine, key) == (40, 0)
    assert await usage(engine, team) == (40, 0)


async def test_concurrent_requests_never_overshoot(make_budgets: Factory) -> None:
    """50 concurrent requests, each reserving its maximum and settling at most that: the
    budget is never passed, and what was refused is what did not fit."""
    engine = make_budgets()
    budget = Budget("team", "t1", limit=10_000, period="daily")
    rng = random.Random(5)
    admitted, refused = [], 0

    async def request() -> None:
        nonlocal refused
        try:
            reservation = await engine.reserve([budget], 500)
        except BudgetExceeded:
            refused += 1
            return
        spent, reserved = await usage(engine, budget)
        assert spent + reserved <= budget.limit
        await asyncio.sleep(rng.random() * 0.01)
        cost = rng.randrange(0, 501)
        admitted.append(cost)
        await engine.settle(reservation, cost)

    await asyncio.gather(*(request() for _ in range(50)))
    spent, reserved = await usage(engine, budget)
    assert reserved == 0
    assert spent == sum(admitted) <= budget.limit
    assert refused > 0 and len(admitted) >= 20  # 20 fit at once; settled ones free room


async def test_periods_roll_over_at_utc_boundaries(make_budgets: Factory, clock: Clock) -> None:
    engine = make_budgets()
    daily = Budget("key", "k1", limit=100, period="daily")
    weekly = Budget("user", "u1", limit=100, period="weekly")
    monthly = Budget("team", "t1", limit=100, period="monthly")
    clock.set(datetime(2026, 5, 31, 23, 59, 30, tzinfo=UTC))  # a Sunday, the month's end
    for budget in (daily, weekly, monthly):
        await engine.settle(await engine.reserve([budget], 100), 100)
        with pytest.raises(BudgetExceeded):
            await engine.reserve([budget], 1)
    clock.advance(31)  # Monday 1 June 00:00:01 UTC: a new day, week and month
    for budget in (daily, weekly, monthly):
        assert await usage(engine, budget) == (0, 0)
        await engine.reserve([budget], 100)


def test_period_bounds() -> None:
    at = datetime(2026, 12, 31, 18, 0, tzinfo=UTC)  # a Thursday
    day = datetime(2026, 12, 31, tzinfo=UTC)
    assert period_bounds("daily", at) == (day, day + timedelta(days=1))
    monday = datetime(2026, 12, 28, tzinfo=UTC)
    assert period_bounds("weekly", at) == (monday, monday + timedelta(days=7))
    assert period_bounds("monthly", at) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


async def test_soft_alerts_fire_once_per_period(
    make_budgets: Factory,
    clock: Clock,
    metrics: LimitMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_budgets()
    budget = Budget("team", "t1", limit=1000, period="daily", alerts=(0.5, 0.8))

    async def spend(cost: int) -> list[str]:
        alerts = await engine.settle(await engine.reserve([budget], cost), cost)
        return [a.threshold for a in alerts]

    with caplog.at_level(logging.WARNING, logger="lockgate.limits"):
        assert await spend(400) == []
        assert await spend(200) == ["0.5"]
        assert await spend(100) == []
        assert await spend(150) == ["0.8"]
        assert await spend(50) == []
        clock.advance(86_400)  # the next day: counters and alerts start again
        assert await spend(900) == ["0.5", "0.8"]
    assert metrics.budget_alerts == {("team", "0.5"): 2, ("team", "0.8"): 2}
    events = [r for r in caplog.records if getattr(r, "event", None) == "budget_alert"]
    assert len(events) == 4
    assert events[0].__dict__["spent"] == 600 and events[0].__dict__["scope_id"] == "t1"


async def test_an_unsettled_reservation_expires(make_budgets: Factory, clock: Clock) -> None:
    engine = make_budgets(reservation_ttl=60)
    budget = Budget("key", "k1", limit=1000, period="monthly")
    crashed = await engine.reserve([budget], 900)  # its replica died before settling
    with pytest.raises(BudgetExceeded):
        await engine.reserve([budget], 200)
    clock.advance(61)
    later = await engine.reserve([budget], 200)
    assert await usage(engine, budget) == (0, 200)
    # A settle that comes after its reservation expired still bills, and releases nothing
    # that is not its own.
    await engine.settle(crashed, 300)
    assert await usage(engine, budget) == (300, 200)
    await engine.settle(later, 100)
    assert await usage(engine, budget) == (400, 0)


async def test_the_ledger_seeds_the_counters_of_its_period_only(
    make_budgets: Factory, clock: Clock
) -> None:
    engine = make_budgets()
    start, _ = period_bounds("daily", datetime.fromtimestamp(clock.now, UTC))
    stale = Budget("key", "k1", limit=1000, period="daily", spent=950, spent_since=start)
    with pytest.raises(BudgetExceeded):
        await engine.reserve([stale], 100)  # after a restart: the ledger says 950 spent
    yesterday = start - timedelta(days=1)
    old = Budget("key", "k2", limit=1000, period="daily", spent=950, spent_since=yesterday)
    await engine.reserve([old], 100)  # yesterday's spend does not count today


async def test_money_units() -> None:
    assert usd_to_units(0.15) == 150_000_000
    assert usd_to_units("12.5") == 12_500_000_000
    assert usd_to_units(1e-10) == 1  # rounded up, never to nothing


async def test_in_process_memory_follows_what_is_in_flight(clock: Clock) -> None:
    """Settled reservations do not pile up until they would have expired."""
    engine = LocalBudgets(clock=clock)
    budget = Budget("team", "t1", limit=10**12, period="monthly")
    for _ in range(5000):
        await engine.settle(await engine.reserve([budget], 10), 10)
    [counters] = engine._counters.values()
    assert len(counters.held) == 0
    assert engine.usage(budget) == (50_000, 0)


async def test_lost_reservations_are_dropped_without_a_refusal(clock: Clock) -> None:
    """Reservations never settled (their requests lost) leave memory once expired, even on
    a budget far from its limit, where no refusal ever looks at them."""
    engine = LocalBudgets(clock=clock, reservation_ttl=60)
    budget = Budget("team", "t1", limit=10**12, period="monthly")
    for _ in range(500):
        await engine.reserve([budget], 10)  # never settled
    [counters] = engine._counters.values()
    assert len(counters.held) == 500
    clock.advance(61)
    for _ in range(LocalBudgets._SWEEP_EVERY):
        await engine.settle(await engine.reserve([budget], 10), 10)
    assert len(counters.held) == 0
    assert engine.usage(budget) == (10 * LocalBudgets._SWEEP_EVERY, 0)
