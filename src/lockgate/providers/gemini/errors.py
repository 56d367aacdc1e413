"""Google API errors (`{"error": {"code", "message", "status", "details"}}`) -> gateway errors.

400 INVALID_ARGUMENT, "input token count ... exceeds the maximum" -> ContextWindowExceeded
400 INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID        -> ProviderAuthError
401 UNAUTHENTICATED / 403 PERMISSION_DENIED                        -> ProviderAuthError
429 RESOURCE_EXHAUSTED (RetryInfo.retryDelay -> retry_after)      -> RateLimited
503 UNAVAILABLE -> Overloaded; 504 DEADLINE_EXCEEDED -> Timeout; 500 INTERNAL -> upstream
anything else as `providers.errors.error_from_payload` maps its status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from lockgate.core import errors
from lockgate.core.redact import redact
from lockgate.providers.errors import error_from_payload, parse_duration, retry_after

_TOKEN_LIMIT = re.compile(r"token count.*exceeds the maximum number of tokens", re.IGNORECASE)
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_EXPIRED"})


def error_from_body(
    status: int, body: bytes, headers: Mapping[str, str], *, secrets: list[str]
) -> errors.GatewayError:
    """The gateway error for a non-2xx Gemini answer (or an error event in a stream)."""
    err = _error_object(body)
    code = err.get("code")
    if isinstance(code, int) and status == 500 and code != 500:
        status = code  # an error event inside a 200 stream says its own status
    message = err.get("message")
    if not isinstance(message, str) or not message:
        message = body.decode("utf-8", "replace").strip()[:500] or f"HTTP {status}"
    message = redact(message, secrets)
    grpc_status = err.get("status") if isinstance(err.get("status"), str) else None
    details = [d for d in err.get("details") or () if isinstance(d, dict)]
    if _TOKEN_LIMIT.search(message):
        return errors.ContextWindowExceeded(message, param="messages")
    if any(d.get("reason") in _KEY_REASONS for d in details):
        return errors.ProviderAuthError(f"upstream refused the provider key: {message}")
    if grpc_status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return errors.ProviderAuthError(f"upstream refused the provider key: {message}")
    code_name = grpc_status.lower() if grpc_status else None
    return error_from_payload(
        status, message, code_name, None, retry=_retry_delay(details) or retry_after(headers)
    )


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(data, list) and data:  # a streamed (alt=json) error comes as an array
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else {}


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    """`google.rpc.RetryInfo`'s retryDelay, a protobuf Duration in JSON ("12s", "0.5s")."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str):
                return parse_duration(delay)
            if isinstance(delay, dict):  # {"seconds": 12, "nanos": 0}
                try:
                    return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
                except (TypeError, ValueError):
                    return None
    return None
