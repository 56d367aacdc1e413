"""Provider key pools: several keys for one deployment, rotated; a refused key is taken out
(and reported by fingerprint, never in full), a rate-limited key rests for the wait the
provider asked for."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from lockgate.core.errors import GatewayError, ProviderAuthError, RateLimited, UpstreamError

log = logging.getLogger("lockgate.keys")
KeyEvent = Callable[[str, str], None]  # (deployment id, "disabled" | "rested")

DEFAULT_REST = 1.0  # seconds, for a 429 that did not say how long to wait


def fingerprint(key: str) -> str:
    return "key#" + hashlib.sha256(key.encode()).hexdigest()[:8]


class KeyPool:
    def __init__(
        self,
        keys: list[str],
        *,
        deployment: str,
        on_event: KeyEvent,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = list(keys)
        self._disabled: set[str] = set()
        self._resting: dict[str, float] = {}  # key -> monotonic time it may be used again
        self._next = 0
        self._deployment = deployment
        self._on_event = on_event
        self._clock = clock

    @property
    def keys(self) -> list[str]:
        return list(self._keys)

    @property
    def usable(self) -> list[str]:
        now = self._clock()
        return [
            k for k in self._keys
            if k not in self._disabled and self._resting.get(k, 0.0) <= now
        ]  # fmt: skip

    def pick(self) -> str:
        """The next usable key, round robin; raises when none is usable."""
        usable = self.usable
        if not usable:
            live = [k for k in self._keys if k not in self._disabled]
            if not live:
                raise ProviderAuthError("every provider key of this deployment was refused")
            wait = min(self._resting[k] for k in live) - self._clock()
            raise RateLimited("every provider key is resting after a 429", retry_after=wait)
        key = usable[self._next % len(usable)]
        self._next += 1
        return key

    def failed(self, key: str, exc: GatewayError) -> GatewayError:
        """Take ``key`` out (refused) or rest it (429); the error to raise instead of
        ``exc``: retryable while another key can serve."""
        if isinstance(exc, ProviderAuthError):
            self._disabled.add(key)
            log.warning(
                "provider key %s of deployment %s was refused: taken out of rotation",
                fingerprint(key),
                self._deployment,
            )
            self._on_event(self._deployment, "disabled")
        elif isinstance(exc, RateLimited):
            self._resting[key] = self._clock() + (exc.retry_after or DEFAULT_REST)
            self._on_event(self._deployment, "rested")
        else:
            return exc
        if self.usable:
            # Another key can serve now: retry at once rather than cool the deployment down.
            return UpstreamError(f"{exc.message} (switching to another provider key)")
        return exc
