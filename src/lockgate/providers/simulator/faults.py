"""Fault machinery: RPM/TPM rate limiting with OpenAI's headers, error injection, outages."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping

from lockgate.providers.ratelimits import openai_duration
from lockgate.providers.simulator.errors import SimulatedError, rate_limited

WINDOW_S = 60.0


def retry_headers(wait_s: float) -> dict[str, str]:
    """``retry-after`` in whole seconds (at least 1) and ``retry-after-ms``."""
    return {
        "retry-after": str(max(1, math.ceil(wait_s))),
        "retry-after-ms": str(max(1, math.ceil(wait_s * 1000))),
    }


class _Bucket:
    """A token bucket for a per-minute ``limit``, refilled continuously, holding
    ``burst_s`` seconds of budget (a whole minute's by default)."""

    __slots__ = ("capacity", "level", "limit", "rate", "stamp")

    def __init__(self, limit: int, now: float, burst_s: float = WINDOW_S) -> None:
        self.limit = limit
        self.rate = limit / WINDOW_S
        self.capacity = max(1, round(limit * burst_s / WINDOW_S))
        self.level = float(self.capacity)
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(float(self.capacity), self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (``amount`` at most the capacity)."""
        return max(0.0, (min(amount, self.capacity) - self.level) / self.rate)

    def until_full(self) -> float:
        return (self.capacity - self.level) / self.rate

    def headers(self, kind: str, out: dict[str, str]) -> None:
        out[f"x-ratelimit-limit-{kind}"] = str(self.limit)
        out[f"x-ratelimit-remaining-{kind}"] = str(max(0, int(self.level)))
        out[f"x-ratelimit-reset-{kind}"] = openai_duration(self.until_full())


class RateLimiter:
    """RPM and TPM budgets as token buckets, the way OpenAI's limits replenish.

    ``admit`` reads the limits on every call, so options replaced at run time take effect
    at once (a changed limit starts a fresh, full bucket).
    """

    def __init__(self) -> None:
        self._requests: _Bucket | None = None
        self._tokens: _Bucket | None = None

    def reset(self) -> None:
        self._requests = None
        self._tokens = None

    def _bucket(
        self, current: _Bucket | None, limit: int | None, now: float, burst_s: float
    ) -> _Bucket | None:
        if limit is None:
            return None
        if current is None or current.limit != limit:
            return _Bucket(limit, now, burst_s)
        current.refill(now)
        return current

    def admit(
        self,
        now: float,
        rpm: int | None,
        tpm: int | None,
        tokens: int,
        model: str,
        burst_s: float = WINDOW_S,
    ) -> dict[str, str]:
        """Spend one request and ``tokens`` tokens, returning the ``x-ratelimit-*`` headers;
        raise a 429 `SimulatedError` (nothing spent) when either budget is short."""
        if rpm is None and tpm is None:
            if self._requests is not None or self._tokens is not None:
                self.reset()
            return {}
        requests = self._requests = self._bucket(self._requests, rpm, now, burst_s)
        bucket = self._tokens = self._bucket(self._tokens, tpm, now, burst_s)
        headers: dict[str, str] = {}
        failure: SimulatedError | None = None
        wait = 0.0
        if requests is not None and requests.level < 1.0:
            wait = requests.wait_for(1.0)
            used = requests.limit - int(requests.level)
            failure = rate_limited(model, "requests", requests.limit, used, 1, wait)
        elif bucket is not None and (bucket.level < tokens or tokens > bucket.capacity):
            wait = bucket.wait_for(tokens) if tokens <= bucket.capacity else bucket.until_full()
            used = bucket.limit - int(bucket.level)
            failure = rate_limited(model, "tokens", bucket.limit, used, tokens, wait)
        else:
            if requests is not None:
                requests.level -= 1.0
            if bucket is not None:
                bucket.level -= tokens
        if requests is not None:
            requests.headers("requests", headers)
        if bucket is not None:
            bucket.headers("tokens", headers)
        if failure is not None:
            headers.update(retry_headers(wait))
            failure.headers = headers
            raise failure
        return headers


def pick_error(rng: random.Random, rates: Mapping[int, float]) -> int | None:
    """The status an injected fault gives this request, or None (one draw per request)."""
    if not rates:
        return None
    draw = rng.random()
    acc = 0.0
    for status, probability in rates.items():
        acc += probability
        if draw < acc:
            return status
    return None


def in_outage(elapsed_s: float, outages: Iterable[tuple[float, float]]) -> bool:
    """Whether ``elapsed_s`` since server start falls inside one of the outage windows."""
    return any(start <= elapsed_s < start + duration for start, duration in outages)


def chance(rng: random.Random, probability: float) -> bool:
    """One seeded coin flip; never draws when the probability is 0 or 1."""
    if probability <= 0.0:
        return False
    if probability >= 1.0:
        return True
    return rng.random() < probability
