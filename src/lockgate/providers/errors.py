"""Map upstream HTTP statuses, error bodies and transport failures onto gateway errors."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from lockgate.core import errors
from lockgate.core.redact import redact
from lockgate.providers.http_client import ConnectFailed, Disconnected, TimedOut

_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?"
    r"(?:(\d+(?:\.\d+)?)ms)?$"
)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asks us to wait: retry-after-ms, retry-after, x-ratelimit-reset-*."""
    if value := headers.get("retry-after-ms"):
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    if value := headers.get("retry-after"):
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
            except (TypeError, ValueError):
                pass
    waits = [
        parse_duration(headers[name])
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if name in headers
    ]
    known = [w for w in waits if w is not None]
    return max(known) if known else None


def parse_duration(text: str) -> float | None:
    """OpenAI's reset format: `1s`, `6m0s`, `59ms`, `1h2m3.5s`, or a bare number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.match(text)
    if not match or not any(match.groups()):
        return None
    h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], *, secrets: list[str]
) -> errors.GatewayError:
    """The gateway error for a non-2xx upstream answer in the OpenAI error shape."""
    message, code, param = _parse_error_body(body)
    message = redact(message or f"upstream answered HTTP {status}", secrets)
    return error_from_payload(status, message, code, param, retry=retry_after(headers))


def error_from_payload(
    status: int,
    message: str,
    code: str | None,
    param: str | None,
    *,
    retry: float | None = None,
) -> errors.GatewayError:
    lowered = f"{code or ''} {message}".lower()
    kw: dict[str, Any] = {}
    if status == 429:
        return errors.RateLimited(f"upstream rate limited: {message}", retry_after=retry, **kw)
    if status in (401, 403):
        return errors.ProviderAuthError(f"upstream refused the provider key: {message}", **kw)
    if "context_length" in lowered or "maximum context length" in lowered:
        return errors.ContextWindowExceeded(message, param=param, **kw)
    if "content_filter" in lowered or "content_policy" in lowered:
        return errors.ContentFiltered(message, param=param, **kw)
    if status in (408, 504):
        return errors.Timeout(f"upstream timed out: {message}", **kw)
    if status in (503, 529):
        return errors.Overloaded(f"upstream overloaded: {message}", retry_after=retry, **kw)
    if status >= 500:
        return errors.UpstreamError(f"upstream error {status}: {message}", **kw)
    if status == 404:
        return errors.UpstreamError(
            f"upstream does not know this model or path: {message}", status=502, **kw
        )
    return errors.BadRequest(message, param=param, code=code, status=status, **kw)


def error_from_exception(exc: BaseException) -> errors.GatewayError:
    """The gateway error for a transport failure (connect, timeout, dropped connection)."""
    if isinstance(exc, asyncio.TimeoutError | TimedOut):
        return errors.Timeout("upstream did not answer in time")
    if isinstance(exc, ConnectFailed):
        return errors.UpstreamError(f"cannot connect to upstream {exc.host}:{exc.port}")
    if isinstance(exc, Disconnected):
        return errors.UpstreamError("upstream connection failed: the upstream closed it")
    return errors.UpstreamError(f"upstream connection failed: {type(exc).__name__}")


def _parse_error_body(body: bytes) -> tuple[str | None, str | None, str | None]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:500] or None), None, None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        code = err.get("code") or err.get("type")
        return _str(err.get("message")), _str(code), _str(err.get("param"))
    if isinstance(err, str):
        return err, None, None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"], None, None
    return None, None, None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else (str(value) if value is not None else None)
