"""Rate-limit behaviour, the same suite for the in-process and the Redis engines."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from lockgate.core.errors import RateLimitExceeded
from lockgate.features.limit_metrics import LimitMetrics
from lockgate.features.ratelimit import Grant, LocalRateLimiter, RateLimit
from lockgate.providers.ratelimits import openai_duration
from tests.limits.conftest import Clock

Factory = Callable[[], Any]


async def admitted(limiter: Any, limits: list[RateLimit], **kw: Any) -> Grant | None:
    try:
        return await limiter.check(limits, **kw)  # type: ignore[no-any-return]
    except RateLimitExceeded:
        return None


async def test_remaining_decreases_then_429_with_openai_headers(
    make_limiter: Factory, clock: Clock, metrics: LimitMetrics
) -> None:
    limiter = make_limiter()
    limits = [RateLimit("key", "k1", rpm=5)]
    remaining = []
    for _ in range(5):
        grant = await limiter.check(limits)
        assert grant.headers["x-ratelimit-limit-requests"] == "5"
        remaining.append(int(grant.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [4, 3, 2, 1, 0]
    assert grant.headers["x-ratelimit-reset-requests"] == "1m0s"  # back to 5 in a minute

    with pytest.raises(RateLimitExceeded) as info:
        await limiter.check(limits)
    err = info.value
    assert (err.status, err.code, err.type) == (429, "rate_limit_exceeded", "requests")
    assert err.retry_after == pytest.approx(12.0)  # one request every 60/5 s
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.headers["x-ratelimit-limit-requests"] == "5"
    assert "Limit 5" in err.message and "12s" in err.message
    assert metrics.rate_limited == {("key", "rpm"): 1}

    clock.advance(12.0)  # exactly the wait it asked for
    grant = await limiter.check(limits)
    assert grant.headers["x-ratelimit-remaining-requests"] == "0"


async def test_no_burst_at_window_edges(make_limiter: Factory, clock: Clock) -> None:
    """rpm=60: a burst takes the minute's allowance at once; hammered 10 times a second
    after that it admits one a second, and no boundary lets a new minute's worth through."""
    limiter = make_limiter()
    limits = [RateLimit("key", "k1", rpm=60)]
    start = clock.now
    burst = [await admitted(limiter, limits) for _ in range(100)]
    assert sum(g is not None for g in burst) == 60
    times = []
    for _ in range(10 * 180):  # three minutes
        clock.advance(0.1)
        if await admitted(limiter, limits):
            times.append(clock.now - start)
    assert len(times) == pytest.approx(180, abs=1)  # 1/s steady
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(1.0, abs=0.11)
    # Across the boundaries at 60 s and 120 s: one a second, not a new minute's worth.
    assert len([t for t in times if 59.5 <= t < 61.5]) == 2
    assert len([t for t in times if 119.5 <= t < 121.5]) == 2
    # Any minute after the burst holds one minute's worth; the first minute holds the
    # burst plus what refilled during it (documented: at most limit + refill).
    for offset in range(1, 120, 7):
        assert len([t for t in times if offset <= t < offset + 60]) <= 61
    assert 60 + len([t for t in times if t < 60]) == 119


async def test_a_refusal_consumes_nothing_from_the_other_limits(
    make_limiter: Factory,
) -> None:
    limiter = make_limiter()
    key = RateLimit("key", "k1", rpm=10, tpm=1000)
    team = RateLimit("team", "t1", rpm=2, tpm=100)
    await limiter.check([key, team], tokens=30)
    await limiter.check([key, team], tokens=30)
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.check([key, team], tokens=30)  # the team's rpm refuses
    assert "team" in info.value.message and "RPM" in info.value.message
    assert (info.value.scope, info.value.limit) == ("team", "rpm")
    await limiter.check([key], tokens=30)  # the key alone still has room
    with pytest.raises(RateLimitExceeded):
        await limiter.check([key, team], tokens=50)
    # The refusals took nothing from the key: 4 requests and 100 tokens with this one.
    grant = await limiter.check([key], tokens=10)
    assert grant.headers["x-ratelimit-remaining-requests"] == "6"
    assert grant.headers["x-ratelimit-remaining-tokens"] == "900"


async def test_token_refusal_and_headers_of_the_closest_limit(make_limiter: Factory) -> None:
    limiter = make_limiter()
    key = RateLimit("key", "k1", rpm=100, tpm=10_000)
    user = RateLimit("user", "u1", rpm=50, tpm=1_000)
    grant = await limiter.check([key, user], tokens=600)
    # The user's limits are closer to running out: they are the ones shown.
    assert grant.headers["x-ratelimit-limit-tokens"] == "1000"
    assert grant.headers["x-ratelimit-remaining-tokens"] == "400"
    assert grant.headers["x-ratelimit-limit-requests"] == "50"
    assert grant.headers["x-ratelimit-remaining-requests"] == "49"
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.check([key, user], tokens=600)
    err = info.value
    assert err.type == "tokens"
    assert err.headers["x-ratelimit-remaining-tokens"] == "400"
    assert err.retry_after == pytest.approx(12.0)  # 200 tokens at 1000/min
    assert err.headers["x-ratelimit-reset-tokens"] == "36s"


async def test_tokens_are_corrected_after_the_call(make_limiter: Factory) -> None:
    limiter = make_limiter()
    limits = [RateLimit("key", "k1", tpm=1000)]
    grant = await limiter.check(limits, tokens=800)  # the estimate: prompt + max_tokens
    assert grant.headers["x-ratelimit-remaining-tokens"] == "200"
    with pytest.raises(RateLimitExceeded):
        await limiter.check(limits, tokens=300)
    await limiter.settle(grant.ticket, 100)  # it really used 100: 700 refunded
    grant = await limiter.check(limits, tokens=300)
    assert grant.headers["x-ratelimit-remaining-tokens"] == "600"
    await limiter.settle(grant.ticket, 900)  # it used more than estimated: charged
    probe = await limiter.check(limits, tokens=0)
    assert probe.headers["x-ratelimit-remaining-tokens"] == "0"
    with pytest.raises(RateLimitExceeded):
        await limiter.check(limits, tokens=1)


async def test_a_stream_cannot_overshoot_by_more_than_its_estimate(
    make_limiter: Factory,
) -> None:
    """Tokens are charged up front: concurrent streams are admitted only while their
    estimates fit, whatever they end up producing."""
    limiter = make_limiter()
    limits = [RateLimit("key", "k1", tpm=1000)]
    grants = [await admitted(limiter, limits, tokens=300) for _ in range(5)]
    assert sum(g is not None for g in grants) == 3


async def test_model_limits_apply_to_their_model_only(make_limiter: Factory) -> None:
    limiter = make_limiter()
    limits = [RateLimit("key", "k1", rpm=100), RateLimit("key", "k1", rpm=1, model="gpt-4o")]
    await limiter.check(limits, model="gpt-4o")
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.check(limits, model="gpt-4o")
    assert "model gpt-4o" in info.value.message
    for _ in range(5):
        await limiter.check(limits, model="gpt-4o-mini")


async def test_daily_limits(make_limiter: Factory, clock: Clock) -> None:
    limiter = make_limiter()
    limits = [RateLimit("team", "t1", rpm=100, rpd=2)]
    await limiter.check(limits)
    clock.advance(60)
    grant = await limiter.check(limits)
    assert grant.headers["x-ratelimit-remaining-requests"] == "0"
    assert grant.headers["x-ratelimit-limit-requests"] == "2"
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.check(limits)
    assert info.value.retry_after == pytest.approx(12 * 3600 - 60)  # a day per 2 requests
    assert "per day (RPD)" in info.value.message


async def test_a_request_larger_than_the_limit_is_refused_without_a_wait(
    make_limiter: Factory,
) -> None:
    limiter = make_limiter()
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.check([RateLimit("key", "k1", tpm=100)], tokens=500)
    assert info.value.retry_after is None
    assert "Request too large" in info.value.message
    # Nothing was consumed.
    grant = await limiter.check([RateLimit("key", "k1", tpm=100)], tokens=100)
    assert grant.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_a_limit_of_zero_admits_nothing(make_limiter: Factory) -> None:
    limiter = make_limiter()
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.check([RateLimit("key", "k1", rpm=0)])
    assert info.value.retry_after is None
    assert "is 0: nothing is admitted" in info.value.message


async def test_no_limits_admit_everything(make_limiter: Factory) -> None:
    limiter = make_limiter()
    grant = await limiter.check([], tokens=10**9)
    assert grant.headers == {}
    await limiter.settle(grant.ticket, 5)


def test_openai_duration_format() -> None:
    assert openai_duration(0) == "0s"
    assert openai_duration(0.059) == "59ms"
    assert openai_duration(1) == "1s"
    assert openai_duration(1.5) == "1.5s"
    assert openai_duration(360) == "6m0s"
    assert openai_duration(3723.5) == "1h2m3.5s"
    assert openai_duration(1.001) == "1.001s"
    assert openai_duration(61.01) == "1m1.01s"
    assert openai_duration(59.999) == "59.999s"


async def test_negative_tokens_are_a_programming_error(make_limiter: Factory) -> None:
    limiter = make_limiter()
    limits = [RateLimit("key", "k1", tpm=100)]
    with pytest.raises(ValueError, match="tokens"):
        await limiter.check(limits, tokens=-5)
    grant = await limiter.check(limits, tokens=5)
    with pytest.raises(ValueError, match="tokens"):
        await limiter.settle(grant.ticket, -1)


def test_a_settle_after_its_cell_was_swept_lands_on_the_cell_in_use(clock: Clock) -> None:
    # In process only: cells back at their full allowance are dropped every so many checks,
    # and a request still in flight then corrects the cell that replaced its own.
    limiter = LocalRateLimiter(clock=clock)
    limits = (RateLimit("key", "k1", tpm=1000),)
    grant = limiter.check_limits(limits, None, 100)
    clock.advance(61)  # its cell is back at its full allowance
    busy = (RateLimit("key", "k2", rpm=10**9),)
    for _ in range(LocalRateLimiter._SWEEP_EVERY):
        limiter.check_limits(busy, None, 0)
    limiter.settle_now(grant.ticket, 400)  # 300 tokens more than its estimate
    after = limiter.check_limits(limits, None, 0)
    assert after.headers["x-ratelimit-remaining-tokens"] == "700"
