"""Admission buckets and learning, on a fake clock."""

from __future__ import annotations

import contextvars

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


def test_a_share_of_the_capacity_per_replica() -> None:
    clock = Clock()
    adm = Admission(max_concurrency=5, rpm=60, clock=clock)
    adm.set_share(0.5)  # two replicas
    assert adm.concurrency == 3
    assert all(adm.try_acquire(0) for _ in range(3))
    assert not adm.try_acquire(0)  # concurrency: three of five
    for _ in range(3):
        adm.release()
    granted = 3
    while adm.try_acquire(0):
        adm.release()
        granted += 1
    assert granted == 30  # half the bucket
    clock.now += 2.0
    assert adm.try_acquire(0)  # refilled at half the rate: one request in two seconds
    adm.release()
    assert not adm.try_acquire(0)


def test_learned_limits_and_pauses_are_told_and_adopted() -> None:
    told: list[tuple[object, ...]] = []

    class Peer:
        def learned(self, kind: str, limit: float, capacity: float) -> None:
            told.append(("learned", kind, limit, capacity))

        def paused(self, seconds: float, factor: float) -> None:
            told.append(("paused", seconds, factor))

    adm = Admission()
    adm.peer = Peer()
    adm.observe(RateLimitInfo(limit_requests=600, remaining_requests=9))
    adm.observe(RateLimitInfo(limit_requests=600, remaining_requests=5))  # nothing new
    adm.rate_limited(3.0)
    assert told == [("learned", "requests", 600, 10.0), ("paused", 3.0, 0.5)]
    other = Admission()
    other.adopt_limit("requests", 600, 10)
    other.adopt_pause(3.0, 0.5)
    assert other.requests is not None and other.requests.capacity == 10
    assert other.requests.factor == 0.5
    assert not other.try_acquire(0)  # paused like the replica that got the 429


def test_remaining_count_is_corrected_for_what_was_sent_since() -> None:
    """The provider counted what was left when call A arrived, and says so when A answers:
    the ten calls sent after A, and what refilled meanwhile, are accounted for."""
    clock = Clock()
    adm = Admission(clock=clock)
    call_a = contextvars.copy_context()
    assert call_a.run(adm.try_acquire, 0)
    call_a.run(adm.sending)
    assert all(adm.try_acquire(0) for _ in range(10))  # sent after A, nothing known yet
    clock.now += 0.5  # A answers; 600 rpm refilled 5 meanwhile
    call_a.run(adm.observe, RateLimitInfo(limit_requests=600, remaining_requests=19))
    granted = 0
    while adm.try_acquire(0):
        granted += 1
    assert granted == 14  # 19 + 5 - 10 left now, not the 19 the header says


def test_a_slow_answer_while_calls_kept_going_keeps_the_count() -> None:
    """Ten seconds of latency at the provider's full rate: 100 refilled and 100 sent since,
    so the provider still has about what it said (not 20 - 100 + ... below zero)."""
    clock = Clock()
    adm = Admission(clock=clock)
    adm.observe(RateLimitInfo(limit_requests=600, remaining_requests=19))  # 20 at most
    slow = contextvars.copy_context()
    assert slow.run(adm.try_acquire, 0)
    slow.run(adm.sending)
    for _ in range(100):
        clock.now += 0.1
        assert adm.try_acquire(0)
    slow.run(adm.observe, RateLimitInfo(limit_requests=600, remaining_requests=12))
    assert adm.requests is not None and adm.requests.level == pytest.approx(12, abs=1.5)


def test_a_stale_low_count_is_refilled_to_now() -> None:
    clock = Clock()
    adm = Admission(clock=clock)
    adm.observe(RateLimitInfo(limit_requests=600, remaining_requests=19))  # 20 at most
    call = contextvars.copy_context()
    assert call.run(adm.try_acquire, 0)
    call.run(adm.sending)
    clock.now += 3.0  # a slow answer: the provider's bucket has long refilled
    call.run(adm.observe, RateLimitInfo(limit_requests=600, remaining_requests=0))
    assert adm.requests is not None and adm.requests.available(clock.now) == pytest.approx(20)
    unmarked = Admission(clock=clock)  # a count not tied to a call is taken as it is
    unmarked.observe(RateLimitInfo(limit_requests=600, remaining_requests=19))
    unmarked.observe(RateLimitInfo(limit_requests=600, remaining_requests=0))
    assert not unmarked.try_acquire(0)


def test_a_burst_of_429s_halves_the_rate_once() -> None:
    clock = Clock()
    adm = Admission(rpm=600, clock=clock)
    calls = [contextvars.copy_context() for _ in range(3)]
    for call in calls:
        assert call.run(adm.try_acquire, 0)
        call.run(adm.sending)
    clock.now += 0.1
    for call in calls:  # three calls that left together, all refused
        call.run(adm.rate_limited, 0.5)
    assert adm.requests is not None and adm.requests.factor == 0.5
    clock.now += 0.5
    later = contextvars.copy_context()
    assert later.run(adm.try_acquire, 0)
    later.run(adm.sending)  # left after the cut: its 429 cuts again
    later.run(adm.rate_limited, 0.5)
    assert adm.requests.factor == 0.25
