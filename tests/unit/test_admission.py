"""Admission buckets and learning, on a fake clock."""

from __future__ import annotations

import pytest

from lockgate.core.admission import Admission
from lockgate.core.types import RateLimitInfo


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_request_bucket_refills_continuously() -> None:
    clock = Clock()
    adm = Admission(rpm=60, clock=clock)
    assert all(adm.try_acquire(0) for _ in range(60))
    assert not adm.try_acquire(0)
    assert adm.estimated_wait(0) == pytest.approx(1.0)
    clock.now += 1.0
    assert adm.try_acquire(0)


def test_token_bucket_meters_the_estimate() -> None:
    clock = Clock()
    adm = Admission(tpm=6000, clock=clock)  # 100 tokens a second
    assert adm.try_acquire(5000)
    assert not adm.try_acquire(2000)
    assert adm.estimated_wait(2000) == pytest.approx(10.0)


def test_learns_advertised_limits_and_remaining() -> None:
    clock = Clock()
    adm = Admission(clock=clock)
    assert adm.try_acquire(0)  # nothing known: unlimited
    adm.observe(RateLimitInfo(limit_requests=600, remaining_requests=0))
    assert not adm.try_acquire(0)
    clock.now += 0.1  # 10 a second
    assert adm.try_acquire(0)


def test_429_pauses_and_halves_then_recovers() -> None:
    clock = Clock()
    adm = Admission(rpm=600, clock=clock)
    adm.rate_limited(retry_after=2.0)
    assert not adm.try_acquire(0)
    assert adm.requests is not None and adm.requests.factor == 0.5
    clock.now += 2.0
    assert adm.try_acquire(0)
    for _ in range(20):
        adm.succeeded()
    assert adm.requests.factor == 1.0


def test_concurrency_limit() -> None:
    adm = Admission(max_concurrency=2)
    assert adm.try_acquire(0) and adm.try_acquire(0)
    assert not adm.try_acquire(0)
    adm.release()
    assert adm.try_acquire(0)
