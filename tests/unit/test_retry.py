"""The retry budget's sliding window and the backoff's bounds."""

from __future__ import annotations

import random

import pytest

from lockgate.config.loader import ConfigError, parse_config
from lockgate.core.retry import HEDGE_SHARE, RetryBudget, backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_allows_a_fraction_of_requests() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, window=10, min_retries=0, clock=clock)
    for _ in range(50):
        budget.record_request()
    spent = sum(budget.try_spend() for _ in range(30))
    assert spent == 10  # 20% of 50


def test_budget_floor_and_window_expiry() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.1, window=10, min_retries=3, clock=clock)
    budget.record_request()
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]
    clock.now += 11  # the window moved past every retry
    assert budget.try_spend()


def test_full_jitter_stays_within_the_cap() -> None:
    rng = random.Random(3)
    for attempt in range(8):
        delays = [backoff(attempt, 0.25, 2.0, rng) for _ in range(200)]
        assert min(delays) >= 0.0
        assert max(delays) <= min(2.0, 0.25 * 2**attempt)
    assert max(backoff(6, 0.25, 2.0, rng) for _ in range(200)) > 1.0  # jitter spreads out


def test_fallbacks_must_name_other_models() -> None:
    dep = {"provider": "openai", "model": "m", "api_base": "http://127.0.0.1:9/v1"}
    with pytest.raises(ConfigError) as info:
        parse_config({"models": [{"name": "a", "deployments": [dep], "fallbacks": ["zz"]}]}, env={})
    assert any("models.a.fallbacks: 'zz' is not another configured model" in p
               for p in info.value.problems)  # fmt: skip


def test_hedges_leave_part_of_the_budget_to_retries() -> None:
    budget = RetryBudget(ratio=0.2, window=10, min_retries=0, clock=Clock())
    for _ in range(100):
        budget.record_request()
    hedges = sum(budget.try_spend(HEDGE_SHARE) for _ in range(30))
    retries = sum(budget.try_spend() for _ in range(30))
    assert (hedges, retries) == (15, 5)  # of the 20 (20% of 100)
