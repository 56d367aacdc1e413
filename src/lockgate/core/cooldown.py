"""Cooldowns: a circuit breaker per deployment, so traffic stays away from one that fails.

    closed --(consecutive failures, error rate over a window, 429 with retry-after)--> open
    open --(cooldown elapsed)--> half-open: one probe request goes through
    half-open --(probe succeeds)--> closed;  --(probe fails)--> open, cooldown doubled

Only failures that say something about the deployment count (retryable ones and a refused
provider key); a bad request is the client's and leaves the breaker alone.

Several replicas: an optional `CircuitPeer` is told when this breaker opens or its probe
closes it, and drives it back with `adopt_open`/`adopt_closed` (another replica's news)
and `hold_probe`/`allow_probe` (only the replica holding the probe lease probes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from lockgate.config.schema import CooldownConfig
from lockgate.core.errors import GatewayError, ProviderAuthError, RateLimited
from lockgate.core.window import SlidingCounts

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
Transition = Callable[[str, str], None]  # (deployment id, new state)


class CircuitPeer(Protocol):
    """Other replicas' view of the same deployment (see features/shared_cooldowns.py)."""

    def opened(self, seconds: float, cooldown: float) -> None:
        """This replica opened the circuit for ``seconds``; ``cooldown`` is its current
        (possibly doubled) cooldown length."""

    def closed(self) -> None:
        """This replica's half-open probe succeeded."""


class Breaker:
    def __init__(
        self,
        deployment: str,
        config: CooldownConfig,
        on_transition: Transition,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deployment = deployment
        self.state = CLOSED
        self._cfg = config
        self._on_transition = on_transition
        self._clock = clock
        self._consecutive = 0
        self._streak_at = 0.0  # when the current run of consecutive failures began
        self._until = 0.0
        self._cooldown = config.cooldown
        self._probing = False
        self._counts = SlidingCounts(config.window, clock)  # calls, failures
        self._hold = 0.0  # no probe before this time: another replica may be probing
        self.peer: CircuitPeer | None = None

    # -- routing ------------------------------------------------------------------------

    def available(self) -> bool:
        """May this deployment be called now? (Does not take the half-open probe.)"""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return self._probe_due()
        return not self._probing

    def _probe_due(self) -> bool:
        now = self._clock()
        return now >= self._until and now >= self._hold

    def acquire(self) -> None:
        """Called for the deployment chosen: an elapsed open period becomes the probe."""
        if self.state == OPEN and self._probe_due():
            self._set(HALF_OPEN)
        if self.state == HALF_OPEN:
            self._probing = True

    def release(self) -> None:
        """The chosen call ended without an outcome (cancelled): free the probe slot."""
        self._probing = False

    def retry_in(self) -> float:
        return max(max(self._until, self._hold) - self._clock(), 0.0)

    # -- other replicas -----------------------------------------------------------------

    def adopt_open(self, seconds: float, cooldown: float | None = None) -> None:
        """Another replica opened this deployment's circuit for ``seconds`` more."""
        until = self._clock() + seconds
        if cooldown is not None:
            self._cooldown = min(max(self._cooldown, cooldown), self._cfg.max_cooldown)
        if self.state == OPEN and until <= self._until:
            return
        self._until = max(self._until, until)
        self._consecutive = 0
        self._probing = False
        if self.state != OPEN:
            self._set(OPEN)

    def adopt_closed(self) -> None:
        """Another replica's probe succeeded: the deployment is back."""
        self._hold = 0.0
        if self.state == CLOSED:
            return
        self._probing = False
        self._consecutive = 0
        self._cooldown = self._cfg.cooldown
        self._set(CLOSED)

    def hold_probe(self, seconds: float) -> None:
        """Start no probe for ``seconds``: another replica holds the probe."""
        self._hold = self._clock() + seconds

    def allow_probe(self) -> None:
        self._hold = 0.0

    # -- outcomes -----------------------------------------------------------------------

    def now(self) -> float:
        """The breaker's clock: what a call notes when it leaves, for ``success``."""
        return self._clock()

    def success(self, left: float | None = None) -> None:
        """A call succeeded; ``left``: when it was sent (``now()``). A call sent before the
        current run of failures began (an outage) says nothing about the deployment since:
        it neither resets the run nor closes the circuit."""
        self._count(failed=False)
        stale = left is not None and left < self._streak_at
        if stale and (self._consecutive or self.state != CLOSED):
            return
        self._consecutive = 0
        if self.state != CLOSED:
            probed = self.state == HALF_OPEN
            self._probing = False
            self._hold = 0.0
            self._cooldown = self._cfg.cooldown
            self._set(CLOSED)
            if probed and self.peer is not None:
                self.peer.closed()

    def failure(self, exc: GatewayError) -> None:
        if not (exc.retryable or isinstance(exc, ProviderAuthError)):
            return
        self._count(failed=True)
        if self._consecutive == 0 and self.state == CLOSED:
            self._streak_at = self._clock()
        self._consecutive += 1
        if self.state == HALF_OPEN:
            self._probing = False
            self._cooldown = min(self._cooldown * 2, self._cfg.max_cooldown)
            self._open(self._cooldown)
        elif isinstance(exc, RateLimited) and exc.retry_after is not None:
            self._open(min(exc.retry_after, self._cfg.max_cooldown))
        elif self.state == CLOSED and self._tripped():
            self._open(self._cooldown)

    def _tripped(self) -> bool:
        cfg = self._cfg
        if self._consecutive >= cfg.consecutive_failures:
            return True
        calls, failures = self._counts.totals()
        return calls >= cfg.min_calls and failures >= cfg.error_rate * calls

    def _open(self, seconds: float) -> None:
        now = self._clock()
        self._until = max(self._until, now + seconds)
        self._consecutive = 0
        if self.state != OPEN:
            self._set(OPEN)
        if self.peer is not None:
            self.peer.opened(self._until - now, self._cooldown)

    def _set(self, state: str) -> None:
        self.state = state
        self._on_transition(self.deployment, state)

    def _count(self, *, failed: bool) -> None:
        self._counts.add(first=1, second=int(failed))
