"""The shared admit step: credit and lease taken together, against real Redis."""

from __future__ import annotations

import asyncio
import time

from lockgate.core.tasks import TaskTracker
from lockgate.core.types import Principal, RequestContext, Usage
from lockgate.features import budget_leases
from lockgate.features.budgets import Budget
from lockgate.features.budgets_redis import RedisBudgets
from lockgate.features.ratelimit import RateLimit, grant_headers
from lockgate.features.ratelimit_redis import RedisRateLimiter
from lockgate.features.shared_admit import SharedAdmission
from tests.limits.conftest import SharedFactory

# Large against a request: credit (64 requests' worth) and a lease are granted.
LIMITS = (RateLimit("key", "k1", rpm=60_000, tpm=6_000_000), RateLimit("team", "t1", tpm=600_000))
BUDGETS = (Budget("key", "k1", 10**12, "monthly"),)
PRINCIPAL = Principal("k1", team_id="t1", limits=LIMITS, budgets=BUDGETS)
TOKENS, MAX_COST = 100, 5_000


async def _warm(redis_url: str, shared_redis: SharedFactory) -> SharedAdmission:
    """Engines holding credit on every limit and a lease of the budget."""
    tasks = TaskTracker()
    limiter = RedisRateLimiter(shared_redis(url=redis_url), tasks=tasks)
    budgets = RedisBudgets(shared_redis(url=redis_url), tasks=tasks)
    admission = SharedAdmission(limiter, budgets, tasks)
    assert admission.admit(RequestContext("r0"), PRINCIPAL, "m", TOKENS, MAX_COST) is None
    await budgets.settle(await budgets.reserve(BUDGETS, MAX_COST), 0)  # the lease asked for
    await asyncio.sleep(budget_leases.FLUSH_EVERY * 5)
    # Last, as a credit lives 117 ms (a minute's 1/512): taken before the sleep, it was
    # sometimes past its life when a loaded machine ran the test.
    await limiter.check(LIMITS, model="m", tokens=TOKENS)  # granted with credit
    return admission


def _lefts(admission: SharedAdmission) -> list[int]:
    rules = admission.limiter.select(LIMITS, "m").rules
    found = admission.credits.find(rules)
    assert found is not None
    return [credit.left for credit in found]


def _missing(admission: SharedAdmission) -> str:
    """What kept ``admit`` from admitting in one step: the credits and the lease found."""
    rules = admission.limiter.select(LIMITS, "m").rules
    holds = admission.budgets.holds(BUDGETS, admission.budgets.clock())
    return f"credits {admission.credits.find(rules)!r}, lease {admission.leases.find(holds)!r}"


def _lease(admission: SharedAdmission) -> budget_leases.Lease:
    lease = admission.leases.find(admission.budgets.holds(BUDGETS, admission.budgets.clock()))
    assert lease is not None
    return lease


async def test_requests_take_credit_and_lease_in_one_step_and_settle_them(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    admission = await _warm(redis_url, shared_redis)
    rules = admission.limiter.select(LIMITS, "m").rules
    costs = [rule.cost_us(1 if rule.requests else TOKENS) for rule in rules]
    lease = _lease(admission)
    pending = lease.pending
    finishes = []
    for i in range(5):
        before = _lefts(admission)
        ctx = RequestContext(f"r{i + 1}")
        finish = admission.admit(ctx, PRINCIPAL, "m", TOKENS, MAX_COST)
        assert finish is not None, _missing(admission)
        assert _lefts(admission) == [left - cost for left, cost in zip(before, costs, strict=True)]
        assert lease.inflight == MAX_COST * (i + 1)
        assert ctx.limit_headers is not None
        assert ctx.limit_headers["x-ratelimit-limit-requests"] == "60000"
        assert ctx.limit_headers["x-ratelimit-limit-tokens"] == "600000"  # the team's: nearer
        finishes.append((ctx, finish))
    for ctx, finish in finishes:
        before = _lefts(admission)
        ctx.usage, ctx.cost = Usage(30, 10), 1_234  # 40 tokens used of 100 estimated
        finish()
        refunds = [
            0 if rule.requests else rule.cost_us(40) - rule.cost_us(TOKENS) for rule in rules
        ]
        assert _lefts(admission) == [
            left - delta for left, delta in zip(before, refunds, strict=True)
        ]
    assert lease.inflight == 0
    assert lease.pending == pending + 5 * 1_234 or lease.flushing  # or on its way to Redis
    assert len(admission._accounts._seen) == 1  # found once, then reused
    await admission.limiter.close()
    await admission.budgets.close()
    assert await admission.budgets.usage(BUDGETS[0]) == (5 * 1_234, 0)


async def test_nothing_is_taken_when_a_credit_has_run_out(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    admission = await _warm(redis_url, shared_redis)
    lefts, lease = _lefts(admission), _lease(admission)
    found = admission.credits.find(admission.limiter.select(LIMITS, "m").rules)
    assert found is not None
    found[-1].left = 0  # the team's credit used up (its top-up asked for)
    held = lease.inflight
    assert admission.admit(RequestContext("r1"), PRINCIPAL, "m", TOKENS, MAX_COST) is None
    assert lease.inflight == held  # the lease's reservation given back
    assert _lefts(admission)[:-1] == lefts[:-1]  # nothing taken from the other credits
    await admission.limiter.close()
    await admission.budgets.close()


async def test_a_credit_past_its_life_is_used_while_its_top_up_is_on_its_way(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    """Under load a top-up can come back after the credit's life: the credit is used for
    one more life meanwhile (else every request goes to Redis), and not after that."""
    admission = await _warm(redis_url, shared_redis)
    found = admission.credits.find(admission.limiter.select(LIMITS, "m").rules)
    assert found is not None
    now = time.monotonic()
    for credit in found:
        credit.until, credit.busy = now - 0.001, True  # expired, its top-up on its way
    lefts = _lefts(admission)
    finish = admission.admit(RequestContext("r1"), PRINCIPAL, "m", TOKENS, MAX_COST)
    assert finish is not None, _missing(admission)
    assert all(after < before for after, before in zip(_lefts(admission), lefts, strict=True))
    for credit in found:
        credit.until = now - credit.life - 0.001  # and past one more life
    assert admission.admit(RequestContext("r2"), PRINCIPAL, "m", TOKENS, MAX_COST) is None
    for credit in found:
        credit.until, credit.busy = now - 0.001, False  # expired, no top-up coming
    assert admission.admit(RequestContext("r3"), PRINCIPAL, "m", TOKENS, MAX_COST) is None
    finish()
    await admission.limiter.close()
    await admission.budgets.close()


async def test_a_correction_goes_to_redis_when_the_credit_went_meanwhile(
    redis_url: str, shared_redis: SharedFactory
) -> None:
    admission = await _warm(redis_url, shared_redis)
    limiter = admission.limiter
    ctx = RequestContext("r1")
    finish = admission.admit(ctx, PRINCIPAL, "m", 1_000, MAX_COST)  # 100 ms of the team's
    assert finish is not None
    await limiter.credits._return(float("inf"))  # past its life: given back to Redis
    redis = limiter._redis
    key = redis.key("{lg-rl}", "team:t1:*:tpm")
    tat_before = int(await redis.client.get(key) or 0)
    assert tat_before > 0  # this request's 100 ms still in the cell
    ctx.usage, ctx.cost = Usage(0, 0), 0  # nothing used: the whole estimate refunded
    finish()
    await admission.tasks.drain(5.0)  # the settle, sent to Redis
    tat_after = int(await redis.client.get(key) or 0)
    team_tpm = next(r for r in limiter.select(LIMITS, "m").rules if r.key == "team:t1:*:tpm")
    # Refunded: moved back by the estimate, or below the server's now and deleted.
    assert tat_after == 0 or tat_before - tat_after == team_tpm.cost_us(1_000)
    # Found again with the credits as they are now (none: the next request goes to Redis).
    assert admission.admit(RequestContext("r2"), PRINCIPAL, "m", TOKENS, MAX_COST) is None
    await limiter.close()
    await admission.budgets.close()


async def test_the_headers_are_the_engines(redis_url: str, shared_redis: SharedFactory) -> None:
    """The one-step path's headers are those the credit path computes for the same cells."""
    admission = await _warm(redis_url, shared_redis)
    frozen = time.monotonic()
    admission.credits._clock = lambda: frozen  # both at the same moment
    rules = admission.limiter.select(LIMITS, "m").rules
    ctx = RequestContext("r1")
    assert admission.admit(ctx, PRINCIPAL, "m", TOKENS, MAX_COST) is not None
    grant = admission.limiter.try_check(LIMITS, "m", TOKENS)  # the next request, one by one
    assert grant is not None and grant.ticket.backend == "credit"
    found = admission.credits.find(rules)
    assert found is not None
    first = found[0]
    now = first.now + int((frozen - first.seen) * 1_000_000)
    before = [credit.tat for credit in found]  # the cells' TATs as last seen: both saw these
    assert ctx.limit_headers == grant_headers(rules, now, before) == grant.headers
    await admission.limiter.close()
    await admission.budgets.close()
