"""Cooldowns: a circuit breaker per deployment, so traffic stays away from one that fails.

    closed --(consecutive failures, error rate over a window, 429 with retry-after)--> open
    open --(cooldown elapsed)--> half-open: one probe request goes through
    half-open --(probe succeeds)--> closed;  --(probe fails)--> open, cooldown doubled

Only failures that say something about the deployment count (retryable ones and a refused
provider key); a bad request is the client's and leaves the breaker alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lockgate.config.schema import CooldownConfig
from lockgate.core.errors import GatewayError, ProviderAuthError, RateLimited
from lockgate.core.window import SlidingCounts

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
Transition = Callable[[str, str], None]  # (deployment id, new state)


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
        self._until = 0.0
        self._cooldown = config.cooldown
        self._probing = False
        self._counts = SlidingCounts(config.window, clock)  # calls, failures

    # -- routing ------------------------------------------------------------------------

    def available(self) -> bool:
        """May this deployment be called now? (Does not take the half-open probe.)"""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return self._clock() >= self._until
        return not self._probing

    def acquire(self) -> None:
        """Called for the deployment chosen: an elapsed open period becomes the probe."""
        if self.state == OPEN and self._clock() >= self._until:
            self._set(HALF_OPEN)
        if self.state == HALF_OPEN:
            self._probing = True

    def release(self) -> None:
        """The chosen call ended without an outcome (cancelled): free the probe slot."""
        self._probing = False

    def retry_in(self) -> float:
        return max(self._until - self._clock(), 0.0)

    # -- outcomes -----------------------------------------------------------------------

    def success(self) -> None:
        self._count(failed=False)
        self._consecutive = 0
        if self.state != CLOSED:
            self._probing = False
            self._cooldown = self._cfg.cooldown
            self._set(CLOSED)

    def failure(self, exc: GatewayError) -> None:
        if not (exc.retryable or isinstance(exc, ProviderAuthError)):
            return
        self._count(failed=True)
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
        self._until = max(self._until, self._clock() + seconds)
        self._consecutive = 0
        if self.state != OPEN:
            self._set(OPEN)

    def _set(self, state: str) -> None:
        self.state = state
        self._on_transition(self.deployment, state)

    def _count(self, *, failed: bool) -> None:
        self._counts.add(first=1, second=int(failed))
