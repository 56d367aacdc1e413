"""Render gateway errors in OpenAI's wire format: {"error": {message, type, param, code}}."""

from __future__ import annotations

import math

import orjson
from aiohttp import web

from lockgate.core.errors import GatewayError
from lockgate.core.types import JSON, RequestContext


def openai_error_body(exc: GatewayError) -> JSON:
    return {
        "error": {
            "message": exc.message,
            "type": exc.type,
            "param": exc.param,
            "code": exc.code,
        }
    }


def openai_error_response(exc: GatewayError, ctx: RequestContext) -> web.Response:
    headers = ctx.response_headers()
    if exc.retry_after is not None:
        # Rounded up: a client that waits what it was told must not be refused again.
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        headers["retry-after-ms"] = str(math.ceil(exc.retry_after * 1000))
    if exc.headers:
        headers.update(exc.headers)
    return web.Response(
        status=exc.status,
        body=orjson.dumps(openai_error_body(exc)),
        content_type="application/json",
        headers=headers,
    )
