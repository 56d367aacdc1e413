"""The rate limits a provider advertises in its response headers (OpenAI's `x-ratelimit-*`,
which the OpenAI-compatible providers share), normalised for admission control."""

from __future__ import annotations

from collections.abc import Callable, Mapping

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
