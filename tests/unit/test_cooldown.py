"""The breaker's state machine on a fake clock."""

from __future__ import annotations

from lockgate.config.schema import CooldownConfig
from lockgate.core import errors
from lockgate.core.cooldown import CLOSED, HALF_OPEN, OPEN, Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(**cfg: float) -> tuple[Breaker, Clock, list[str]]:
    clock, seen = Clock(), []
    breaker = Breaker(
        "d", CooldownConfig(**cfg), lambda dep, state: seen.append(state), clock=clock
    )
    return breaker, clock, seen


def test_error_rate_trips_without_consecutive_failures() -> None:
    breaker, _, _ = _breaker(consecutive_failures=100, error_rate=0.5, min_calls=10)
    for i in range(10):
        if i % 2:
            breaker.failure(errors.UpstreamError("boom"))
        else:
            breaker.success()
    assert breaker.state == OPEN


def test_bad_requests_do_not_count() -> None:
    breaker, _, _ = _breaker(consecutive_failures=1)
    breaker.failure(errors.BadRequest("client's fault"))
    assert breaker.state == CLOSED


def test_one_probe_and_cooldown_doubles_when_it_fails() -> None:
    breaker, clock, seen = _breaker(consecutive_failures=1, cooldown=5, max_cooldown=8)
    breaker.failure(errors.Timeout("slow"))
    assert not breaker.available()
    clock.now += 5
    assert breaker.available()
    breaker.acquire()
    assert breaker.state == HALF_OPEN
    assert not breaker.available()  # the probe is taken
    breaker.failure(errors.Timeout("still slow"))
    assert breaker.retry_in() == 8  # doubled, capped
    clock.now += 8
    breaker.acquire()
    breaker.success()
    assert seen == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_rate_limit_uses_the_providers_wait() -> None:
    breaker, _, _ = _breaker()
    breaker.failure(errors.RateLimited("slow down", retry_after=2.5))
    assert breaker.state == OPEN
    assert breaker.retry_in() == 2.5


def test_cancelled_probe_is_released() -> None:
    breaker, clock, _ = _breaker(consecutive_failures=1, cooldown=1)
    breaker.failure(errors.UpstreamError("x"))
    clock.now += 1
    breaker.acquire()
    assert not breaker.available()
    breaker.release()
    assert breaker.available()


class Peer:
    """Records what a breaker tells the other replicas."""

    def __init__(self) -> None:
        self.told: list[tuple[str, float]] = []

    def opened(self, seconds: float, cooldown: float) -> None:
        self.told.append(("opened", seconds))

    def closed(self) -> None:
        self.told.append(("closed", 0.0))


def test_another_replicas_open_circuit_is_adopted_without_echo() -> None:
    breaker, _, seen = _breaker(cooldown=5)
    breaker.peer = peer = Peer()
    told = peer.told
    breaker.adopt_open(20, cooldown=10)
    assert breaker.state == OPEN and not breaker.available()
    assert breaker.retry_in() == 20
    assert told == []  # news from a peer is not sent back
    breaker.adopt_closed()
    assert breaker.state == CLOSED and seen == [OPEN, CLOSED]
    assert told == []


def test_a_held_probe_waits_for_the_lease() -> None:
    breaker, clock, _ = _breaker(consecutive_failures=1, cooldown=5)
    breaker.failure(errors.UpstreamError("boom"))
    breaker.hold_probe(15)  # another replica may probe first
    clock.now += 6
    assert not breaker.available()
    assert breaker.retry_in() == 9
    breaker.allow_probe()  # this replica won the lease
    assert breaker.available()
    breaker.acquire()
    assert breaker.state == HALF_OPEN


def test_peer_hears_opens_and_only_a_probe_s_close() -> None:
    breaker, clock, _ = _breaker(consecutive_failures=1, cooldown=5)
    breaker.peer = peer = Peer()
    told = peer.told
    breaker.failure(errors.UpstreamError("boom"))
    clock.now += 5
    breaker.acquire()
    breaker.failure(errors.UpstreamError("probe failed"))  # cooldown doubled
    clock.now += 10
    breaker.acquire()
    breaker.success()
    assert told == [("opened", 5), ("opened", 10), ("closed", 0.0)]


def test_calls_sent_before_an_outage_neither_reset_the_count_nor_close_the_circuit() -> None:
    """An outage begins while slow calls sent before it are still running: their late
    successes say nothing about the deployment now."""
    breaker, clock, _ = _breaker(consecutive_failures=3, cooldown=5.0, min_calls=100)
    before = breaker.now()
    clock.now += 1.0  # the outage begins
    breaker.failure(errors.UpstreamError("down"))
    clock.now += 0.1
    breaker.success(before)  # left before the outage
    breaker.failure(errors.UpstreamError("down"))
    breaker.success(before)
    breaker.failure(errors.UpstreamError("down"))
    assert breaker.state == OPEN  # three in a row, the old successes notwithstanding
    breaker.success(before)
    assert breaker.state == OPEN
    clock.now += 5.0
    assert breaker.available()
    breaker.acquire()
    probe = breaker.now()
    breaker.success(probe)  # the probe left after the outage began: it closes the circuit
    assert breaker.state == CLOSED
    breaker.failure(errors.UpstreamError("one"))
    breaker.success(breaker.now())  # a call sent after the failure resets the count
    breaker.failure(errors.UpstreamError("two"))
    breaker.failure(errors.UpstreamError("three"))
    assert breaker.state == CLOSED
