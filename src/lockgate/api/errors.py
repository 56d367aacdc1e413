"""Render gateway errors in the client's wire format; OpenAI's {"error": {...}} by default.

Routes that speak another wire format declare it with `declare_error_renderer`; the
middleware looks the renderer up by route name, and only when a request failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import orjson
from aiohttp import web

from lockgate.core.errors import GatewayError
from lockgate.core.types import JSON, RequestContext

ErrorRenderer = Callable[[GatewayError, RequestContext], web.Response]
ERROR_RENDERERS = web.AppKey("lockgate_error_renderers", dict[str, ErrorRenderer])


def declare_error_renderer(app: web.Application, renderer: ErrorRenderer, *routes: str) -> None:
    """Errors of the named routes are rendered by ``renderer`` instead of OpenAI's shape."""
    renderers = app.get(ERROR_RENDERERS)
    if renderers is None:
        renderers = app[ERROR_RENDERERS] = {}
    for name in routes:
        renderers[name] = renderer


def error_renderer(app: web.Application, route: str | None) -> ErrorRenderer:
    renderers = app.get(ERROR_RENDERERS)
    if route is None or renderers is None:
        return openai_error_response
    return renderers.get(route, openai_error_response)


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


def openai_error_response(exc: GatewayError, ctx: RequestContext) -> web.Response:
    headers = ctx.response_headers()
    add_error_headers(exc, headers)
    return web.Response(
        status=exc.status,
        body=orjson.dumps(openai_error_body(exc)),
        content_type="application/json",
        headers=headers,
    )
