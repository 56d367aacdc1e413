"""The rate limits a provider advertises in its response headers (OpenAI's `x-ratelimit-*`,
which the OpenAI-compatible providers share), normalised for admission control."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import lru_cache

from lockgate.core.types import RateLimitInfo

LimitsSeen = Callable[[RateLimitInfo], None]


def openai_limits(headers: Mapping[str, str]) -> RateLimitInfo | None:
    if "x-ratelimit-limit-requests" not in headers and "x-ratelimit-limit-tokens" not in headers:
        return None
    return RateLimitInfo(
        limit_requests=_int(headers.get("x-ratelimit-limit-requests")),
        remaining_requests=_int(headers.get("x-ratelimit-remaining-requests")),
        limit_tokens=_int(headers.get("x-ratelimit-limit-tokens")),
        remaining_tokens=_int(headers.get("x-ratelimit-remaining-tokens")),
    )


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def openai_duration(seconds: float) -> str:
    """A duration as OpenAI writes ``x-ratelimit-reset-*``: 59ms, 1s, 1.5s, 6m0s, 1h2m3s."""
    return openai_duration_ms(math.ceil(seconds * 1000 - 1e-6))


@lru_cache(maxsize=4096)
def openai_duration_ms(total_ms: int) -> str:
    """``openai_duration`` of a whole number of milliseconds. Remembered: the gateway's
    own limits word a reset for every request, and those a second or more away (a
    shared limit's, whose TAT runs ahead by the replicas' credit) repeat within a run."""
    if total_ms < 1000:
        return f"{total_ms}ms" if total_ms > 0 else "0s"
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, ms = divmod(rest, 1000)
    secs = f"{whole}.{ms:03d}".rstrip("0") + "s" if ms else f"{whole}s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs
