"""The in-process admit step (limits and budgets at once) against the separate engines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lockgate.core.errors import BudgetExceeded, RateLimitExceeded
from lockgate.core.types import Principal, RequestContext, Usage
from lockgate.features.budgets import Budget, LocalBudgets
from lockgate.features.local_admit import LocalAdmission
from lockgate.features.ratelimit import LocalRateLimiter, RateLimit
from tests.limits.conftest import Clock

LIMITS = (RateLimit("key", "k1", rpm=100, tpm=10_000), RateLimit("team", "t1", tpm=50_000))
BUDGETS = (Budget("key", "k1", 1_000_000, "daily"), Budget("team", "t1", 5_000_000))


def _admission(clock: Clock) -> LocalAdmission:
    return LocalAdmission(LocalRateLimiter(clock=clock), LocalBudgets(clock=clock))


def _principal(limits: tuple[RateLimit, ...] = LIMITS, budgets: tuple[Budget, ...] = BUDGETS):
    return Principal("k1", team_id="t1", limits=limits, budgets=budgets)


def _over(ctx: RequestContext, prompt: int, completion: int, cost: int) -> None:
    ctx.usage, ctx.cost = Usage(prompt, completion), cost


def _cells(admission: LocalAdmission) -> dict[str, int]:
    return {key: cell.tat for key, cell in admission.limiter._cells.items()}


def test_admits_and_settles_as_the_separate_engines_do(clock: Clock) -> None:
    """The same requests taken together, and by the engines one after the other (check,
    then reserve): the same headers, cells and budgets after each."""
    fast, slow = _admission(clock), _admission(clock)
    principal = _principal()
    for i in range(30):
        tokens, cost = 100 + 37 * i, 1_000 + i
        ctx_fast = RequestContext(f"f{i}")
        finish_fast = fast.admit(ctx_fast, principal, "m", tokens, cost * 3)
        grant = slow.limiter.check_limits(LIMITS, "m", tokens)
        reservation = slow.budgets.reserve_budgets(BUDGETS, cost * 3)
        assert ctx_fast.limit_headers == grant.headers
        assert _cells(fast) == _cells(slow)
        assert fast.budgets.usage(BUDGETS[0]) == slow.budgets.usage(BUDGETS[0])
        clock.advance(0.05)
        _over(ctx_fast, 40, 25 + i, cost)
        finish_fast()
        slow.limiter.settle_now(grant.ticket, 40 + 25 + i)
        slow.budgets.settle_now(reservation, cost)
        assert _cells(fast) == _cells(slow)
        for budget in BUDGETS:
            assert fast.budgets.usage(budget) == slow.budgets.usage(budget)
    assert fast.budgets.usage(BUDGETS[1]) == (sum(1_000 + i for i in range(30)), 0)
    assert len(fast._accounts._seen) == 1  # found once, then reused


def test_a_refused_request_takes_nothing(clock: Clock) -> None:
    admission = _admission(clock)
    principal = _principal((RateLimit("key", "k1", rpm=2, tpm=10_000),))
    for i in range(2):
        admission.admit(RequestContext(f"r{i}"), principal, "m", 10, 500)
    cells, held = _cells(admission), admission.budgets.usage(BUDGETS[0])
    assert held == (0, 1_000)
    with pytest.raises(RateLimitExceeded) as info:
        admission.admit(RequestContext("r3"), principal, "m", 10, 500)
    assert info.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert _cells(admission) == cells  # no limit charged
    assert admission.budgets.usage(BUDGETS[0]) == held  # nothing reserved


def test_a_budget_refusal_gives_the_tokens_back(clock: Clock) -> None:
    admission = _admission(clock)
    principal = _principal(budgets=(Budget("key", "k1", 1_000),))
    admission.admit(RequestContext("r1"), principal, "m", 100, 900)
    cells = _cells(admission)
    with pytest.raises(BudgetExceeded):
        admission.admit(RequestContext("r2"), principal, "m", 100, 900)
    assert _cells(admission) == cells  # nothing charged: the budget refused first


def test_a_sweep_in_flight_lands_the_settle_on_the_cell_in_use(clock: Clock) -> None:
    admission = _admission(clock)
    principal = _principal(budgets=())
    ctx = RequestContext("r1")
    finish = admission.admit(ctx, principal, "m", 1_000, 0)
    clock.advance(120)  # every cell back at its full allowance: the sweep drops them
    admission.limiter.sweep(int(clock() * 1_000_000))
    assert _cells(admission) == {}
    second = RequestContext("r2")
    admission.admit(second, principal, "m", 1_000, 0)  # found again: new cells
    _over(ctx, 10, 0, 0)
    finish()  # 990 tokens refunded on the cells the second request uses
    assert second.limit_headers is not None
    token_cell = admission.limiter._cells["key:k1:*:tpm"]
    now = int(clock() * 1_000_000)
    assert token_cell.tat - now == (1_000 - 990) * 60_000_000 // 10_000


def test_a_new_day_opens_new_counters(clock: Clock) -> None:
    clock.set(datetime(2026, 3, 4, 23, 59, 30, tzinfo=UTC))
    admission = _admission(clock)
    principal = _principal(limits=())
    ctx = RequestContext("r1")
    admission.admit(ctx, principal, "m", 0, 10_000)()
    assert admission.budgets.usage(BUDGETS[0]) == (0, 0)  # no cost on the context
    _over(ctx, 1, 1, 7_000)
    admission.admit(ctx, principal, "m", 0, 10_000)()
    assert admission.budgets.usage(BUDGETS[0]) == (7_000, 0)
    clock.advance(60)  # past midnight UTC: the daily budget starts again
    admission.admit(ctx, principal, "m", 0, 10_000)()
    assert admission.budgets.usage(BUDGETS[0]) == (7_000, 0)  # the new day's spend
    assert admission.budgets.usage(BUDGETS[1]) == (14_000, 0)  # for ever: both days


def test_a_reloaded_principal_brings_its_new_limits(clock: Clock) -> None:
    admission = _admission(clock)
    admission.admit(RequestContext("r1"), _principal(), "m", 10, 0)
    clock.advance(1)  # rpm 100: the key is back at its full allowance
    strict = _principal((RateLimit("key", "k1", rpm=1),), budgets=())
    admission.admit(RequestContext("r2"), strict, "m", 10, 0)  # its new limit: rpm 1
    with pytest.raises(RateLimitExceeded):
        admission.admit(RequestContext("r3"), strict, "m", 10, 0)
