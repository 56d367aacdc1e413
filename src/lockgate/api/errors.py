"""Render gateway errors in the client's wire format; OpenAI's {"error": {...}} by default.

Endpoints that speak another wire format name their renderer (`api/endpoints.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import orjson

from lockgate.api.exchange import Reply
from lockgate.core.errors import GatewayError
from lockgate.core.types import JSON, RequestContext

ErrorRenderer = Callable[[GatewayError, RequestContext], Reply]


def add_error_headers(exc: GatewayError, headers: dict[str, str]) -> None:
    """The wait a client should observe (retry-after) and the error's own headers
    (rate-limit state), whatever the wire format."""
    if exc.retry_after is not None:
        # Rounded up: a client that waits what it was told must not be refused again.
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        headers["retry-after-ms"] = str(math.ceil(exc.retry_after * 1000))
    if exc.headers:
        headers.update(exc.headers)


def openai_error_body(exc: GatewayError) -> JSON:
    return {
        "error": {
            "message": exc.message,
            "type": exc.type,
            "param": exc.param,
            "code": exc.code,
        }
    }


def openai_error_response(exc: GatewayError, ctx: RequestContext) -> Reply:
    headers = ctx.response_headers()
    add_error_headers(exc, headers)
    return Reply(exc.status, orjson.dumps(openai_error_body(exc)), headers)
