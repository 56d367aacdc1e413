"""Bedrock's errors -> gateway errors: by error type (the `x-amzn-ErrorType` header, the
body's `__type`, or a stream exception event's `:exception-type`), else by HTTP status."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from lockgate.core import errors
from lockgate.providers.errors import error_from_payload, retry_after

# Error type -> (the gateway error, the status Bedrock documents for it).
_TYPES: dict[str, tuple[type[errors.GatewayError], int]] = {
    "ThrottlingException": (errors.RateLimited, 429),
    "ServiceQuotaExceededException": (errors.RateLimited, 429),
    "ModelNotReadyException": (errors.Overloaded, 429),
    "ServiceUnavailableException": (errors.Overloaded, 503),
    "ModelTimeoutException": (errors.Timeout, 408),
    "AccessDeniedException": (errors.ProviderAuthError, 403),
    "UnrecognizedClientException": (errors.ProviderAuthError, 403),
    "InvalidSignatureException": (errors.ProviderAuthError, 403),
    "ExpiredTokenException": (errors.ProviderAuthError, 403),
    "IncompleteSignatureException": (errors.ProviderAuthError, 403),
    "InternalServerException": (errors.UpstreamError, 500),
    "ModelErrorException": (errors.UpstreamError, 424),
    "ModelStreamErrorException": (errors.UpstreamError, 424),
}
_CONTEXT_WINDOW = ("too long", "context window", "context length", "maximum context", "too many")
_CONTENT_FILTER = ("content filter", "blocked by", "guardrail")


def error_type(value: str | None) -> str:
    """`ThrottlingException:http://internal...`, `com.amazon...#ThrottlingException` and a
    stream's `throttlingException` all name ThrottlingException."""
    if not value:
        return ""
    name = value.split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return name[:1].upper() + name[1:]


def bedrock_error(
    status: int, kind: str, message: str, *, retry: float | None = None
) -> errors.GatewayError:
    lowered = message.lower()
    if kind == "ValidationException" or (not kind and status == 400):
        if any(marker in lowered for marker in _CONTEXT_WINDOW):
            return errors.ContextWindowExceeded(message, param="messages")
        if any(marker in lowered for marker in _CONTENT_FILTER):
            return errors.ContentFiltered(message, param="messages")
        return errors.BadRequest(message, code="validation_error")
    if kind == "ResourceNotFoundException":
        return errors.UpstreamError(
            f"Bedrock does not know this model or path: {message}", status=502
        )
    known = _TYPES.get(kind)
    if known is None:
        return error_from_payload(status, message, None, None, retry=retry)
    cls, _ = known
    if cls is errors.ProviderAuthError:
        return errors.ProviderAuthError(f"Bedrock refused lockgate's credentials: {message}")
    if cls in (errors.RateLimited, errors.Overloaded):
        return cls(f"Bedrock {kind}: {message}", retry_after=retry)
    return cls(f"Bedrock {kind}: {message}")


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], *, secrets: list[str]
) -> errors.GatewayError:
    message = f"Bedrock answered HTTP {status}"
    kind = error_type(headers.get("x-amzn-ErrorType"))
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        given = data.get("message") or data.get("Message")
        if isinstance(given, str) and given:
            message = given
        if not kind and isinstance(data.get("__type"), str):
            kind = error_type(data["__type"])
    for secret in secrets:
        message = message.replace(secret, "***")
    return bedrock_error(status, kind, message, retry=retry_after(headers))
