"""Render gateway errors in Anthropic's wire format: {"type": "error", "error": {type, message}}."""

from __future__ import annotations

import orjson

from lockgate.api.errors import add_error_headers
from lockgate.api.exchange import Reply
from lockgate.core.errors import GatewayError
from lockgate.core.types import JSON, RequestContext

# Anthropic's error types by the gateway error's HTTP status.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}
# Anthropic says "overloaded" with 529, which its SDKs raise as OverloadedError.
_OVERLOADED_STATUS = 529


def anthropic_error_type(exc: GatewayError) -> str:
    return _TYPES.get(exc.status, "invalid_request_error" if exc.status < 500 else "api_error")


def anthropic_status(exc: GatewayError) -> int:
    return _OVERLOADED_STATUS if exc.status == 503 else exc.status


def anthropic_error_body(exc: GatewayError, request_id: str) -> JSON:
    return {
        "type": "error",
        "error": {"type": anthropic_error_type(exc), "message": exc.message},
        "request_id": request_id,
    }


def anthropic_headers(ctx: RequestContext) -> dict[str, str]:
    """lockgate's response headers plus Anthropic's `request-id`, which its SDKs read."""
    headers = ctx.response_headers()
    headers["request-id"] = ctx.request_id
    return headers


def anthropic_error_response(exc: GatewayError, ctx: RequestContext) -> Reply:
    headers = anthropic_headers(ctx)
    add_error_headers(exc, headers)
    return Reply(
        anthropic_status(exc), orjson.dumps(anthropic_error_body(exc, ctx.request_id)), headers
    )
