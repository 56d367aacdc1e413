"""Anthropic's errors and rate-limit headers -> the gateway's error types and limits.

Anthropic answers errors as ``{"type": "error", "error": {"type": ..., "message": ...}}``
with the status its docs list (400 invalid_request_error, 401 authentication_error, 403
permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error, 500
api_error, 529 overloaded_error), and streams the same object as an ``error`` event.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime

import orjson

from lockgate.core import errors
from lockgate.core.redact import redact
from lockgate.core.types import RateLimitInfo
from lockgate.providers.errors import retry_after

_TOO_LONG = re.compile(
    r"prompt is too long|exceed context limit|input is too long|context window", re.I
)
_HEADER = "anthropic-ratelimit-"


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], *, secrets: list[str]
) -> errors.GatewayError:
    kind, message = _parse(body)
    message = redact(message or f"upstream answered HTTP {status}", secrets)
    return error_from_type(kind, message, status, retry=anthropic_retry_after(headers))


def error_from_event(data: object, *, secrets: list[str]) -> errors.GatewayError:
    """The error an ``error`` event in a stream carries (no status: the stream was 200)."""
    err = data.get("error") if isinstance(data, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    text = redact(str(message or "upstream stream failed"), secrets)
    return error_from_type(kind if isinstance(kind, str) else None, text, None)


def error_from_type(
    kind: str | None, message: str, status: int | None, *, retry: float | None = None
) -> errors.GatewayError:
    if kind == "overloaded_error" or status == 529:
        return errors.Overloaded(f"upstream overloaded: {message}", retry_after=retry)
    if kind == "rate_limit_error" or status == 429:
        return errors.RateLimited(f"upstream rate limited: {message}", retry_after=retry)
    if kind in ("authentication_error", "permission_error", "billing_error") or status in (
        401,
        402,
        403,
    ):
        return errors.ProviderAuthError(f"upstream refused the provider key: {message}")
    if kind == "request_too_large" or status == 413:
        return errors.PayloadTooLarge(f"upstream refused the request size: {message}")
    if kind == "not_found_error" or status == 404:
        return errors.UpstreamError(
            f"upstream does not know this model or path: {message}", status=502
        )
    if kind == "timeout_error" or status in (408, 504):
        return errors.Timeout(f"upstream timed out: {message}")
    if kind == "invalid_request_error" or (status is not None and 400 <= status < 500):
        if _TOO_LONG.search(message):
            return errors.ContextWindowExceeded(message, param="messages")
        return errors.BadRequest(message, status=400 if status is None else status)
    return errors.UpstreamError(f"upstream error {status or kind or '(in stream)'}: {message}")


def _parse(body: bytes) -> tuple[str | None, str | None]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return None, text[:500] or None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        kind, message = err.get("type"), err.get("message")
        return (
            kind if isinstance(kind, str) else None,
            message if isinstance(message, str) else None,
        )
    return None, None


def anthropic_retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after`` when sent; else the latest reset of an exhausted rate-limit bucket."""
    wait = retry_after(headers)
    if wait is not None:
        return wait
    resets: list[float] = []
    for bucket in ("requests", "tokens", "input-tokens", "output-tokens"):
        if headers.get(f"{_HEADER}{bucket}-remaining") != "0":
            continue
        stamp = headers.get(f"{_HEADER}{bucket}-reset")
        if stamp:
            try:
                reset = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
            resets.append(max(reset - time.time(), 0.0))
    return max(resets) if resets else None


def anthropic_limits(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """Requests and tokens limits from ``anthropic-ratelimit-*``; ``tokens`` is the most
    restrictive token limit in effect, input tokens when only those are sent."""
    tokens = "tokens" if f"{_HEADER}tokens-limit" in headers else "input-tokens"
    if f"{_HEADER}requests-limit" not in headers and f"{_HEADER}{tokens}-limit" not in headers:
        return None
    return RateLimitInfo(
        limit_requests=_int(headers.get(f"{_HEADER}requests-limit")),
        remaining_requests=_int(headers.get(f"{_HEADER}requests-remaining")),
        limit_tokens=_int(headers.get(f"{_HEADER}{tokens}-limit")),
        remaining_tokens=_int(headers.get(f"{_HEADER}{tokens}-remaining")),
    )


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
